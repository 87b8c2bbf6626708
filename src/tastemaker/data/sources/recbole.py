"""RecBole atomic files: ``<name>.inter`` plus an optional ``<name>.item``.

Atomic files are tab-separated with typed headers (``item_id:token``,
``class:token_seq``, ``rating:float``); see
https://recbole.io/docs/user_guide/data/atomic_files.html. Types map onto the
Catalog's field kinds: ``token_seq`` → list of strings (categorical), ``float``
→ number, ``token`` → text. ``float_seq`` fields (pre-computed vectors) have no
Catalog kind and are skipped.

``<name>.user`` (age, gender, occupation, …) is not read: tastemaker models
items as attribute dictionaries but users only through their interactions.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tastemaker.data.catalog import ITEM_ID, TITLE
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TIMESTAMP, USER_ID
from tastemaker.data.sources._common import (
    add_missing_items,
    hash_files,
    make_dataset,
    read_table,
    split_labels,
)
from tastemaker.errors import DataError

FIX = "use RecBole atomic files as published (tab-separated, header 'name:type')"
TYPES = ("token", "token_seq", "float", "float_seq")


def find_inter_file(folder: Path) -> Path | None:
    """``<folder name>.inter`` if present, else the folder's only ``.inter`` file."""
    folder = Path(folder)
    named = folder / f"{folder.name}.inter"
    if named.is_file():
        return named
    found = sorted(folder.glob("*.inter"))
    return found[0] if len(found) == 1 else None


def load_atomic(
    folder: Path, posters: Path | None = None, *, drop_invalid: bool = False
) -> Dataset:
    """Load ``<name>.inter`` (and ``<name>.item`` when present) from ``folder``.

    Interaction fields ``user_id``, ``item_id``, ``rating`` and ``timestamp``
    are used (RecBole's default field names); other ``.inter`` fields are not.
    ``drop_invalid``: drop NaN or infinite ratings and timestamps instead of refusing them.
    """
    folder = Path(folder)
    inter_path = find_inter_file(folder)
    if inter_path is None:
        found = ", ".join(p.name for p in sorted(folder.glob("*.inter"))) or "none"
        raise DataError(
            f"{folder} needs exactly one RecBole .inter file or '{folder.name}.inter' "
            f"(found: {found})",
            "point to a folder holding one data set's atomic files",
        )
    inter = _read_atomic(inter_path, required=None)
    for needed in (USER_ID, ITEM_ID):
        if needed not in inter.columns:
            raise DataError(
                f"{inter_path} has no '{needed}' field (fields: {', '.join(inter.columns)})",
                f"name the field '{needed}:token' as RecBole does",
            )
    # Ratings and timestamps keep their file types here: the Dataset casts them once it
    # has checked that none is NaN or infinite (a cast would fail on those unnamed).
    interactions = inter.select(
        pl.col(USER_ID),
        pl.col(ITEM_ID),
        *(
            pl.col(c) if c in inter.columns else pl.lit(None, dtype).alias(c)
            for c, dtype in ((RATING, pl.Float32), (TIMESTAMP, pl.Int64))
        ),
    )
    item_path = inter_path.with_suffix(".item")
    files = [inter_path]
    if item_path.is_file():
        files.append(item_path)
        items = _read_atomic(item_path, required=ITEM_ID)
    else:
        items = pl.DataFrame({ITEM_ID: []}, schema={ITEM_ID: pl.Utf8})
    items = add_missing_items(items, interactions[ITEM_ID])
    source = {"kind": "recbole", "variant": inter_path.stem, "location": str(folder.resolve())}
    return make_dataset(
        inter_path.stem,
        source,
        hash_files(files),
        items,
        interactions,
        posters,
        drop_invalid=drop_invalid,
    )


def _read_atomic(path: Path, *, required: str | None) -> pl.DataFrame:
    """Read an atomic file, each ``name:type`` column converted to its Catalog dtype.

    Every field must be filled unless ``required`` names the only one that must
    be (item files leave attributes empty). The first field whose name contains
    "title" becomes ``title``, kept as written even when typed ``token_seq``.
    """
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    fields: dict[str, str] = {}
    for column in header:
        name, sep, kind = column.partition(":")
        if not sep or kind not in TYPES:
            raise DataError(
                f"{path} header field '{column}' is not 'name:type' with type in "
                f"{', '.join(TYPES)}",
                FIX,
            )
        fields[name] = kind
    if required is not None and required not in fields:
        raise DataError(
            f"{path} has no '{required}' field (fields: {', '.join(fields)})",
            f"name the field '{required}:token' as RecBole does",
        )
    raw = read_table(
        path,
        dict.fromkeys(header, pl.Utf8),
        fix=FIX,
        separator="\t",
        quote_char=None,
        nullable=[] if required is None else [c for c in header if c != f"{required}:token"],
        allow_empty=required is not None,
    ).rename(dict(zip(header, fields, strict=True)))
    title = next((n for n in fields if TITLE in n), None) if required == ITEM_ID else None
    columns = []
    for name, kind in fields.items():
        column = pl.col(name)
        if name == title:
            columns.append(column.alias(TITLE))
        elif kind == "token":
            columns.append(column)
        elif kind == "token_seq":
            columns.append(split_labels(column, " "))
        elif kind == "float":
            columns.append(column.str.strip_chars().cast(pl.Float64, strict=False))
    converted = raw.select(columns)
    for name, kind in fields.items():
        if kind == "float":
            bad = raw[name].is_not_null() & converted[name].is_null()
            if bad.any():
                raise DataError(
                    f"{path} field '{name}' has a non-number in data row "
                    f"{int(bad.arg_max() or 0) + 1}",
                    FIX,
                )
    return converted
