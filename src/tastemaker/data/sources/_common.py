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
from tastemaker.data.interactions import Interactions, normalise_frame, without_invalid
from tastemaker.data.manifest import Manifest
from tastemaker.errors import ConfigError, DataError, excerpt

STRINGS = pl.List(pl.Utf8)
#: How a separator is named in a message, and written on the command line.
SEPARATOR_NAMES = {
    ",": ("comma", "','"),
    ";": ("';'", "';'"),
    "\t": ("tab", "tab"),
    "|": ("'|'", "'|'"),
}
#: Compressed files Polars unpacks itself (gzip, zstd): not binary to :func:`check_text`.
_COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd")
_CONTROL = frozenset(range(32)) - {9, 10, 12, 13}


def first_line(exc: BaseException) -> str:
    """The first line of an exception message (Polars adds pages of hints)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def check_text(path: Path, fix: str) -> None:
    """A DataError when ``path`` holds binary data (a spreadsheet, an archive, a database)
    rather than delimited text: Polars would otherwise quote its bytes as column names."""
    with open(path, "rb") as probe:
        sample = probe.read(8192)
    if sample.startswith(_COMPRESSED):
        return
    controls = sum(byte in _CONTROL for byte in sample)
    if b"\x00" in sample or controls > len(sample) // 10:
        raise DataError(
            f"{path} is not a text CSV file (it holds binary data)",
            f"{fix}; export a spreadsheet as CSV text first",
        )


def reject_separator(sep: str | None, what: str) -> None:
    """``sep`` chooses the delimiter of CSV files; ``what`` has a fixed format."""
    if sep is not None:
        raise ConfigError(
            f"a separator ({sep!r}) was given, but {what} has a fixed file format",
            "drop --sep (sep=None in Python); it applies to CSV files only",
        )


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
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read the ``schema`` columns of a delimited file, or explain why not.

    With ``has_header`` the named columns are picked from the header (others are
    skipped, which keeps 25M-row files fast); without it ``schema`` lists every
    column in file order. ``data`` is the file content already re-encoded to
    UTF-8 (for Latin-1 or ``::``-separated files). A column outside
    ``nullable`` with an empty value means a cut or garbled row; a header
    without rows is an error unless ``allow_empty``.
    """
    path = Path(path)
    if data is None:
        if not path.is_file():
            raise DataError(f"{path} is missing", fix)
        check_text(path, fix)
    source: Path | io.BytesIO = path if data is None else io.BytesIO(data)
    options: dict[str, Any] = {
        "separator": separator,
        "quote_char": quote_char,
        "infer_schema": False,
    }
    try:
        if has_header:
            header = pl.read_csv(source, n_rows=0, **options).columns
            require_columns(path, header, schema, fix, separator=separator)
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
    if has_header and frame.is_empty() and not allow_empty:
        raise DataError(f"{path} has a header but no rows", f"add its data rows ({fix})")
    optional = set(nullable)
    for column in schema:
        if column not in optional and frame[column].null_count():
            row = int(frame[column].is_null().arg_max() or 0) + 1
            raise DataError(
                f"{path} is truncated or garbled: data row {row} has no '{column}' value", fix
            )
    return frame


def require_columns(
    path: Path, present: list[str], wanted: Iterable[str], fix: str, *, separator: str = ","
) -> None:
    """A wanted column missing from ``path`` is a DataError listing those that exist; a
    header read as one column that holds another separator names that separator."""
    missing = [c for c in wanted if c not in present]
    if not missing:
        return
    if len(present) == 1:
        other = next((s for s in SEPARATOR_NAMES if s != separator and s in present[0]), None)
        if other is not None:
            name, flag = SEPARATOR_NAMES[other]
            raise DataError(
                f"{path} looks {name}-separated: its header is one column "
                f"('{excerpt(present[0])}') when read as {SEPARATOR_NAMES[separator][0]}-separated",
                f"use a {SEPARATOR_NAMES[separator][0]}-separated file, or pass --sep {flag} "
                f"(sep={other!r} in Python)",
            )
    raise DataError(
        f"{path} has no column {', '.join(map(repr, missing))} "
        f"(columns: {excerpt(', '.join(present), 120) or 'none'})",
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
    *,
    drop_invalid: bool = False,
) -> Dataset:
    """Wrap loader output in a Dataset whose manifest says where it came from.

    Interactions with a NaN or infinite rating or timestamp are a DataError naming the
    first, or with ``drop_invalid`` are dropped, as a manifest step with their count.
    """
    catalog = Catalog(items)
    if posters is not None:
        catalog = catalog.with_images(Path(posters), "{item_id}.jpg")
        source = {**source, "posters": str(Path(posters).resolve())}
    manifest = Manifest(name=name, source=source, source_files=source_files).with_step(
        "load", rows_after=interactions.height
    )
    if drop_invalid:
        interactions, dropped = without_invalid(interactions)
        manifest = manifest.with_step("drop_invalid", interactions.height, dropped=dropped)
    where = f"{next(iter(source_files), 'the interaction table')} of '{name}'"
    return Dataset(catalog, Interactions(normalise_frame(interactions, where)), manifest)
