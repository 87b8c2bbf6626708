"""Amazon Reviews, 2018 (Ni et al.) and 2023 (Hou et al.) releases, as JSON lines.

Both come as one review file and one ``meta_`` file per category, optionally
gzipped: https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/ and
https://amazon-reviews-2023.github.io/. Files are streamed line by line, so a
bad line is reported with its number instead of failing somewhere in a bulk
parser. Items reviewed but missing from the metadata still get a catalog row
(title = item ID), so no review is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.data.catalog import IMAGE, ITEM_ID, TITLE
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TEXT, TIMESTAMP, USER_ID
from tastemaker.data.sources._common import (
    STRINGS,
    add_missing_items,
    hash_files,
    iter_json_lines,
    make_dataset,
)
from tastemaker.errors import DataError

FIX = "download the file again (the Amazon Reviews files are JSON, one object per line)"
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")

INTERACTION_SCHEMA = {
    USER_ID: pl.Utf8,
    ITEM_ID: pl.Utf8,
    RATING: pl.Float32,
    TIMESTAMP: pl.Int64,
    TEXT: pl.Utf8,
}
ITEMS_2018 = {
    ITEM_ID: pl.Utf8,
    TITLE: pl.Utf8,
    IMAGE: pl.Utf8,
    "description": pl.Utf8,
    "brand": STRINGS,
    "categories": STRINGS,
    "price": pl.Float64,
}
ITEMS_2023 = {
    ITEM_ID: pl.Utf8,
    TITLE: pl.Utf8,
    IMAGE: pl.Utf8,
    "description": pl.Utf8,
    "features": pl.Utf8,
    "main_category": STRINGS,
    "store": STRINGS,
    "categories": STRINGS,
    "price": pl.Float64,
}

Record = dict[str, Any]
Extract = Callable[[Record], tuple[Any, ...]]


def load_amazon_2018(
    reviews_path: Path,
    meta_path: Path | None = None,
    *,
    posters: Path | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Reviews (``reviewerID, asin, overall, unixReviewTime, reviewText, summary``) and metadata;
    ``drop_invalid`` drops NaN or infinite ratings instead of refusing them."""
    return _load(
        "amazon-2018",
        Path(reviews_path),
        meta_path,
        (_review_2018, _item_2018, ITEMS_2018),
        posters,
        drop_invalid,
    )


