"""Explanations over a prepared Dataset (what ``tastemaker serve`` holds), faithfulness-checked.

:func:`tastemaker.text.explanations.explain` reads a :class:`TextData` built from a
MovieLens folder (per-user ``tags.csv``). A prepared Dataset holds less: the catalog
(title, genres, and tags folded per item with their authors dropped) and the
interactions. :class:`DatasetExplainer` builds the items and the attribute vocabulary
once, and per request a TextData holding only that user's history, then explains
through :mod:`tastemaker.text.explanations` (``template``, ``llm``, ``llm-grounded``).

Decisions:

* Tags: the user's own tag table when the data has one (``user_tags``, as
  :func:`~tastemaker.text.sources.read_user_tags` reads it), so the prompt shows only
  other users' tags, as in the text tasks; otherwise the catalog's folded tags, whose
  authors are unknown (:data:`UNKNOWN_AUTHOR`) and so all count as others' tags.
* A history row without a rating (implicit feedback, or an event sent without one)
  counts as liked: the user chose the item, the only signal such data has.
* Every answer carries a faithfulness check after the text tasks' scoring
  (:mod:`tastemaker.text.scoring`): the attributes (genres, tags of the vocabulary)
  the text asserts, titles removed, and which of them the item does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from tastemaker.errors import DataError
from tastemaker.llm.base import LLM
from tastemaker.text.explanations import Explanation, explain, explanation_example
from tastemaker.text.metrics import features_in
from tastemaker.text.scoring import without_titles
from tastemaker.text.sources import ItemInfo, TextData, genre_column, normalise_tag
from tastemaker.text.tasks import LIKED, Example

#: The author of a catalog tag whose writer the data dropped (no real user ID is empty).
UNKNOWN_AUTHOR = ""
TAGS_COLUMN = "tags"


@dataclass(frozen=True)
class Faithfulness:
    """The attributes an explanation asserts, and those of them the item does not have."""

    asserted: tuple[str, ...]
    unsupported: tuple[str, ...]

    @property
    def faithful(self) -> bool:
        return not self.unsupported

    def as_dict(self) -> dict[str, Any]:
        return {
            "asserted": list(self.asserted),
            "unsupported": list(self.unsupported),
            "faithful": self.faithful,
        }


@dataclass(frozen=True)
class CheckedExplanation:
    """An explanation and its faithfulness check."""

    explanation: Explanation
    faithfulness: Faithfulness


def catalog_tags(catalog: pl.DataFrame) -> pl.DataFrame | None:
    """The catalog's folded tags as (user_id, item_id, tag) rows by an unknown author."""
    if TAGS_COLUMN not in catalog.columns or catalog[TAGS_COLUMN].dtype != pl.List(pl.Utf8):
        return None
    rows = (
        catalog.select(pl.col("item_id").cast(pl.Utf8), pl.col(TAGS_COLUMN).alias("tag"))
        .explode("tag")
        .drop_nulls("tag")
        .with_columns(pl.col("tag").map_elements(normalise_tag, return_dtype=pl.Utf8))
        .filter(pl.col("tag") != "")
        .unique(maintain_order=True)
    )
    return rows.select(pl.lit(UNKNOWN_AUTHOR).alias("user_id"), "item_id", "tag")


class DatasetExplainer:
    """Explanations of (user, item) pairs of one prepared Dataset; built once, then shared
    (it is read-only, so threads may use it together)."""

    def __init__(
        self, name: str, catalog: pl.DataFrame, user_tags: pl.DataFrame | None = None
    ) -> None:
        self.name = name
        self.tags = user_tags if user_tags is not None else catalog_tags(catalog)
        tagged: dict[str, list[str]] = {}
        if self.tags is not None:
            for item_id, tag in self.tags.select("item_id", "tag").unique().sort("tag").iter_rows():
                tagged.setdefault(str(item_id), []).append(tag)
        genres = genre_column(catalog.columns)
        titles = catalog["title"] if "title" in catalog.columns else catalog["item_id"]
        self.items = {
            str(item): ItemInfo(
                item_id=str(item),
                title=str(title or item),
                genres=tuple(kinds or ()),
                tags=tuple(tagged.get(str(item), ())),
            )
            for item, title, kinds in zip(
                catalog["item_id"].to_list(),
                titles.to_list(),
                catalog[genres].to_list() if genres else [None] * len(catalog),
                strict=True,
            )
        }
        self.genres = tuple(sorted({g.lower() for i in self.items.values() for g in i.genres}))
        self.vocabulary = () if self.tags is None else tuple(sorted(set(self.tags["tag"])))

    def data(self, user_id: str, history: pl.DataFrame) -> TextData:
        """A TextData with ``history`` (item_id, rating or null, timestamp) as the user's
        ratings; a missing rating counts as liked."""
        missing = {"item_id", "rating", "timestamp"} - set(history.columns)
        if missing:
            raise DataError(
                f"the history lacks the columns {', '.join(sorted(missing))}",
                "pass item_id, rating (null when unknown) and timestamp",
            )
        ratings = history.select(
            pl.lit(user_id).alias("user_id"),
            pl.col("item_id").cast(pl.Utf8),
            pl.col("rating").cast(pl.Float64).fill_null(LIKED),
            pl.col("timestamp").cast(pl.Int64),
        )
        return TextData(self.name, ratings, self.items, self.tags)

    def explain(
        self,
        user_id: str,
        item_id: str,
        history: pl.DataFrame,
        *,
        method: str = "template",
        llm: LLM | None = None,
        k: int = 4,
    ) -> CheckedExplanation:
        """Why ``item_id`` suits ``user_id`` given their ``history``, by ``method`` (one of
        :data:`tastemaker.text.explanations.METHODS`), with its faithfulness check."""
        data = self.data(user_id, history)
        example = explanation_example(data, user_id, item_id)
        result = explain(user_id, item_id, data, method=method, llm=llm, k=k, example=example)
        return CheckedExplanation(result, self.check(result.text, example))

    def check(self, text: str, example: Example) -> Faithfulness:
        """The attributes ``text`` asserts (titles are no claims) against the item's own."""
        item = self.items[example.item.item_id]
        asserted = features_in(without_titles(text, example), (*self.vocabulary, *self.genres))
        truth = {g.lower() for g in item.genres} | set(item.tags)
        return Faithfulness(tuple(sorted(asserted)), tuple(sorted(asserted - truth)))


__all__ = ["UNKNOWN_AUTHOR", "CheckedExplanation", "DatasetExplainer", "Faithfulness"]
