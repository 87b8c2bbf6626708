"""How a value is shown in a table: fixed decimals, missing values as "–", never a made-up 0.

Markdown tables and HTML pages share these rules, so a number reads the same in
``metrics.md`` and ``report.html``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from numbers import Number
from typing import Any

MISSING = "–"  # shown for a value that was not measured (None or NaN), never a made-up 0
PLACEHOLDERS = frozenset({MISSING, "-", "n/a"})  # strings callers already put for "missing"
LARGE = 10.0  # from here on, a column's figures (seconds, counts) keep one decimal


def is_missing(value: Any) -> bool:
    """None or NaN: a value that was not measured."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_number(value: Any) -> bool:
    """A measured number (bool is a flag, not a number)."""
    return isinstance(value, Number) and not isinstance(value, bool) and not is_missing(value)


def format_value(value: Any, digits: int = 4) -> str:
    """Floats with ``digits`` decimals, missing values as "–", anything else as ``str``."""
    if is_missing(value):
        return MISSING
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``"1 problem"``, ``"2 problems"``, ``"1,405 entries"`` (``many`` for irregular nouns)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def article(noun: str) -> str:
    """``"an item"``, ``"a user"``: the noun with its indefinite article (by its first letter)."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def is_count(name: str) -> bool:
    """A metric key that counts things (``n_users``, ``warm/n_items``), not a rate."""
    return name.rsplit("/", 1)[-1].startswith("n_")


def format_metric(name: str, value: Any, digits: int = 4) -> str:
    """A metric's value: counts as integers ("943", not "943.0000"), the rest as
    :func:`format_value` (metrics dictionaries hold counts as floats)."""
    if is_count(name) and is_number(value) and float(value).is_integer():
        return str(int(value))
    return format_value(value, digits)


def shown(value: Any, digits: int = 4) -> str:
    """What a page shows: :func:`format_value`, with every placeholder as the one "–"."""
    return MISSING if _placeholder(value) else format_value(value, digits)


def column_digits(
    header: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    digits: int = 4,
    text: Collection[Any] = (),
) -> list[int | None]:
    """Per column, the decimals its numbers get, or None for a column of text.

    A column is numeric unless it holds text (a string that is no placeholder) or
    is named in ``text``; a column with nothing measured is numeric too (a metric
    nobody has). Its floats keep ``digits`` decimals, one when one of them
    reaches :data:`LARGE` ("13.4 s", not "13.4182 s").
    """
    columns: list[list[Any]] = [[] for _ in header]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells for {len(header)} columns")
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    result: list[int | None] = []
    for name, column in zip(header, columns, strict=True):
        numbers = [v for v in column if is_number(v)]
        if name in text or any(not is_number(v) and not _placeholder(v) for v in column):
            result.append(None)
        else:
            large = any(isinstance(v, float) and abs(v) >= LARGE for v in numbers)
            result.append(1 if large else digits)
    return result


def _placeholder(value: Any) -> bool:
    return is_missing(value) or (isinstance(value, str) and value.strip() in PLACEHOLDERS)