def load_amazon_2023(
    reviews_path: Path,
    meta_path: Path | None = None,
    *,
    posters: Path | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Reviews (``user_id, parent_asin, rating, timestamp`` in ms, ``title, text``) and metadata.

    Items are identified by ``parent_asin``: the 2023 release groups variants
    (sizes, colours) under it, and its metadata is keyed by it. ``drop_invalid`` as
    in :func:`load_amazon_2018`.
    """
    return _load(
        "amazon-2023",
        Path(reviews_path),
        meta_path,
        (_review_2023, _item_2023, ITEMS_2023),
        posters,
        drop_invalid,
    )


def _load(
    kind: str,
    reviews_path: Path,
    meta_path: Path | None,
    release: tuple[Extract, Extract, dict[str, pl.DataType]],
    posters: Path | None,
    drop_invalid: bool,
) -> Dataset:
    """One release's files: ``release`` is (review fields, item fields, item schema)."""
    review, item, item_schema = release
    interactions = _collect(reviews_path, review, INTERACTION_SCHEMA)
    if interactions.is_empty():
        raise DataError(f"{reviews_path} has no reviews", "pass the category's review file")
    files = [reviews_path]
    if meta_path is None:  # no metadata: no empty attribute columns either
        items = pl.DataFrame(schema={ITEM_ID: pl.Utf8})
    else:
        files.append(Path(meta_path))
        items = _collect(Path(meta_path), item, item_schema)
        # The 2018 metadata repeats some products; the first record wins.
        items = items.unique(ITEM_ID, keep="first", maintain_order=True)
    items = add_missing_items(items, interactions[ITEM_ID])
    name = re.sub(r"(\.jsonl?)?(\.gz)?$", "", reviews_path.name)
    source = {"kind": kind, "variant": name, "location": str(reviews_path.resolve().parent)}
    return make_dataset(
        f"{kind}-{name}",
        source,
        hash_files(files),
        items,
        interactions,
        posters,
        drop_invalid=drop_invalid,
    )


def _collect(
    path: Path, extract: Callable[[Record], tuple[Any, ...]], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """Stream ``path`` into columns of ``schema`` via ``extract`` (one tuple per record)."""
    columns: list[list[Any]] = [[] for _ in schema]
    for number, record in iter_json_lines(path, FIX):
        try:
            values = extract(record)
        except KeyError as exc:
            raise DataError(
                f"{path} line {number} has no {exc} field "
                f"(keys: {', '.join(sorted(record)) or 'none'})",
                "pass the matching release's file (reviews vs meta_, 2018 vs 2023)",
            ) from exc
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{path} line {number} has a value of the wrong type ({exc})", FIX
            ) from exc
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return pl.DataFrame(dict(zip(schema, columns, strict=True)), schema=schema)


def _joined(*parts: Any) -> str | None:
    """Non-empty text parts joined by '. ' (review title/summary, then body)."""
    kept = [p.strip() for p in parts if isinstance(p, str) and p.strip()]
    return ". ".join(kept) or None


def _text(value: Any) -> str | None:
    """A string, or a list of strings joined by spaces (descriptions, features)."""
    if isinstance(value, list):
        value = " ".join(v.strip() for v in value if isinstance(v, str) and v.strip())
    return (value.strip() or None) if isinstance(value, str) else None


def _labels(value: Any) -> list[str]:
    """A categorical field as a list: one string, or a list of strings."""
    values = value if isinstance(value, list) else [value]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _price(value: Any) -> float | None:
    """``12.99``, ``"$12.99"`` or ``"$1,299.00 - $1,499.00"`` (lower bound); else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _NUMBER.search(value) if isinstance(value, str) else None
    return float(match.group().replace(",", "")) if match else None


def _first_url(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v), None)
    return (value or None) if isinstance(value, str) else None


def _review_2018(r: Record) -> tuple[Any, ...]:
    return (
        str(r["reviewerID"]),
        str(r["asin"]),
        float(r["overall"]) if r.get("overall") is not None else None,
        int(r["unixReviewTime"]) if r.get("unixReviewTime") is not None else None,
        _joined(r.get("summary"), r.get("reviewText")),
    )


def _item_2018(r: Record) -> tuple[Any, ...]:
    image = _first_url(r.get("imageURLHighRes")) or _first_url(r.get("imageURL"))
    return (
        str(r["asin"]),
        _text(r.get("title")) or str(r["asin"]),
        image or _first_url(r.get("imUrl")),
        _text(r.get("description")),
        _labels(r.get("brand")),
        _labels(r.get("category")),
        _price(r.get("price")),
    )


def _review_2023(r: Record) -> tuple[Any, ...]:
    return (
        str(r["user_id"]),
        str(r["parent_asin"]),
        float(r["rating"]) if r.get("rating") is not None else None,
        int(r["timestamp"]) // 1000 if r.get("timestamp") is not None else None,
        _joined(r.get("title"), r.get("text")),
    )


def _item_2023(r: Record) -> tuple[Any, ...]:
    images = r.get("images") or []
    first = images[0] if isinstance(images, list) and images else {}
    image = (first.get("hi_res") or first.get("large")) if isinstance(first, dict) else None
    return (
        str(r["parent_asin"]),
        _text(r.get("title")) or str(r["parent_asin"]),
        image or None,
        _text(r.get("description")),
        _text(r.get("features")),
        _labels(r.get("main_category")),
        _labels(r.get("store")),
        _labels(r.get("categories")),
        _price(r.get("price")),
    )
