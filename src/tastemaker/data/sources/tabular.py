"""Any interaction table (CSV, TSV, Parquet) with a column mapping, plus an optional item table.

For data that no dedicated loader knows: the user names the columns, and the
loader does the conversions every table needs (IDs as strings, ratings as
floats, dates as Unix seconds, ``"a|b"`` strings as category lists).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tastemaker.config import DataConfig
from tastemaker.data.catalog import FIXED, IMAGE, ITEM_ID, TITLE
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TEXT, TIMESTAMP, USER_ID
from tastemaker.data.sources._common import (
    STRINGS,
    add_missing_items,
    check_text,
    first_line,
    hash_files,
    make_dataset,
    require_columns,
    split_labels,
)
from tastemaker.errors import ConfigError, DataError

SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET = (".parquet", ".pq")


class ItemColumns(BaseModel):
    """Column names in the item table; ``lists`` maps a column to its separator."""

    model_config = ConfigDict(extra="forbid")

    item: str | None = Field(None, description="item ID column; default: the same as `item`")
    title: str | None = None
    image: str | None = None
    lists: dict[str, str] = Field(default_factory=dict, description='e.g. {"genres": "|"}')
    keep: list[str] | None = Field(None, description="the other columns kept; default: all")


class ColumnMapping(BaseModel):
    """Which column of the interaction table holds what."""

    model_config = ConfigDict(extra="forbid")

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = Field(None, description="Unix seconds or ISO 8601 dates")
    text: str | None = None
    items: ItemColumns = Field(default_factory=ItemColumns)


def load_table(
    path: Path,
    mapping: ColumnMapping,
    items_path: Path | None = None,
    name: str | None = None,
    *,
    posters: Path | None = None,
    sep: str | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Load interactions from ``path`` (and items from ``items_path``) using ``mapping``.

    ``sep``: the delimiter of CSV/TSV files (default: by suffix, ``,`` or tab).
    ``drop_invalid``: drop NaN or infinite ratings and timestamps (recorded in the
    manifest) instead of refusing them.
    """
    path = Path(path)
    wanted = {
        USER_ID: mapping.user,
        ITEM_ID: mapping.item,
        RATING: mapping.rating,
        TIMESTAMP: mapping.timestamp,
        TEXT: mapping.text,
    }
    columns = {target: column for target, column in wanted.items() if column is not None}
    frame = _read(path, columns.values(), text=[mapping.user, mapping.item], sep=sep)
    if frame.is_empty():
        raise DataError(f"{path} has a header but no rows", "add its interaction rows")
    interactions = frame.select(pl.col(c).alias(t) for t, c in columns.items())
    if RATING in columns:
        interactions = interactions.with_columns(_number(frame[columns[RATING]], path))
    if TIMESTAMP in columns:
        interactions = interactions.with_columns(
            _seconds(frame[columns[TIMESTAMP]], path).alias(TIMESTAMP)
        )
    files = [path]
    if items_path is None:
        items = pl.DataFrame(schema={ITEM_ID: pl.Utf8})
    else:
        files.append(Path(items_path))
        items = _items(Path(items_path), mapping.items, mapping.item, sep)
    items = add_missing_items(items, interactions[ITEM_ID])
    source = {
        "kind": "table",
        "location": str(path.resolve()),
        "mapping": mapping.model_dump(exclude_defaults=True),
    }
    return make_dataset(
        name or path.stem,
        source,
        hash_files(files),
        items,
        interactions,
        posters,
        drop_invalid=drop_invalid,
    )


#: ``--item-cols`` roles: ``name:title``, ``poster:image``, ``genres:list`` (split on "|").
ROLES = ("title", "image", "list")


def item_columns(item: str | None, specs: list[str] | None) -> ItemColumns:
    """Item-table columns from ``--item-cols`` entries: ``col`` keeps a column as it is,
    ``col:title`` / ``col:image`` make it the title or image path, ``col:list`` splits
    ``"a|b"`` into labels; None keeps every column."""
    if specs is None:
        return ItemColumns(item=item)
    roles: dict[str, str | None] = {"title": None, "image": None}
    lists, keep = {}, []
    for spec in specs:
        column, _, role = spec.partition(":")
        if role and role not in ROLES:
            raise ConfigError(
                f"--item-cols entry {spec!r} has an unknown role {role!r}",
                f"write COLUMN or COLUMN:ROLE with a role of {', '.join(ROLES)}",
            )
        if role == "list":
            lists[column] = "|"
        elif role:
            roles[role] = column
        else:
            keep.append(column)
    return ItemColumns(item=item, lists=lists, keep=keep, **roles)


def load_configured_table(config: DataConfig) -> Dataset:
    """The table a ``[data]`` section names (``table``, ``user_col``, ... ``item_cols``),
    read with its options: what ``tastemaker data prepare --table`` loads."""
    if config.table is None or config.user_col is None or config.item_col is None:
        raise ConfigError(
            "no table with user and item columns was configured",
            "pass --table FILE --user-col NAME --item-col NAME",
        )
    mapping = ColumnMapping(
        user=config.user_col,
        item=config.item_col,
        rating=config.rating_col,
        timestamp=config.timestamp_col,
        items=item_columns(config.item_id_col, config.item_cols),
    )
    return load_table(
        config.table,
        mapping,
        config.items,
        posters=config.posters,
        sep=config.sep,
        drop_invalid=config.drop_invalid,
    )


