"""A user's history, and a target item, as text an LLM can read (PMG stage 1).

PMG (Shen et al., WWW 2024, arXiv 2404.08677) turns what a user liked into
natural language before asking an LLM for preference keywords. Its release keeps
a user's highly rated items (rating >= 4) and writes each movie as
``name(genre): keyword, ...``; tastemaker does the same per domain:

* ``movies``: numbered ``Title (Genre1, Genre2): tag1, tag2`` lines;
* ``products``: numbered titles with their attributes (``Brand: ...``);
* ``conversation``: the user's turns as ``User: text`` lines, oldest first.

Items are the most recent first (or the best rated first, then the most recent,
as PMG's release sorts), each item once, capped at ``max_items``. Data without
ratings (clicks, purchases) keeps every interaction.

``before=ITEM`` builds the history a user had just before they first met ITEM
(their earlier interactions only, ITEM itself left out): what soft tokens learn
to predict the next item's image from, without seeing it
(:func:`liked_items` lists those targets in time order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from tastemaker.data.catalog import ITEM_ID, TITLE, Catalog
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import RATING, TEXT, TIMESTAMP, USER_ID, Interactions
from tastemaker.encoders.text import TextTemplate
from tastemaker.errors import DataError

Domain = Literal["movies", "products", "conversation"]
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(.+), (The|A|An)$")  # MovieLens' "Matrix, The"
_ROW = "_row"


class HistoryConfig(BaseModel):
    """Which interactions make a user's history, and how each becomes a line of text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain = "movies"
    min_rating: float | None = Field(4.0, description="keep ratings >= this; None: keep all")
    max_items: PositiveInt = 20
    order: Literal["recent", "rating"] = Field(
        "recent", description="recent: newest first; rating: best rated, then newest (PMG)"
    )
    genre_field: str = "genres"
    tag_field: str = "tags"
    tags_per_item: NonNegativeInt = Field(5, description="PMG's release shows 5 per movie")
    strip_year: bool = Field(True, description="'Heat (1995)' -> 'Heat', as PMG's release")
    max_chars_per_item: PositiveInt = 300
    speaker: str = "User"


@dataclass(frozen=True)
class UserHistory:
    """The serialized history of one user, with the items behind each line."""

    user_id: str
    domain: Domain
    item_ids: list[str]
    titles: list[str]
    lines: list[str]
    ratings: list[float | None]
    min_rating: float | None  # the threshold applied; None when every interaction was kept
    n_interactions: int  # all of the user's interactions, before filtering and capping

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def text(self) -> str:
        """Numbered lines (movies, products) or speaker turns (conversation)."""
        if self.domain == "conversation":
            return "\n".join(self.lines)
        return "\n".join(f"{i}. {line}" for i, line in enumerate(self.lines, 1))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class ItemText:
    """A target item (or conversation) described for the item-keyword prompt."""

    item_id: str
    domain: Domain
    title: str
    text: str
    attributes: dict[str, list[str]]  # categorical values (genres, tags), for non-LLM extractors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def known_interactions(interactions: Interactions | Split) -> Interactions:
    """What is known about users: all of ``Interactions``; a Split's train + valid.

    A Split's test part stays out, so a history (and what is generated from it)
    never sees the items it is evaluated on.
    """
    if isinstance(interactions, Split):
        return Interactions.concat([interactions.train, interactions.valid])
    return interactions


def _user_rows(known: Interactions, user: str) -> pl.DataFrame:
    """The user's interactions with their row order (a DataError for an unknown user)."""
    rows = known.frame.filter(pl.col(USER_ID) == user).with_row_index(_ROW)
    if rows.height == 0:
        example = known.frame[USER_ID].head(1).to_list()
        raise DataError(
            f"unknown user ID '{user}' (no interactions with that user)",
            f"use a user ID present in the data (e.g. {example[0] if example else 'none'})",
        )
    return rows


