"""A user's history as one "user sentence" (UniMP §3.1): items flattened in time order.

Each item is a dictionary of attributes (:class:`~tastemaker.data.Catalog`); it
becomes one segment ``<image> title: ...; genres: ...; year: ...; rated 4.0``
(the official code writes ``<image> {meta} <|endofchunk|>`` per item, after
Flamingo). Every segment is bound to a *slot*: the tokens of slot k attend to the
visual tokens of slot k's image only (the item mask), and ``<image>`` is a
placeholder word marking where that item's picture belongs. Text outside items
(the instruction, the answer) has slot :data:`NO_SLOT`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from tastemaker.data.catalog import ITEM_ID, TITLE, Catalog
from tastemaker.data.interactions import RATING, TIMESTAMP, USER_ID, Interactions
from tastemaker.errors import DataError

IMAGE_TOKEN = "<image>"
NO_SLOT = -1
MASKED = "[masked]"


@dataclass(frozen=True)
class Piece:
    """A run of text and the sentence slot (item position) it belongs to."""

    text: str
    slot: int = NO_SLOT


@dataclass(frozen=True)
class UserSentence:
    """Pieces of text and the item bound to each slot (slot k is ``items[k]``)."""

    pieces: tuple[Piece, ...]
    items: tuple[str, ...]

    def then(self, *pieces: Piece) -> UserSentence:
        """This sentence followed by instruction text (no slot)."""
        return UserSentence((*self.pieces, *pieces), self.items)

    def with_items(self, rows: Sequence[tuple[str, str]]) -> UserSentence:
        """This sentence followed by more items as (item ID, text) segments, new slots."""
        first = len(self.items)
        extra = tuple(Piece(text, first + k) for k, (_, text) in enumerate(rows))
        return UserSentence((*self.pieces, *extra), (*self.items, *(i for i, _ in rows)))

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)


class ItemDescriber:
    """Renders catalog items as segments; built once per catalog (rows by item ID)."""

    def __init__(self, catalog: Catalog, title_words: int = 12) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            str(row[ITEM_ID]): row for row in catalog.frame.iter_rows(named=True)
        }
        self.categorical = catalog.categorical_fields
        self.numeric = [f for f in catalog.numeric_fields if f in ("year", "price")]
        self.title_words = title_words

    def title(self, item_id: str) -> str:
        """The item's title cut to ``title_words`` words (what recommendation generates)."""
        row = self._row(item_id)
        return " ".join(str(row[TITLE] or item_id).split()[: self.title_words])

    def fields(self, item_id: str) -> dict[str, str]:
        """Attribute name -> rendered value, title first; empty attributes left out."""
        row = self._row(item_id)
        out = {"title": self.title(item_id)}
        for name in self.categorical:
            values = [str(v) for v in (row.get(name) or [])][:4]
            if values:
                out[name] = ", ".join(values)
        for name in self.numeric:
            if row.get(name) is not None:
                out[name] = f"{row[name]:g}"
        return out

    def segment(
        self,
        item_id: str,
        rating: float | None = None,
        *,
        masked: str | None = None,
        image: bool = True,
    ) -> str:
        """``<image> title: ...; genres: ...; rated 4`` (``masked`` field shown as [masked])."""
        parts = [
            f"{name}: {MASKED if name == masked else value}"
            for name, value in self.fields(item_id).items()
        ]
        if rating is not None:
            parts.append(f"rated {rating:g}")
        head = f"{IMAGE_TOKEN} " if image else ""
        return f"{head}{'; '.join(parts)}.\n"

    def _row(self, item_id: str) -> dict[str, Any]:
        try:
            return self.rows[str(item_id)]
        except KeyError:
            raise DataError(
                f"item '{item_id}' is not in the catalog", "pass items of this data set"
            ) from None


def user_histories(interactions: Interactions) -> dict[str, list[tuple[str, float | None]]]:
    """User ID -> (item ID, rating) in time order (ties keep input order)."""
    frame = (
        interactions.frame.with_row_index("_row")
        .sort([USER_ID, TIMESTAMP, "_row"], nulls_last=True)
        .group_by(USER_ID, maintain_order=True)
        .agg(pl.col(ITEM_ID), pl.col(RATING))
    )
    return {
        str(user): list(zip(items, ratings, strict=True))
        for user, items, ratings in frame.iter_rows()
    }


def serialize_history(
    describer: ItemDescriber,
    history: Sequence[tuple[str, float | None]],
    *,
    limit: int,
    ratings: bool = False,
    masked: Mapping[int, str] | None = None,
) -> UserSentence:
    """The last ``limit`` (item, rating) pairs as a user sentence, one slot each.

    ``masked`` maps a slot to the attribute hidden in it (context reconstruction).
    """
    recent = list(history)[-limit:]
    masked = masked or {}
    pieces = [Piece("The user's history:\n")]
    for slot, (item, rating) in enumerate(recent):
        text = describer.segment(item, rating if ratings else None, masked=masked.get(slot))
        pieces.append(Piece(text, slot))
    return UserSentence(tuple(pieces), tuple(item for item, _ in recent))
