"""The BM3 comparison of ``benchmarks/multimodal.md``: how much of its best validation score
each BM3 keeps at the end of its run, and what the page concludes from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/mmrec_bm3_report.py`` (a script beside the others, not a package)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import mmrec_bm3_report

    return mmrec_bm3_report


def _log(values: list[float], losses: list[float] | None = None) -> list[dict[str, Any]]:
    losses = losses or [1.0] * len(values)
    return [
        {"epoch": n + 1, "loss": loss, "recall@20": v}
        for n, (v, loss) in enumerate(zip(values, losses, strict=True))
    ]


def _ours(run: str, values: list[float]) -> dict[str, Any]:
    return {
        "run": run,
        "model": "bm3",
        "early_stopping_metric": "recall@20",
        "log": _log(values),
        "test_all_items_train_masked": {"recall@20": 0.1, "ndcg@20": 0.2},
    }


def _peer(values: list[float], patience: int = 20) -> dict[str, Any]:
    return {
        "epochs": [{"epoch": n + 1, "valid": {"recall@20": v}} for n, v in enumerate(values)],
        "best_epoch": values.index(max(values)) + 1,
        "test_at_best": {"recall@20": 0.1, "ndcg@20": 0.2},
        "split_hash": "abc",
        "mmrec_commit": None,
        "text_encoder": "enc",
        "image_encoder": "cnn",
        "settings": {"stopping_step": patience},
        "cpu_seconds": 1.0,
        "date": "today",
    }


def _page(report: Any, records: list[dict[str, Any]], peers: dict[str, Any]) -> str:
    return "\n".join(report.bm3_section(records, peers, "abc", curves=False))


def test_decline_takes_the_first_best_and_the_share_kept_at_the_end(report: Any) -> None:
    log = _log([0.1, 0.4, 0.2, 0.4, 0.1], losses=[5.0, 2.0, 1.5, 1.8, 2.5])
    stats = report.decline(log, "recall@20")
    assert (stats["best"], stats["epoch"], stats["last"]) == (0.4, 2, 0.1)
    assert stats["kept"] == pytest.approx(0.25)
    assert stats["loss"] == ((1.5, 3), 2.5)


@pytest.mark.parametrize(
    ("frozen", "verdict"),
    [
        ([0.5, 1.0, 0.9, 0.72], "comes with the fixed features"),  # keeps 72%, like ours
        ([0.5, 1.0, 0.95, 0.9], "the extra decline is tastemaker's"),  # like the authors'
    ],
)
def test_the_page_says_whose_decline_it_is(report: Any, frozen: list[float], verdict: str) -> None:
    ours = _ours("bm3-text", [0.5, 1.0, 0.8, 0.7])  # keeps 70%
    peers = {
        report.peer_label("text", False): _peer([0.2, 0.4, 0.36, 0.344]),  # keeps 86%
        report.peer_label("text", True): _peer(frozen),
    }
    page = _page(report, [ours], peers)
    assert "| tastemaker bm3-text | 1.0000 (2) | 0.7000 | 70% | 4 |" in page
    assert "| MMRec BM3 (text) | 0.4000 (2) | 0.3440 | 86% | 4 | – |" in page
    assert (
        "tastemaker's bm3-text keeps 70% of its best validation score, MMRec's BM3 as the "
        f"authors wrote it 86% and MMRec's BM3 with fixed features {round(frozen[-1] * 100)}%."
    ) in page
    assert "so a decline after the best epoch is BM3's own; tastemaker's is steeper" in page
    assert verdict in page
    assert "(frozen), settings" in page and "`benchmarks/mmrec_bm3.py --frozen`" in page


def test_a_bm3_that_holds_its_level_makes_the_decline_ours(report: Any) -> None:
    """And seeds are averaged; a modality MMRec did not run on is judged on its own."""
    runs = [
        _ours("bm3-text", [0.5, 1.0, 0.6]),
        _ours("bm3-text-seed1", [0.5, 1.0, 0.8]),
        _ours("bm3-image", [0.5, 1.0, 0.4]),
    ]
    peers = {report.peer_label("text", False): _peer([0.2, 0.4, 0.396])}
    page = _page(report, runs, peers)
    assert "bm3-text keeps 70% on average over 2 seeds (60%, 80%) of its best" in page
    assert "The authors' code holds its level, so the decline is tastemaker's." in page
    assert (
        "tastemaker's bm3-image keeps 40% of its best validation score; MMRec's BM3 did not "
        "run on image features here. It collapses."
    ) in page


@pytest.mark.parametrize(
    ("kept", "verdict"),
    [(0.1, "and so does the authors' code: a collapse of BM3's own"), (0.9, "is tastemaker's")],
)
def test_a_collapse_is_compared_with_the_authors_bm3(
    report: Any, kept: float, verdict: str
) -> None:
    ours = _ours("bm3-image", [0.5, 1.0, 0.02])
    peers = {report.peer_label("image", True): _peer([0.2, 1.0, kept], patience=40)}
    page = _page(report, [ours], peers)
    assert "bm3-image keeps 2% of its best validation score, MMRec's BM3 with fixed " in page
    assert f"features {kept:.0%}. It collapses" in page
    assert verdict in page
    assert "image features `cnn` (frozen)" in page
    assert "`benchmarks/mmrec_bm3.py --modality image --frozen --patience 40`" in page