def _earlier(rows: pl.DataFrame, user: str, item: str) -> pl.DataFrame:
    """The rows strictly before the user's first interaction with ``item`` (by time, then
    row order), ``item`` itself excluded: nothing the user did from then on."""
    at = rows.filter(pl.col(ITEM_ID) == item).sort([TIMESTAMP, _ROW], nulls_last=True)
    if at.height == 0:
        raise DataError(
            f"user '{user}' never interacted with item '{item}'",
            "pass one of the user's own items as before=",
        )
    time, row = at[TIMESTAMP][0], at[_ROW][0]
    if time is None:
        earlier = pl.col(_ROW) < row
    else:
        earlier = (pl.col(TIMESTAMP) < time) | ((pl.col(TIMESTAMP) == time) & (pl.col(_ROW) < row))
    return rows.filter(earlier & (pl.col(ITEM_ID) != item))


def liked_items(
    interactions: Interactions | Split, user_id: object, config: HistoryConfig | None = None
) -> list[str]:
    """The items ``user_id`` liked (as :func:`build_history` keeps them), oldest first,
    each at its first interaction: the targets of next-item examples."""
    config = config or HistoryConfig()
    user = str(user_id)
    rows = _user_rows(known_interactions(interactions), user)
    liked, _ = _liked(rows, user, config.min_rating)
    ordered = liked.sort([TIMESTAMP, _ROW], nulls_last=True)
    return ordered.unique(ITEM_ID, keep="first", maintain_order=True)[ITEM_ID].to_list()


def build_history(
    catalog: Catalog,
    interactions: Interactions | Split,
    user_id: object,
    config: HistoryConfig | None = None,
    *,
    before: object | None = None,
) -> UserHistory:
    """The serialized history of ``user_id`` (a raw ID) under ``config``; with ``before``
    (one of the user's items), only what they did before first meeting it, it left out."""
    config = config or HistoryConfig()
    known = known_interactions(interactions)
    user = str(user_id)
    rows = _user_rows(known, user)
    if before is not None:
        rows = _earlier(rows, user, str(before))
        if rows.height == 0:
            raise DataError(
                f"user '{user}' has no interaction before item '{before}'",
                "pick a later item (liked_items lists them oldest first)",
            )
    liked, threshold = _liked(rows, user, config.min_rating)
    chosen = _ordered(liked, config).head(config.max_items)
    if config.domain == "conversation":
        chosen = chosen.reverse()  # a dialogue reads forward: oldest kept turn first
    ids = chosen[ITEM_ID].to_list()
    items = _items(catalog, ids)
    lines = [
        _line(item, text, config, catalog)
        for item, text in zip(items, chosen[TEXT].to_list(), strict=True)
    ]
    return UserHistory(
        user_id=user,
        domain=config.domain,
        item_ids=ids,
        titles=[_title(item, config) for item in items],
        lines=lines,
        ratings=chosen[RATING].to_list(),
        min_rating=threshold,
        n_interactions=rows.height,
    )


def _liked(
    rows: pl.DataFrame, user: str, min_rating: float | None
) -> tuple[pl.DataFrame, float | None]:
    """The user's interactions at or above ``min_rating`` (all when nothing is rated)."""
    if min_rating is None or rows[RATING].null_count() == rows.height:
        return rows, None
    liked = rows.filter(pl.col(RATING) >= min_rating)
    if liked.height == 0:
        raise DataError(
            f"user '{user}' has {rows.height} interaction(s) but none rated >= {min_rating:g} "
            f"(their highest rating is {rows[RATING].max():g})",
            "lower the threshold, e.g. HistoryConfig(min_rating=3), or set min_rating=None "
            "to keep every interaction",
        )
    return liked, min_rating


def _ordered(rows: pl.DataFrame, config: HistoryConfig) -> pl.DataFrame:
    """Newest first (later rows first where there is no timestamp), each item once."""
    keys, descending = [TIMESTAMP, _ROW], [True, True]
    if config.order == "rating":
        keys, descending = [RATING, *keys], [True, *descending]
    ordered = rows.sort(keys, descending=descending, nulls_last=True)
    return ordered.unique(ITEM_ID, keep="first", maintain_order=True)


