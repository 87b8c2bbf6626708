"""Interrupted runs keep their best model and resume exactly; edited folders are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tastemaker.cli.app import app
from tastemaker.config import ModelSpec
from tastemaker.errors import ConfigError, DataError
from tastemaker.experiment import train
from tastemaker.models import BPR, Recommender
from tastemaker.models.base import TrainingInterrupted
from tastemaker.models.training import EpochReport

from .test_train_progress import tiny_split

PARAMS = {"factors": 8, "batch_size": 64, "patience": 3, "epochs": 12}


def stop_at(epoch: int):
    def callback(report: EpochReport) -> None:
        if report.epoch == epoch:
            raise KeyboardInterrupt

    return callback


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    split = tiny_split()
    whole = train(split, ModelSpec(name="bpr", params=PARAMS))
    with pytest.raises(TrainingInterrupted) as caught:
        train(split, ModelSpec(name="bpr", params=PARAMS), on_epoch=stop_at(4))
    partial = caught.value.model
    assert caught.value.epoch == 4 and partial.training_state.stopped == "interrupted"
    partial.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "training_state.json").read_text())["epoch"] == 4
    resumed = train(split, None, resume=tmp_path / "run")
    assert [r["epoch"] for r in resumed.training_log] == [r["epoch"] for r in whole.training_log]
    for mine, theirs in zip(resumed.training_log, whole.training_log, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-6)
    assert resumed.best_epoch == whole.best_epoch
    assert torch.allclose(resumed.user_embedding, whole.user_embedding, atol=1e-6)
    assert resumed.training_state.stopped == whole.training_state.stopped


def test_a_run_out_of_epochs_continues_with_more(tmp_path: Path) -> None:
    split = tiny_split()
    train(split, ModelSpec(name="bpr", params={**PARAMS, "epochs": 3})).save(tmp_path / "run")
    longer = train(split, ModelSpec(name="bpr", params={"epochs": 5}), resume=tmp_path / "run")
    assert len(longer.training_log) == 5
    with pytest.raises(ConfigError, match="raise epochs"):
        train(split, None, resume=tmp_path / "run")


def test_resume_refuses_other_settings_data_and_models(tmp_path: Path) -> None:
    split = tiny_split()
    train(split, ModelSpec(name="bpr", params={**PARAMS, "epochs": 3})).save(tmp_path / "run")
    with pytest.raises(ConfigError, match="factors=16 differs"):
        train(split, ModelSpec(name="bpr", params={"factors": 16}), resume=tmp_path / "run")
    with pytest.raises(ConfigError, match="model 'lightgcn' differs"):
        train(split, ModelSpec(name="lightgcn"), resume=tmp_path / "run")
    with pytest.raises(DataError, match="split differs"):
        train(tiny_split(seed=1), ModelSpec(params={"epochs": 6}), resume=tmp_path / "run")
    train(split, ModelSpec(name="most_popular")).save(tmp_path / "pop")
    with pytest.raises(ConfigError, match="fitted in one go"):
        train(split, None, resume=tmp_path / "pop")


def test_cli_resume_continues_a_saved_run(tmp_path: Path) -> None:
    data = tiny_split().save(tmp_path / "split")
    base = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "bpr"]
    runner = CliRunner()
    assert runner.invoke(app, [*base, "--param", "epochs=2"]).exit_code == 0
    result = runner.invoke(app, [*base, "--resume", "--param", "epochs=3"])
    assert result.exit_code == 0, result.output
    assert "bpr epoch 3/3" in result.stderr and "bpr epoch 1/" not in result.stderr
    refused = runner.invoke(app, [*base, "--resume", "--param", "factors=4"])
    assert refused.exit_code == 2 and refused.stderr.startswith("error: factors=4 differs")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [("model", "lightgcn", "'bpr' weights"), ("factors", 4, "factors=4 but the weights")],
)
def test_an_edited_config_is_refused_on_load(
    tmp_path: Path, field: str, value: object, needle: str
) -> None:
    split = tiny_split()
    BPR(epochs=1, factors=8).fit(split.train, split.valid).save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    meta = json.loads(path.read_text())
    if field == "model":
        meta["model"] = value
    else:
        meta["config"][field] = value
    path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"config\.json was edited") as caught:
        Recommender.load(tmp_path / "m")
    assert needle in str(caught.value) and "\n" not in str(caught.value)
