"""One Markdown-table builder for every results file and report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tastemaker.reporting.values import MISSING, format_value

__all__ = ["MISSING", "Align", "format_cell", "markdown_table"]

Align = Literal["left", "right", "center"]
_RULES = {"left": "---", "right": "---:", "center": ":---:"}


def format_cell(value: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, missing values as "–", anything else as ``str``.

    Pipes are escaped so a cell can never break the table.
    """
    return format_value(value, digits).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    align: Sequence[Align] | None = None,
    digits: int = 4,
) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest right by default.

    Cells already given as strings are kept as they are (callers format special values).
    """
    if align is None:
        align = ["left", *(["right"] * (len(header) - 1))]
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} entries for {len(header)} columns")
    lines = [
        "| " + " | ".join(format_cell(h) for h in header) + " |",
        "|" + "|".join(_RULES[a] for a in align) + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns")
        lines.append("| " + " | ".join(format_cell(c, digits) for c in row) + " |")
    return "\n".join(lines)
