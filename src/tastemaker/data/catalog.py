"""Items as dictionaries of heterogeneous attributes (the UniMP idea).

A :class:`Catalog` is a Polars frame with one row per item. Three columns are
fixed (``item_id``, ``title``, ``image``); every other column is a field whose
*kind* follows from its dtype, so no separate schema can drift out of date:

* ``Utf8``        → free text (description, plot, review summary)
* ``List(Utf8)``  → categorical, multi-valued (genres, tags, brand, categories)
* numeric         → numeric (year, price)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.data.vocab import Vocab, id_list
from tastemaker.errors import DataError

ITEM_ID = "item_id"
TITLE = "title"
IMAGE = "image"
FIXED = (ITEM_ID, TITLE, IMAGE)


class Catalog:
    """The items of a data set, with their content."""

    def __init__(self, frame: pl.DataFrame) -> None:
        if ITEM_ID not in frame.columns:
            raise DataError(
                f"item table has no '{ITEM_ID}' column (columns: {', '.join(frame.columns)})",
                f"name the item ID column '{ITEM_ID}' or map it with --item-col",
            )
        frame = frame.with_columns(pl.col(ITEM_ID).cast(pl.Utf8))
        if frame[ITEM_ID].null_count():
            raise DataError("item table has empty item IDs", "give every item an ID")
        if frame[ITEM_ID].n_unique() != frame.height:
            dup = frame.filter(pl.col(ITEM_ID).is_duplicated())[ITEM_ID].head(3).to_list()
            raise DataError(
                f"item table repeats item IDs ({', '.join(dup)})", "keep one row per item"
            )
        for column, default in ((TITLE, pl.col(ITEM_ID)), (IMAGE, pl.lit(None))):
            if column not in frame.columns:
                frame = frame.with_columns(default.cast(pl.Utf8).alias(column))
        frame = frame.with_columns(pl.col(TITLE).cast(pl.Utf8), pl.col(IMAGE).cast(pl.Utf8))
        for name, dtype in frame.schema.items():
            if name not in FIXED and _kind(dtype) is None:
                raise DataError(
                    f"item field '{name}' has unsupported type {dtype}",
                    "use text, a list of strings, or a number for item fields",
                )
        self.frame = frame.select([*FIXED, *(c for c in frame.columns if c not in FIXED)])
        self._vocab: Vocab | None = None

    def __len__(self) -> int:
        return self.frame.height

    def __repr__(self) -> str:
        return (
            f"Catalog({len(self)} items, text={self.text_fields}, "
            f"categorical={self.categorical_fields}, numeric={self.numeric_fields}, "
            f"images={self.n_images})"
        )

    @property
    def vocab(self) -> Vocab:
        if self._vocab is None:
            self._vocab = Vocab(self.frame[ITEM_ID], kind="item")
        return self._vocab

    def _fields(self, kind: str) -> list[str]:
        return [n for n, t in self.frame.schema.items() if n not in FIXED and _kind(t) == kind]

    @property
    def text_fields(self) -> list[str]:
        return self._fields("text")

    @property
    def categorical_fields(self) -> list[str]:
        return self._fields("categorical")

    @property
    def numeric_fields(self) -> list[str]:
        return self._fields("numeric")

    @property
    def n_images(self) -> int:
        return self.frame.height - self.frame[IMAGE].null_count()

    def item(self, item_id: object) -> dict[str, Any]:
        """All attributes of one item, as a dictionary."""
        row = int(self.vocab.index(item_id)[0])
        return self.frame.row(row, named=True)

    def titles(self, item_ids: Sequence[object]) -> list[str]:
        """Titles of items, in the order given."""
        return self.frame[TITLE].gather(self.vocab.index(item_ids)).to_list()

    def subset(self, item_ids: Sequence[str]) -> Catalog:
        """The catalog restricted to ``item_ids`` (catalog order kept)."""
        keep = pl.Series(ITEM_ID, id_list(item_ids, "item_ids"), dtype=pl.Utf8)
        return Catalog(self.frame.filter(pl.col(ITEM_ID).is_in(keep.implode())))

    def with_images(self, folder: Path, pattern: str = "{item_id}.jpg") -> Catalog:
        """Point ``image`` at ``folder/pattern`` for every item whose file exists."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(
                f"image folder {folder} does not exist", "pass an existing folder of images"
            )
        present = {p.name for p in folder.iterdir()}
        images = [
            str((folder / pattern.format(item_id=i)).resolve())
            if pattern.format(item_id=i) in present
            else old
            for i, old in zip(self.frame[ITEM_ID], self.frame[IMAGE], strict=True)
        ]
        return Catalog(self.frame.with_columns(pl.Series(IMAGE, images, dtype=pl.Utf8)))


def _kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.Utf8:
        return "text"
    if dtype == pl.List(pl.Utf8):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    return None
