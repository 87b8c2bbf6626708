"""Pieces every loader needs: strict table reading, JSON lines, Dataset assembly.

Loaders differ in file layout only; the checks that turn a truncated or renamed
file into a one-line :class:`DataError` live here, once.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.atomic import file_sha256
from tastemaker.data.catalog import ITEM_ID, TITLE, Catalog
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import Interactions
from tastemaker.data.manifest import Manifest
from tastemaker.errors import DataError

STRINGS = pl.List(pl.Utf8)


def first_line(exc: BaseException) -> str:
    """The first line of an exception message (Polars adds pages of hints)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def read_table(
    path: Path,
    schema: Mapping[str, pl.DataType],
    *,
    fix: str,
    separator: str = ",",
    has_header: bool = True,
    data: bytes | None = None,
    quote_char: str | None = '"',
    nullable: Iterable[str] = (),
) -> pl.DataFrame:
    """Read the ``schema`` columns of a delimited file, or explain why not.

    With ``has_header`` the named columns are picked from the header (others are
    skipped, which keeps 25M-row files fast); without it ``schema`` lists every
    column in file order. ``data`` is the file content already re-encoded to
    UTF-8 (for Latin-1 or ``::``-separated files). A column outside
    ``nullable`` with an empty value means a cut or garbled row.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise DataError(f"{path} is missing", fix)
    source: Path | io.BytesIO = path if data is None else io.BytesIO(data)
    options: dict[str, Any] = {
        "separator": separator,
        "quote_char": quote_char,
        "infer_schema": False,
    }
    try:
        if has_header:
            require_columns(path, pl.read_csv(source, n_rows=0, **options).columns, schema, fix)
            if isinstance(source, io.BytesIO):
                source.seek(0)
            frame = pl.read_csv(
                source, columns=list(schema), schema_overrides=dict(schema), **options
            )
        else:
            frame = pl.read_csv(source, has_header=False, schema=pl.Schema(schema), **options)
    except pl.exceptions.NoDataError as exc:
        raise DataError(f"{path} is empty", fix) from exc
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path} is truncated or garbled ({first_line(exc)})", fix) from exc
    optional = set(nullable)
    for column in schema:
        if column not in optional and frame[column].null_count():
            row = int(frame[column].is_null().arg_max() or 0) + 1
            raise DataError(
                f"{path} is truncated or garbled: data row {row} has no '{column}' value", fix
            )
    return frame


def require_columns(path: Path, present: list[str], wanted: Iterable[str], fix: str) -> None:
    """A wanted column missing from ``path`` is a DataError listing those that exist."""
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(present) or 'none'})",
            fix,
        )


def reencode_latin1(path: Path, fix: str, separator: bytes | None = None) -> bytes:
    """File bytes as UTF-8, optionally with a multi-byte separator made a tab.

    Polars reads UTF-8 with one-byte separators only; the old MovieLens files
    are Latin-1 and the ``.dat`` ones use ``::``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing", fix)
    raw = path.read_bytes()
    if separator is not None:
        raw = raw.replace(separator, b"\t")
    return raw.decode("latin-1").encode("utf-8")


def iter_json_lines(path: Path, fix: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, record)`` from a JSON-lines file, gzipped or not.

    Streams, so a multi-GB review dump never sits in memory as text.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing", fix)
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    number = 0
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path} line {number} is not valid JSON ({exc.msg}; truncated or garbled)",
                        fix,
                    ) from exc
                if not isinstance(record, dict):
                    raise DataError(f"{path} line {number} is not a JSON object", fix)
                yield number, record
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path} is truncated or corrupt after line {number} ({first_line(exc)})", fix
        ) from exc


def split_labels(text: pl.Expr, separator: str) -> pl.Expr:
    """``"a|b| "`` → ``["a", "b"]``: blanks dropped, a missing value is an empty list."""
    return (
        text.fill_null("")
        .str.split(separator)
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
    )


def hash_files(paths: Iterable[Path]) -> dict[str, str]:
    """``file name -> sha256`` for the manifest."""
    return {Path(p).name: file_sha256(Path(p)) for p in paths}


def add_missing_items(items: pl.DataFrame, item_ids: pl.Series) -> pl.DataFrame:
    """Append a bare row (title = ID) for every interacted item absent from ``items``.

    Review dumps and user tables often lack metadata for some items; a catalog
    row keeps those interactions instead of failing the whole load.
    """
    known = items[ITEM_ID].cast(pl.Utf8)
    extra = item_ids.cast(pl.Utf8).unique(maintain_order=True)
    extra = extra.filter(~extra.is_in(known.implode()))
    if extra.is_empty():
        return items
    bare = pl.DataFrame({ITEM_ID: extra, TITLE: extra})
    out = pl.concat([items.with_columns(pl.col(ITEM_ID).cast(pl.Utf8)), bare], how="diagonal")
    lists = [n for n, t in out.schema.items() if t == STRINGS]
    return out.with_columns(pl.col(n).fill_null(pl.lit([], dtype=STRINGS)) for n in lists)


def make_dataset(
    name: str,
    source: dict[str, Any],
    source_files: dict[str, str],
    items: pl.DataFrame,
    interactions: pl.DataFrame,
    posters: Path | None = None,
) -> Dataset:
    """Wrap loader output in a Dataset whose manifest says where it came from."""
    catalog = Catalog(items)
    if posters is not None:
        catalog = catalog.with_images(Path(posters), "{item_id}.jpg")
        source = {**source, "posters": str(Path(posters).resolve())}
    manifest = Manifest(name=name, source=source, source_files=source_files).with_step(
        "load", rows_after=interactions.height
    )
    return Dataset(catalog, Interactions(interactions), manifest)
