"""`tastemaker train` and `tune` say what they are doing, piped or not; Ctrl-C and
SIGTERM save the best model so far and exit 130 / 143."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli.app import app
from tastemaker.data.dataset import Split
from tastemaker.data.splits import make_split
from tastemaker.models import BPR

from .conftest import make_dataset


def tiny_split(seed: int = 0) -> Split:
    """30 users with 8 of 40 items each, split 8:1:1: BPR trains an epoch in milliseconds."""
    rng = random.Random(seed)
    rows = [
        (f"u{u}", f"i{i}", 1.0, t)
        for u in range(30)
        for t, i in enumerate(rng.sample(range(40), 8))
    ]
    return make_split(make_dataset(rows, n_items=40), "ratio", ratios=(0.8, 0.1, 0.1), seed=1)


@pytest.fixture
def split_dir(tmp_path: Path) -> Path:
    return tiny_split().save(tmp_path / "split")


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


COMMAND = [sys.executable, "-c", "from tastemaker.cli.app import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TINY = ["--model", "bpr", "--param", "factors=8", "--param", "batch_size=64"]


def test_piped_train_prints_one_line_per_epoch_and_a_final_line(
    split_dir: Path, tmp_path: Path
) -> None:
    args = ["train", "--data", split_dir, "--out", tmp_path / "bpr", *TINY, "--param", "epochs=4"]
    done = subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert done.returncode == 0, done.stderr
    epochs = [line for line in done.stderr.splitlines() if line.startswith("bpr epoch ")]
    assert len(epochs) == 4, done.stderr
    assert re.fullmatch(
        r"bpr epoch 1/4: loss \d\.\d{4}, valid ndcg@10 \d\.\d{4}, \d+\.\d s, ETA .+", epochs[0]
    )
    assert "bpr stopped after epoch 4/4: reached epochs=4; best epoch" in done.stderr


def test_quiet_shows_only_the_result_and_verbose_more(split_dir: Path, tmp_path: Path) -> None:
    base = ["train", "--data", split_dir, *TINY, "--param", "epochs=2"]
    code, out, err = cli(*base, "--out", tmp_path / "quiet", "--quiet")
    assert code == 0 and "epoch" not in err and "model saved" in out
    code, out, err = cli(*base, "--out", tmp_path / "verbose", "--verbose")
    assert code == 0 and "training" in err and "patience" in err
    code, out, err = cli(*base, "--out", tmp_path / "both", "--quiet", "--verbose")
    assert code == 2 and "contradict" in err


def test_the_library_prints_nothing_unless_asked(capfd: pytest.CaptureFixture[str]) -> None:
    split = tiny_split()
    BPR(epochs=2, factors=8, batch_size=64).fit(split.train, split.valid)
    assert capfd.readouterr() == ("", "")


def test_tune_prints_one_line_per_trial(split_dir: Path, tmp_path: Path) -> None:
    code, _, err = cli(
        "tune", "--data", split_dir, "--out", tmp_path / "tune", *TINY, "--param", "epochs=2",
        "--space", "reg=choice:0.0,0.1", "--trials", "2", "--sampler", "grid",
    )  # fmt: skip
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2 and "epoch" not in err.replace("epochs", ""), err
    assert re.match(r"trial 0 \(1/2\): reg=[0-9.]+: valid ndcg@10 \d\.\d{4}, 2 epochs, ", lines[0])
    assert "; best " in lines[1]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_best_model_so_far(
    split_dir: Path, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    out = tmp_path / "bpr"
    args = ["train", "--data", split_dir, "--out", out, *TINY, "--param", "epochs=100000"]
    with subprocess.Popen(
        [*COMMAND, *map(str, args)], stderr=subprocess.PIPE, text=True, env=ENV
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "epoch 3/" in line:
                proc.send_signal(sig)
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == code, rest
    message = rest.strip().splitlines()[-1]
    assert message.startswith(f"{sig.name}: stopped after epoch ") and "--resume" in message
    state = json.loads((out / "training_state.json").read_text())
    assert state["stopped"] == "interrupted" and state["epoch"] >= 3
    assert len(json.loads((out / "training_log.json").read_text())) == state["epoch"]
