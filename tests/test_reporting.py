"""The neutral reporting helpers: Markdown tables and autoescaped template pages."""

from __future__ import annotations

import math

import pytest

from tastemaker.reporting.html import render
from tastemaker.reporting.markdown import MISSING, format_cell, markdown_table
from tastemaker.reporting.values import column_digits


def test_markdown_table_formats_floats_keeps_strings_and_shows_missing_values() -> None:
    rows = [["bpr", 0.30412, None], ["ease", math.nan, "a|b"]]
    table = markdown_table(["model", "ndcg@10", "note"], rows)
    assert table.splitlines() == [
        "| model | ndcg@10 | note |",
        "|---|---:|---:|",
        "| bpr | 0.3041 | – |",
        "| ease | – | a\\|b |",
    ]


def test_markdown_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        markdown_table(["a", "b", "c"], [[1, 2]])


def test_format_cell_digits_and_ints() -> None:
    assert format_cell(1.0, 2) == "1.00"
    assert format_cell(943) == "943"
    assert format_cell(None) == MISSING


def test_pages_escape_what_they_are_given() -> None:
    page = render("base.html.j2", title="<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_column_digits_tells_number_columns_from_text_and_rounds_large_figures() -> None:
    header = ["model", "epochs", "ndcg", "s/epoch", "note"]
    rows = [["bpr", 12, 0.3, 13.41, "ok"], ["ease", "-", None, 0.5, None]]
    assert column_digits(header, rows) == [None, 4, 4, 1, None]
    assert column_digits(header, rows, text=["epochs"]) == [None, None, 4, 1, None]
    assert column_digits(["a"], [[None], ["–"]]) == [4]  # nothing measured: still numbers
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        column_digits(["a", "b"], [[1]])


def test_table_macro_cells_are_not_markdown_escaped() -> None:
    page = render(
        "training.html.j2", title="t", header=["a", "b"], rows=[["x|y", 1.5]], chart=None,
        settings=None,
    )  # fmt: skip
    assert "x|y" in page and "x\\|y" not in page