def _items(catalog: Catalog, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Catalog rows of ``ids``, in that order (an unknown item is a DataError naming it)."""
    return [catalog.frame.row(int(i), named=True) for i in catalog.vocab.index(list(ids))]


def _line(item: dict[str, Any], text: str | None, config: HistoryConfig, catalog: Catalog) -> str:
    """One history entry in the domain's template."""
    title = _title(item, config)
    if config.domain == "conversation":
        return f"{config.speaker}: {text or title}"
    if config.domain == "products":
        rendered = TextTemplate.default(catalog).render({**item, TITLE: title})
        return _clip(rendered, config.max_chars_per_item)
    genres = _values(item.get(config.genre_field))
    tags = _values(item.get(config.tag_field))[: config.tags_per_item]
    line = f"{title} ({', '.join(genres)})" if genres else title
    return f"{line}: {', '.join(tags)}" if tags else line


def _title(item: dict[str, Any], config: HistoryConfig) -> str:
    """The display title: "Matrix, The (1999)" reads "The Matrix" (the year kept if asked)."""
    title = (item[TITLE] or item[ITEM_ID]).strip()
    year = _YEAR.search(title)
    bare = _YEAR.sub("", title) or title
    bare = _TRAILING_ARTICLE.sub(r"\2 \1", bare)
    return f"{bare} ({year.group(1)})" if year and not config.strip_year else bare


def _values(value: Any) -> list[str]:
    """A categorical field's non-empty values (a missing field or null gives none)."""
    if value is None:
        return []
    values = value if isinstance(value, list | tuple) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_item(
    catalog: Catalog, item_id: object, config: HistoryConfig | None = None
) -> ItemText:
    """The target item as labelled lines: title, then each text and categorical field.

    An item with neither a title nor any text or attribute is a DataError: an LLM
    (or any extractor) has nothing to describe it from.
    """
    config = config or HistoryConfig()
    item = _items(catalog, [str(item_id)])[0]
    has_title = bool(item[TITLE]) and item[TITLE] != item[ITEM_ID]
    lines = [f"Title: {_title(item, config)}"] if has_title else []
    attributes: dict[str, list[str]] = {}
    for name in (*catalog.text_fields, *catalog.categorical_fields):
        values = _values(item[name])
        if name == config.tag_field:
            values = values[: config.tags_per_item * 2]
        if not values:
            continue
        if name in catalog.categorical_fields:
            attributes[name] = values
        label = name.replace("_", " ").capitalize()
        lines.append(_clip(f"{label}: {', '.join(values)}", config.max_chars_per_item * 2))
    if not lines:
        raise DataError(
            f"item '{item[ITEM_ID]}' has no title, description or attributes to describe",
            "give the item a title or a text field in the catalog, or pick another item",
        )
    return ItemText(
        item_id=str(item[ITEM_ID]),
        domain=config.domain,
        title=_title(item, config) if has_title else str(item[ITEM_ID]),
        text="\n".join(lines),
        attributes=attributes,
    )


def describe_conversation(
    turns: Sequence[tuple[str, str]], conversation_id: str = "conversation"
) -> ItemText:
    """A target conversation (speaker, text) for sticker generation, as speaker turns."""
    lines = [f"{speaker}: {text.strip()}" for speaker, text in turns if text and text.strip()]
    if not lines:
        raise DataError(
            "the conversation has no text", "pass (speaker, text) turns with non-empty text"
        )
    return ItemText(conversation_id, "conversation", conversation_id, "\n".join(lines), {})


__all__ = [
    "HistoryConfig",
    "ItemText",
    "UserHistory",
    "build_history",
    "describe_conversation",
    "describe_item",
    "known_interactions",
    "liked_items",
]