def _read(path: Path, columns: Iterable[str], text: list[str], sep: str | None) -> pl.DataFrame:
    """Read a CSV/TSV/Parquet file; ``text`` columns stay strings (IDs like '007')."""
    wanted = list(columns)
    fix = "map the columns to names that exist in the file"
    if not path.is_file():
        raise DataError(f"{path} is missing", "pass an existing file")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET:
            frame = pl.read_parquet(path)
            require_columns(path, frame.columns, wanted, fix)
            return frame.with_columns(pl.col(c).cast(pl.Utf8) for c in text)
        if suffix not in SEPARATORS:
            raise DataError(
                f"{path} is neither CSV, TSV nor Parquet (by its suffix)",
                f"name it with one of {', '.join([*SEPARATORS, *PARQUET])}",
            )
        check_text(path, "pass the table as CSV or TSV text, or as Parquet")
        separator = sep or SEPARATORS[suffix]
        options = {"separator": separator, "infer_schema_length": 10_000}
        header = pl.read_csv(path, n_rows=0, **options).columns
        require_columns(path, header, wanted, fix, separator=separator)
        return pl.read_csv(path, schema_overrides=dict.fromkeys(text, pl.Utf8), **options)
    except pl.exceptions.NoDataError as exc:
        raise DataError(f"{path} is empty", "pass a file with a header and rows") from exc
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"{path} is truncated or garbled ({first_line(exc)})", "check or re-export the file"
        ) from exc


def _number(column: pl.Series, path: Path) -> pl.Series:
    """The rating column as floats; a non-number is named, not turned into null."""
    converted = column.cast(pl.Float32, strict=False)
    bad = column.is_not_null() & converted.is_null()
    if bad.any():
        raise DataError(
            f"{path} column '{column.name}' has a non-number ({column.filter(bad)[0]!r})",
            "keep only numbers in that column, or map another one",
        )
    return converted.alias(RATING)


def _seconds(column: pl.Series, path: Path) -> pl.Series:
    """Unix seconds from integer/float seconds, dates, or ISO 8601 strings (UTC if no zone).

    Float seconds stay floats: the Dataset names a NaN among them before making them integers.
    """
    if column.dtype.is_float():
        return column
    if column.dtype.is_numeric():
        return column.cast(pl.Int64)
    if column.dtype == pl.Date:
        column = column.cast(pl.Datetime("us"))
    if isinstance(column.dtype, pl.Datetime):
        return column.dt.epoch("s")
    text = column.cast(pl.Utf8).str.strip_chars()
    if text.drop_nulls().str.contains(r"^-?\d+$").all():
        return text.cast(pl.Int64)
    try:  # fast path: one format throughout (Polars infers it from the first value)
        return text.str.to_datetime(time_zone="UTC", strict=True).dt.epoch("s")
    except pl.exceptions.PolarsError:
        pass
    values = text.drop_nulls().unique().to_list()
    seconds = []
    for value in values:  # mixed ISO 8601 forms: parse each distinct value
        try:
            seconds.append(_iso_seconds(value))
        except ValueError as exc:
            raise DataError(
                f"{path} column '{column.name}' has times that are neither Unix seconds nor "
                f"ISO 8601 dates (e.g. {value!r})",
                "write times as Unix seconds or like 2020-01-31T12:00:00",
            ) from exc
    return text.replace_strict(values, seconds, default=None, return_dtype=pl.Int64)


def _iso_seconds(value: str) -> int:
    """Unix seconds of an ISO 8601 date or time; no zone means UTC."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def _items(path: Path, columns: ItemColumns, default_item: str, sep: str | None) -> pl.DataFrame:
    """The item table with mapped columns renamed and list columns split."""
    item = columns.item or default_item
    pairs = ((item, ITEM_ID), (columns.title, TITLE), (columns.image, IMAGE))
    named = {column: fixed for column, fixed in pairs if column is not None}
    frame = _read(path, [*named, *columns.lists, *(columns.keep or ())], text=[item], sep=sep)
    if columns.keep is not None:
        frame = frame.select(list(dict.fromkeys([*named, *columns.lists, *columns.keep])))
    clash = [c for c in frame.columns if c in FIXED and c not in named]
    if clash:
        raise ConfigError(
            f"{path} has a column named {clash[0]!r} that is not mapped as the {clash[0]}",
            f"map it (items.{clash[0].replace('item_id', 'item')}) or rename it",
        )
    frame = frame.rename(named)
    fields = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if name in columns.lists:
            fields.append(split_labels(column.cast(pl.Utf8), columns.lists[name]))
        elif name in FIXED or dtype.is_numeric() or dtype in (pl.Utf8, STRINGS):
            fields.append(column)
        else:
            fields.append(column.cast(pl.Utf8))  # dates, booleans: kept as text
    frame = frame.select(fields)
    if IMAGE in frame.columns:
        frame = frame.with_columns(_absolute_images(frame[IMAGE], path.parent))
    return frame


def _absolute_images(images: pl.Series, base: Path) -> pl.Series:
    """Relative image paths are relative to the item table, so the data folder can move."""
    return pl.Series(
        IMAGE,
        [
            p if p is None or "://" in p or Path(p).is_absolute() else str((base / p).resolve())
            for p in images.cast(pl.Utf8).to_list()
        ],
        dtype=pl.Utf8,
    )
