"""What the text tasks read: a data set's ratings and catalog, plus per-user tag applications.

The MovieLens loader folds ``tags.csv`` into one tag list per movie (every user's
tags together) and drops who wrote them; the LaMP-style tasks need the user, so
the tag table is read here again from the data folder, with its ``userId``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.errors import DataError

#: Catalog columns that hold an item's genres, by data-set layout (first present wins).
GENRE_COLUMNS = ("genres", "class", "categories")
TAGS_FILE = "tags.csv"
_SPACES = re.compile(r"\s+")


def normalise_tag(tag: str) -> str:
    """A tag as the tasks compare it: stripped, lower-case, inner whitespace collapsed."""
    return _SPACES.sub(" ", tag.strip().lower())


def item_text(title: str, genres: list[str] | tuple[str, ...]) -> str:
    """An item as prompts and retrievers see it: title and genres, nothing the user wrote."""
    return f"{title} (genres: {', '.join(genres)})" if genres else title


@dataclass(frozen=True)
class ItemInfo:
    """One movie's attributes: title, genres, and every user's tags (normalised)."""

    item_id: str
    title: str
    genres: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        return item_text(self.title, self.genres)


@dataclass(frozen=True)
class TextData:
    """Ratings (user_id, item_id, rating, timestamp), items, and tag applications or None."""

    name: str
    ratings: pl.DataFrame
    items: dict[str, ItemInfo]
    tags: pl.DataFrame | None  # user_id, item_id, tag (normalised), timestamp

    def item(self, item_id: str) -> ItemInfo:
        try:
            return self.items[item_id]
        except KeyError:
            raise DataError(
                f"item '{item_id}' is not in the catalog of {self.name}",
                "pass an item ID of this data set",
            ) from None

    def need_tags(self, task: str) -> pl.DataFrame:
        """The tag table, or a one-line error saying which data has one."""
        if self.tags is None or self.tags.is_empty():
            raise DataError(
                f"the {task} task needs per-user tags, and {self.name} has none",
                "pass a MovieLens CSV folder whose tags.csv has a userId column "
                "(e.g. ml-latest-small unzipped)",
            )
        return self.tags


def read_user_tags(folder: Path) -> pl.DataFrame | None:
    """A MovieLens ``tags.csv`` as (user_id, item_id, tag, timestamp); None if absent."""
    path = Path(folder) / TAGS_FILE
    if not path.is_file():
        return None
    schema = {"userId": pl.Utf8, "movieId": pl.Utf8, "tag": pl.Utf8, "timestamp": pl.Int64}
    try:
        frame = pl.read_csv(path, schema_overrides=schema)
        frame = frame.select(
            pl.col("userId").alias("user_id"),
            pl.col("movieId").alias("item_id"),
            pl.col("tag").map_elements(normalise_tag, return_dtype=pl.Utf8),
            "timestamp",
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"cannot read {path} as MovieLens tags ({type(exc).__name__}: {str(exc)[:200]})",
            "restore the file: userId,movieId,tag,timestamp with a header",
        ) from exc
    return frame.filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))


def genre_column(columns: list[str]) -> str | None:
    return next((c for c in GENRE_COLUMNS if c in columns), None)


def load_text_data(data: str | Path) -> TextData:
    """A data folder (MovieLens any layout, RecBole atomic) or a known data set's name.

    The tag table comes from the folder's ``tags.csv`` (with ``userId``); the embedded
    ml-latest-small keeps no user IDs for its tags, so tagging needs the real folder.
    """
    from tastemaker.data.sources import load_dataset, load_folder

    path = Path(data).expanduser()
    dataset = load_folder(path) if path.is_dir() else load_dataset(str(data), download=False)
    tags = read_user_tags(path) if path.is_dir() else None
    catalog = dataset.catalog.frame
    genres = genre_column(catalog.columns)
    tagged: dict[str, list[str]] = {}
    if tags is not None:
        for item_id, tag in tags.select("item_id", "tag").unique().sort("tag").iter_rows():
            tagged.setdefault(item_id, []).append(tag)
    items = {
        str(row["item_id"]): ItemInfo(
            item_id=str(row["item_id"]),
            title=str(row.get("title") or row["item_id"]),
            genres=tuple(row[genres] or ()) if genres else (),
            tags=tuple(tagged.get(str(row["item_id"]), ())),
        )
        for row in _rows(catalog, genres)
    }
    ratings = dataset.interactions.frame.select("user_id", "item_id", "rating", "timestamp")
    return TextData(dataset.manifest.name, ratings, items, tags)


def _rows(catalog: pl.DataFrame, genres: str | None) -> list[dict[str, Any]]:
    columns = [
        "item_id",
        *(["title"] if "title" in catalog.columns else []),
        *filter(None, [genres]),
    ]
    return catalog.select(columns).to_dicts()
