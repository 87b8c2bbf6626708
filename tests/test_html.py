"""The HTML pages: escaped, missing values as "–" (never 0), numbers right and text left.

Pages are parsed with the standard library's HTMLParser, so the checks look at
cells and their classes rather than at raw substrings.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
import torch
from PIL import Image

from tastemaker.errors import DataError
from tastemaker.evaluation import html
from tastemaker.evaluation.report import EvaluationReport
from tastemaker.generation.evaluation import GenerationEvaluation, PairRecord
from tastemaker.generation.history import ItemText, UserHistory
from tastemaker.generation.html import batch_page, evaluation_page, number, result_page
from tastemaker.generation.keywords import Attempt, Keywords
from tastemaker.generation.result import Candidate, GenerationResult, Prepared
from tastemaker.llm.base import ChatMessage
from tastemaker.reporting.values import MISSING

EVIL = "<script>alert('x')</script>"


class Cells(HTMLParser):
    """Every table cell of a page as (tag, class, text), and whether a <script> tag occurs."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.cells: list[tuple[str, str | None, str]] = []
        self.scripts = 0
        self._open: tuple[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag in ("td", "th"):
            self._open, self._text = (tag, dict(attrs).get("class")), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._open is not None:
            self.cells.append((*self._open, "".join(self._text).strip()))
            self._open = None

    def cell(self, text: str) -> tuple[str, str | None, str]:
        return next(c for c in self.cells if c[2] == text)


def _report(model: str, metrics: dict[str, float]) -> EvaluationReport:
    return EvaluationReport(
        dataset="toy",
        split_kind="random",
        seed=1,
        data_hash="ab" * 32,
        part="test",
        model=model,
        metrics=metrics,
        ks=[10],
    )


def _report_page(title: str = "report") -> str:
    reports = [
        _report(EVIL, {"ndcg@10": 0.25, "recall@10": 0.5}),
        _report("ease", {"ndcg@10": 0.125}),  # recall@10 was not measured
    ]
    samples = {"u1": {"liked in training": [EVIL], "ease": ["Heat (1995)"]}}
    return html.render_report(title, reports, ["ndcg@10", "recall@10"], {}, samples)


def test_report_page_escapes_titles_models_and_sample_titles() -> None:
    page = _report_page(title=EVIL)
    assert Cells(page).scripts == 0
    assert page.count("&lt;script&gt;") == 4  # <title>, <h1>, the model, the sample title


def test_report_page_shows_a_missing_metric_as_a_dash_not_zero() -> None:
    cells = Cells(_report_page())
    ease = [c for c in cells.cells if c[0] == "td"][3:]  # the second row
    assert [text for _, _, text in ease] == ["ease", "0.1250", MISSING]
    assert all("0.0000" not in text for _, _, text in cells.cells)


def test_report_page_aligns_numbers_right_and_text_left() -> None:
    cells = Cells(_report_page())
    assert cells.cell("ease")[1] is None and cells.cell("model")[1] is None
    assert cells.cell("0.1250")[1] == "num" and cells.cell("ndcg@10")[1] == "num"
    assert cells.cell(MISSING)[1] == "num"  # a missing number stays in its number column


def test_report_page_marks_test_hits_in_model_lists_and_shows_more_tables() -> None:
    reports = [_report("ease", {"ndcg@10": 0.125, "cold/recall@20": 0.5})]
    samples = {"u1": {"liked in training": ["Heat (1995)"], "ease": ["Heat (1995)", "Up (2009)"]}}
    page = html.render_report(
        "r", reports, ["ndcg@10"], {}, samples,
        sections={"Warm and cold items": (reports, ["cold/recall@20"])},
        held_out={"u1": ["Heat (1995)"]},
        links={"generation <page>": "generation/index.html"},
    )  # fmt: skip
    assert page.count('class="hit"') == 1  # in ease's list, not in the user's own history
    assert '<li class="hit">Heat (1995)</li>' in page and "<li>Up (2009)</li>" in page
    assert "<h2>Warm and cold items</h2>" in page and Cells(page).cell("0.5000")[1] == "num"
    assert '<a href="generation/index.html">generation &lt;page&gt;</a>' in page


def test_report_page_needs_a_report() -> None:
    with pytest.raises(DataError, match="no evaluation reports"):
        html.render_report("empty", [], ["ndcg@10"], {}, {})


def test_metrics_chart_leaves_a_missing_metric_out(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[list[float]] = []

    def heights(fig: Any) -> bytes:
        drawn.extend([[bar.get_height() for bar in c] for c in fig.axes[0].containers])
        return b""

    monkeypatch.setattr(html, "png_bytes", heights)
    reports = [
        _report("bpr", {"ndcg@10": 0.25, "recall@10": 0.5}),
        _report("ease", {"ndcg@10": 0.125}),
    ]
    html.metrics_chart(reports, ["ndcg@10", "recall@10"])
    assert drawn == [[0.25, 0.5], [0.125]]


def test_training_page_keeps_text_left_and_rounds_seconds() -> None:
    header = ["model folder", "model", "epochs", "best epoch", "best ndcg@10", "s/epoch"]
    rows = [["runs/bpr", EVIL, 12, 7, 0.31234, 13.41821], ["runs/ease", "ease", 1, "-", None, 0.5]]
    cells = Cells(html.training_page("Training curves", header, rows, None))
    assert cells.scripts == 0
    assert cells.cell("runs/bpr")[1] is None and cells.cell(EVIL)[1] is None
    assert cells.cell("s/epoch")[1] == "num" and cells.cell("best epoch")[1] == "num"
    assert cells.cell("13.4") == ("td", "num", "13.4")  # not 13.4182
    assert cells.cell("0.3123")[1] == "num"
    best_epochs = [text for tag, _, text in cells.cells if tag == "td"][3::6]
    assert best_epochs == ["7", MISSING]  # the caller's "-" is shown as the one dash


# ---------------------------------------------------------------------------- generation pages


def _keywords(kind: str, words: list[str]) -> Keywords:
    chat = [ChatMessage("user", f"keywords for {EVIL}")]
    attempt = Attempt(chat, raw=EVIL, parsed=words, truncated=False, temperature=0.0, seed=0)
    return Keywords("u1", kind, words, "llm:test", "text", attempts=[attempt])  # type: ignore[arg-type]


def _result(tmp: Any, scored: bool = True) -> GenerationResult:
    poster = tmp / "poster.png"
    Image.new("RGB", (40, 60), (200, 30, 30)).save(poster)
    history = UserHistory("u1", "movies", ["m0"], [EVIL], [f"{EVIL} (5 stars)"], [5.0], 4.0, 3)
    item = ItemText("m1", "movies", f"Target {EVIL}", "a target", {})
    prepared = Prepared(
        history, item, [str(poster)], str(poster), _keywords("user", ["space"]),
        _keywords("item", ["alien"]), torch.zeros(2, 4), [f"note {EVIL}"], {},
    )  # fmt: skip
    condition = {"prompt": f"a poster, {EVIL}", "negative_prompt": "blurry"}
    candidates = [
        Candidate(k, (1.0, 3.0), k, condition, Image.new("RGB", (8, 8)), None) for k in range(2)
    ]
    selection = None
    if scored:
        candidates[0].scores = {"d_p": 0.6, "d_t": 0.7, "z": -0.43}
        candidates[1].scores = {"d_p": 0.8, "d_t": 0.9, "z": -0.16}
        selection = {"alpha": 0.5, "best": 1, "scorer": "test"}
    components = {"domain": "movies", "extractor": "llm", "generator": {"model": "tiny"}}
    return GenerationResult(prepared, "both", candidates, selection, components)


def test_result_page_escapes_titles_prompts_and_llm_replies(tmp_path: Any) -> None:
    page = result_page(_result(tmp_path))
    assert Cells(page).scripts == 0
    assert "&lt;script&gt;" in page and "data:image/jpeg;base64," in page
    assert page.count("chosen (highest z)") == 1 and "z -0.1600" in page
    assert "src='candidates/01.png'" in page


def test_result_page_prompt_table_is_text_left_and_a_dash_for_no_dropped_keywords(
    tmp_path: Any,
) -> None:
    page = result_page(_result(tmp_path, scored=False))
    cells = Cells(page)
    assert cells.cell(f"a poster, {EVIL}")[1] is None and cells.cell("negative prompt")[1] is None
    assert cells.cell(MISSING) == ("td", None, MISSING)  # no dropped keywords, a text column
    assert "not scored" in page and "chosen (highest z)" not in page


def test_batch_page_escapes_and_dashes_a_missing_z() -> None:
    rows: list[dict[str, object]] = [
        {"folder": "000-u1-m1", "user_id": "u1", "title": EVIL, "z": -0.25, "prompt": "p"},
        {"folder": "001-u2-m1", "user_id": "u2", "title": "Heat", "z": None, "prompt": "q"},
    ]
    page = batch_page(rows)
    cells = Cells(page)
    assert cells.scripts == 0 and "000-u1-m1/index.html" in page
    assert cells.cell("-0.2500")[1] == "num" and cells.cell(MISSING)[1] == "num"
    assert cells.cell("Heat")[1] is None


def test_number_shows_missing_as_a_dash() -> None:
    assert number(None) == MISSING and number(float("nan")) == MISSING
    assert number(0.5, 2) == "0.50"


def test_evaluation_page_keeps_an_unmeasured_metric_a_right_aligned_dash() -> None:
    nan = float("nan")
    records = [
        PairRecord(
            "u1",
            "m1",
            m,
            0.6,
            0.7,
            -0.35,
            nan,
            nan,
            nan,
            0.2,
            0.1,
            nan,
            nan,
            1,
            [1.0, 1.0],
            0,
            EVIL,
        )
        for m in ("hard", "both")
    ]
    evaluation = GenerationEvaluation([("u1", "m1")], ["hard", "both"], 0.5, records, [EVIL])
    images = {("u1", "m1", m): f"images/000-{m}.png" for m in ("hard", "both")}
    page = evaluation_page(evaluation, images)
    cells = Cells(page)
    assert cells.scripts == 0 and "images/000-both.png" in page
    header = [c for c in cells.cells if c[0] == "th"]
    assert [cls for _, cls, _ in header] == [None, *(["num"] * (len(header) - 1))]
    hard = [c for c in cells.cells if c[0] == "td"][: len(header)]
    assert hard[0] == ("td", None, "hard") and hard[-1] == ("td", "num", MISSING)
