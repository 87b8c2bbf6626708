"""Training curves (``evaluation.training_curves`` and ``tastemaker report``): PNG + HTML
page and a summary per model, from models in memory or saved folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tastemaker import Split
from tastemaker.data.splits import random_ratio
from tastemaker.errors import ConfigError
from tastemaker.evaluation.training_curves import training_report
from tastemaker.models import BPR, MostPopular

from .conftest import make_dataset
from .test_cli import assert_user_error, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def split() -> Split:
    """40 users, each with 12 of 30 items (overlapping windows), random 8:1:1."""
    rows = [(f"u{u}", f"i{(u + j) % 30}", 5.0, j) for u in range(40) for j in range(12)]
    return random_ratio(make_dataset(rows, n_items=30), seed=1)


def fit_bpr(split: Split, epochs: int, **params: object) -> BPR:
    return BPR(epochs=epochs, factors=8, learning_rate=1e-2, **params).fit(split.train, split.valid)


def save_bpr(split: Split, folder: Path, epochs: int) -> BPR:
    model = fit_bpr(split, epochs)
    model.save(folder)
    return model


def table_rows(page: str, table: int = 0) -> list[list[str]]:
    """The body rows of the page's ``table``-th table (0: the summary), as cell texts."""
    body = page.split("<tbody>")[table + 1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_report_writes_png_and_html_with_the_epoch_count(split: Split, tmp_path: Path) -> None:
    model = save_bpr(split, tmp_path / "bpr-a", epochs=3)
    log = json.loads((tmp_path / "bpr-a" / "training_log.json").read_text())
    assert len(log) == 3
    best_value = max(r["ndcg@10"] for r in log)

    code, output = run("report", "--model-dir", tmp_path / "bpr-a")
    assert code == 0, output
    page = (tmp_path / "bpr-a" / "training.html").read_text()
    [row] = table_rows(page)
    assert row[:5] == ["bpr-a", "bpr", "3", str(model.best_epoch), f"{best_value:.4f}"]
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
    rows = table_rows(out.read_text())
    assert [r[:3] for r in rows] == [["short", "bpr", "2"], ["long", "bpr", "4"]]
    assert (tmp_path / "pages" / "curves.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "short" / "training.html").exists()


def test_folders_of_the_same_name_are_told_apart(split: Split, tmp_path: Path) -> None:
    for parent in ("a", "b"):
        save_bpr(split, tmp_path / parent / "bpr", epochs=2)
    out = tmp_path / "curves.html"
    code, output = run(
        "report", "--model-dir", tmp_path / "a" / "bpr", "--model-dir", tmp_path / "b" / "bpr",
        "--out", out,
    )  # fmt: skip
    assert code == 0, output
    labels = [r[0] for r in table_rows(out.read_text())]
    assert labels == [str(tmp_path / "a" / "bpr"), str(tmp_path / "b" / "bpr")]


def test_report_on_a_model_without_training_log(split: Split, tmp_path: Path) -> None:
    MostPopular().fit(split.train).save(tmp_path / "pop")
    code, output = run("report", "--model-dir", tmp_path / "pop")
    assert_user_error(code, output, "most_popular", "training log")
    assert not (tmp_path / "pop" / "training.html").exists()

    code, output = run("report", "--model-dir", tmp_path / "missing")
    assert_user_error(code, output, "missing")


def test_training_report_of_models_in_memory(split: Split, tmp_path: Path) -> None:
    """No saved folder needed: a fitted model's own log is summarised."""
    fitted = {"three": fit_bpr(split, 3), "five": fit_bpr(split, 5, reg=1e-5)}
    summaries = training_report(fitted, tmp_path / "curves.html")
    for summary, (label, model) in zip(summaries, fitted.items(), strict=True):
        log = model.training_log
        assert (summary.label, summary.model, summary.metric) == (label, "bpr", "ndcg@10")
        assert summary.epochs == len(log) and summary.best_epoch == model.best_epoch
        assert summary.best_value == max(r["ndcg@10"] for r in log)
        assert summary.mean_seconds == pytest.approx(sum(r["seconds"] for r in log) / len(log))
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_MAGIC)
    page = (tmp_path / "curves.html").read_text()
    assert [r[0] for r in table_rows(page)] == list(fitted)
    # What each run was, side by side: its hyper-parameters and the data it saw.
    settings = {row[0]: row[1:] for row in table_rows(page, 1)}
    assert settings["epochs"] == ["3", "5"] and settings["factors"] == ["8", "8"]
    assert settings["reg"][1] == "1e-05"  # as set, not rounded to 0.0000
    digest = split.train.content_hash()[:12]
    assert settings["train data hash"] == [f"{digest}…"] * 2


def test_training_report_refuses_what_it_cannot_overlay(split: Split, tmp_path: Path) -> None:
    out = tmp_path / "curves.html"
    with pytest.raises(ConfigError, match="no model"):
        training_report({}, out)
    mixed = {
        "ndcg": fit_bpr(split, 2),
        "recall": fit_bpr(split, 2, early_stopping_metric="recall@5"),
    }
    with pytest.raises(ConfigError, match="different metrics"):
        training_report(mixed, out)
    with pytest.raises(ConfigError, match="'most_popular' model without a training log"):
        training_report({"pop": MostPopular().fit(split.train)}, out)
    assert not out.exists() and not out.with_suffix(".png").exists()
