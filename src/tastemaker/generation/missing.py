"""Which (user, item) pairs need a generated image: the catalog's items that have none.

PMG's clothing scenario generates a picture for an item that has no picture, made
for the user who will see it. Here the targets are the catalog's items without an
image (e.g. the ml-latest-small movies no poster exists for), per user, leaving
out the items the user already interacted with (their history, not a target);
the most interacted-with first, so a limit keeps the items most people will meet.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tastemaker.data.catalog import IMAGE, ITEM_ID, Catalog
from tastemaker.data.interactions import USER_ID
from tastemaker.errors import DataError
from tastemaker.generation.data import Data, data_parts
from tastemaker.generation.history import known_interactions


def items_without_images(catalog: Catalog) -> list[str]:
    """The IDs of the catalog's items that have no image, in catalog order."""
    if catalog.n_images == 0:
        raise DataError(
            "no item in the catalog has an image, so every item would count as missing",
            "point at the images (--posters DIR, or [data] posters), or use generate batch",
        )
    missing = catalog.frame.filter(pl.col(IMAGE).is_null() | (pl.col(IMAGE) == ""))
    return missing[ITEM_ID].cast(pl.Utf8).to_list()


def missing_pairs(
    data: Data,
    users: Sequence[str],
    *,
    items: Sequence[str] | None = None,
    limit: int = 3,
) -> list[tuple[str, str]]:
    """(user, item) pairs to generate: per user, up to ``limit`` items without an image that
    the user has not interacted with (``items`` narrows the choice), most popular first."""
    if limit < 1:
        raise DataError(f"limit is {limit}", "generate at least one item per user (--limit 1)")
    catalog, interactions = data_parts(data)
    missing = items_without_images(catalog)
    if items is not None:
        unknown = [i for i in items if i not in catalog.vocab]
        if unknown:
            raise DataError(f"unknown item ID '{unknown[0]}'", "pass items from the catalog")
        without = set(missing)
        pictured = [i for i in items if i not in without]
        if pictured:
            raise DataError(
                f"item '{pictured[0]}' already has an image",
                "pass items without one, or leave out --items to pick them from the catalog",
            )
        missing = list(items)
    known = known_interactions(interactions).frame
    popularity = dict(known.group_by(ITEM_ID).len().iter_rows())
    ranked = sorted(missing, key=lambda i: (-popularity.get(i, 0), i))
    pairs: list[tuple[str, str]] = []
    for user in users:
        seen = set(known.filter(pl.col(USER_ID) == user)[ITEM_ID].to_list())
        chosen = [i for i in ranked if i not in seen][:limit]
        if not chosen:
            raise DataError(
                f"user '{user}' has interacted with every item without an image",
                "pick other users or items",
            )
        pairs.extend((user, item) for item in chosen)
    return pairs


__all__ = ["items_without_images", "missing_pairs"]
