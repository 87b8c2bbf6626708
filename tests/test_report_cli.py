"""``tastemaker report``: training curves of saved models as PNG + HTML, and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastemaker import Split
from tastemaker.data.splits import random_ratio
from tastemaker.models import BPR, MostPopular

from .conftest import make_dataset
from .test_cli import assert_user_error, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def split() -> Split:
    """40 users, each with 12 of 30 items (overlapping windows), random 8:1:1."""
    rows = [(f"u{u}", f"i{(u + j) % 30}", 5.0, j) for u in range(40) for j in range(12)]
    return random_ratio(make_dataset(rows, n_items=30), seed=1)


def save_bpr(split: Split, folder: Path, epochs: int) -> BPR:
    model = BPR(epochs=epochs, factors=8, learning_rate=1e-2).fit(split.train, split.valid)
    model.save(folder)
    return model


def test_report_writes_png_and_html_with_the_epoch_count(split: Split, tmp_path: Path) -> None:
    model = save_bpr(split, tmp_path / "bpr-a", epochs=3)
    log = json.loads((tmp_path / "bpr-a" / "training_log.json").read_text())
    assert len(log) == 3
    best_value = max(r["ndcg@10"] for r in log)

    code, output = run("report", "--model-dir", tmp_path / "bpr-a")
    assert code == 0, output
    page = (tmp_path / "bpr-a" / "training.html").read_text()
    assert "<td>bpr-a</td><td>bpr</td><td>3</td>" in page  # folder, model, epochs
    assert f"<td>{model.best_epoch}</td><td>{best_value:.4f}</td>" in page
    assert 'src="data:image/png;base64,' in page
    assert (tmp_path / "bpr-a" / "training.png").read_bytes().startswith(PNG_MAGIC)
    assert f"ndcg@10 {best_value:.4f}" in output  # the printed summary


def test_report_overlays_several_models(split: Split, tmp_path: Path) -> None:
    save_bpr(split, tmp_path / "short", epochs=2)
    save_bpr(split, tmp_path / "long", epochs=4)
    out = tmp_path / "pages" / "curves.html"
    code, output = run(
        "report", "--model-dir", tmp_path / "short", "--model-dir", tmp_path / "long",
        "--out", out,
    )  # fmt: skip
    assert code == 0, output
    page = out.read_text()
    assert "<td>short</td><td>bpr</td><td>2</td>" in page
    assert "<td>long</td><td>bpr</td><td>4</td>" in page
    assert (tmp_path / "pages" / "curves.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "short" / "training.html").exists()


def test_report_on_a_model_without_training_log(split: Split, tmp_path: Path) -> None:
    MostPopular().fit(split.train).save(tmp_path / "pop")
    code, output = run("report", "--model-dir", tmp_path / "pop")
    assert_user_error(code, output, "most_popular", "training log")
    assert not (tmp_path / "pop" / "training.html").exists()

    code, output = run("report", "--model-dir", tmp_path / "missing")
    assert_user_error(code, output, "missing")
