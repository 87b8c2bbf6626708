"""EvaluationReport files and the leaderboard table."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tastemaker
from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Split, split_info
from tastemaker.data.manifest import Manifest
from tastemaker.errors import ConfigError, DataError, OutputError
from tastemaker.evaluation.report import EvaluationReport, leaderboard_markdown

METRICS = {
    "recall@10": 0.25,
    "recall@20": 0.375,
    "ndcg@10": 0.123456,
    "ndcg@20": 0.2,
    "coverage@10": 0.5,
    "coverage@20": 0.75,
    "n_users": 610.0,
}


def _report(model: str = "bpr", **changes: object) -> EvaluationReport:
    fields = {
        "dataset": "ml-latest-small",
        "split_kind": "random",
        "seed": 42,
        "data_hash": "ab" * 32,
        "part": "test",
        "model": model,
        "config": {"factors": 64, "lr": 0.01},
        "metrics": METRICS,
        "ks": [10, 20],
    }
    return EvaluationReport(**{**fields, **changes})


def test_from_split_takes_provenance_from_manifest() -> None:
    catalog = Catalog(pl.DataFrame({"item_id": ["i0", "i1"]}))
    frame = pl.DataFrame({"user_id": ["u"], "item_id": ["i0"]})
    parts = {"train": frame, "valid": frame.head(0), "test": frame}
    info = split_info("temporal", 7, {}, parts)
    split = Split(catalog, frame, frame.head(0), frame, Manifest(name="toy", split=info))
    report = EvaluationReport.from_split(split, "valid", "pop", {"a": 1}, METRICS, [10, 20])
    assert (report.dataset, report.split_kind, report.seed) == ("toy", "temporal", 7)
    assert report.data_hash == info.content_hash
    assert report.version == tastemaker.__version__


def test_from_split_refuses_a_manifest_without_split_information() -> None:
    catalog = Catalog(pl.DataFrame({"item_id": ["i0"]}))
    frame = pl.DataFrame({"user_id": ["u"], "item_id": ["i0"]})
    info = split_info("random", 1, {}, {"train": frame, "valid": frame, "test": frame})
    split = Split(catalog, frame, frame, frame, Manifest(name="toy", split=info))
    split.manifest.split = None
    with pytest.raises(DataError, match="no split information"):
        EvaluationReport.from_split(split, "test", "pop", {}, METRICS, [10])


def test_write_and_read_back(tmp_path: Path) -> None:
    report = _report()
    folder = report.write(tmp_path / "run" / "eval-test")
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["metrics"]["ndcg@10"] == 0.123456
    assert saved["config"] == {"factors": 64, "lr": 0.01}
    assert EvaluationReport.read(folder) == report
    assert sorted(p.name for p in folder.iterdir()) == ["metrics.json", "metrics.md"]


def test_markdown_has_provenance_and_metric_table() -> None:
    text = _report().to_markdown()
    assert "# bpr on ml-latest-small (test)" in text
    assert "- split: random, seed 42" in text
    assert f"`{'ab' * 32}`" in text
    assert "- n_users: 610" in text
    assert "| metric | @10 | @20 |" in text
    assert "| ndcg | 0.1235 | 0.2000 |" in text
    assert "| coverage | 0.5000 | 0.7500 |" in text
    assert '"factors": 64' in text


def test_markdown_shows_a_metric_missing_at_one_k_as_a_dash() -> None:
    metrics = {k: v for k, v in METRICS.items() if k != "ndcg@20"}
    text = _report(metrics=metrics).to_markdown()
    assert "| ndcg | 0.1235 | – |" in text
    assert "nan" not in text


def test_write_to_unwritable_place_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError):
        _report().write(blocker / "eval")
    assert list(tmp_path.iterdir()) == [blocker]


def test_read_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing"):
        EvaluationReport.read(tmp_path)
    (tmp_path / "metrics.json").write_text('{"model": "x"}')
    with pytest.raises(DataError, match="not a valid evaluation report"):
        EvaluationReport.read(tmp_path)


def test_leaderboard() -> None:
    pop = _report(
        "most_popular", metrics={**METRICS, "recall@10": 0.1, "ndcg@10": 0.3, "hit@10": 0.6}
    )
    text = leaderboard_markdown([_report("bpr"), pop], ["recall@10", "ndcg@10", "hit@10"])
    lines = text.splitlines()
    assert lines[0] == (
        "Data: ml-latest-small, random split, part test, seed 42, data hash `abababababab`"
    )
    assert lines[2] == "| model | recall@10 | ndcg@10 | hit@10 |"
    # best value per column in bold; a metric a report lacks is a dash
    assert lines[4] == "| bpr | **0.2500** | 0.1235 | – |"
    assert lines[5] == "| most_popular | 0.1000 | **0.3000** | **0.6000** |"


def test_leaderboard_ignores_a_nan_when_choosing_the_best() -> None:
    broken = _report("ease", metrics={**METRICS, "recall@10": float("nan")})
    lines = leaderboard_markdown([broken, _report("bpr")], ["recall@10"]).splitlines()
    assert lines[4:] == ["| ease | – |", "| bpr | **0.2500** |"]


def test_leaderboard_refuses_mixed_data() -> None:
    other = _report("itemknn", data_hash="cd" * 32, seed=1)
    with pytest.raises(DataError, match="different seed, data_hash"):
        leaderboard_markdown([_report(), other], ["recall@10"])


def test_leaderboard_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="choose columns from coverage@10"):
        leaderboard_markdown([_report()], ["auc@10"])
    with pytest.raises(ConfigError, match="no leaderboard columns"):
        leaderboard_markdown([_report()], [])
    with pytest.raises(DataError, match="no evaluation reports"):
        leaderboard_markdown([], ["recall@10"])
