"""The data a generation job reads: the server's, plus items liked since (or ad hoc).

PMG's history stage (:func:`tastemaker.generation.history.build_history`) reads a
user's liked items from the interactions; a history the page clicked together, or
feedback given after the data was loaded, is not in them. :func:`with_history`
appends those items as the newest liked interactions of that user, on the same
catalog, so the pipeline reads them like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import ITEM_ID, RATING, TIMESTAMP, USER_ID, Interactions
from tastemaker.errors import DataError
from tastemaker.generation.data import Data, data_parts
from tastemaker.generation.history import known_interactions

LIKED = 5.0  # the top of MovieLens' scale: kept by any min_rating of the history config


def with_history(data: Data, user_id: str, items: Sequence[str]) -> Dataset:
    """``data``'s known interactions (a Split's train + valid) plus ``items`` liked by
    ``user_id``, newest last in the order given; unknown items are a :class:`DataError`."""
    catalog, parts = data_parts(data)
    known = known_interactions(parts)
    unknown = [i for i in dict.fromkeys(items) if i not in catalog.vocab]
    if unknown:
        raise DataError(
            f"unknown item IDs in the history: {', '.join(unknown[:5])}",
            "use item IDs of the catalog (GET /items?query=... finds them)",
        )
    frame = known.frame
    newest = frame[TIMESTAMP].max() if frame.height else None
    start = (newest if isinstance(newest, int) else 0) + 1
    extra = pl.DataFrame(
        {
            USER_ID: [user_id] * len(items),
            ITEM_ID: list(items),
            RATING: [LIKED] * len(items),
            TIMESTAMP: list(range(start, start + len(items))),
        }
    )
    joined = pl.concat([frame, extra.cast(frame.select(extra.columns).schema)], how="diagonal")
    return Dataset(catalog, Interactions(joined), data.manifest)


__all__ = ["LIKED", "with_history"]
