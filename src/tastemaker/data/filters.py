"""Preprocessing steps: Dataset -> Dataset, each recorded in the manifest.

A step that leaves nothing raises a :class:`DataError` naming the step and the
knob to turn, instead of handing an empty data set to a model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TIMESTAMP, Interactions
from tastemaker.data.row_chunks import counts, key_order
from tastemaker.errors import DataError


def _checked(
    ds: Dataset,
    rows: np.ndarray | None,
    step: str,
    fix: str,
    prune: bool = False,
    **params: object,
) -> Dataset:
    """Record ``step`` keeping the ``rows`` where True (None: all); with ``prune`` drop
    catalog items no kept interaction refers to. Integer work only: the kept rows carry
    their indices (one subset, item indices and all), the catalog is cut by a mask."""
    interactions = ds.interactions
    kept = len(interactions) if rows is None else int(np.count_nonzero(rows))
    if kept == 0:
        raise DataError(f"{step} left no interactions in '{ds.manifest.name}'", fix)
    manifest = ds.manifest.with_step(step, kept, **params)
    catalog = None
    if prune:
        used = counts(interactions.indices()[1], len(ds.catalog), rows) > 0
        if not used.all():
            catalog = Catalog(ds.catalog.frame.filter(pl.Series(used)))
    if rows is not None or catalog is not None:
        keep = np.ones(len(interactions), bool) if rows is None else rows
        interactions = interactions.subset(keep, None if catalog is None else catalog.vocab)
    return ds.derived(interactions, catalog, manifest)


def implicit(ds: Dataset, threshold: float | None) -> Dataset:
    """Keep interactions rated at least ``threshold`` (None keeps all, as implicit feedback)."""
    if threshold is None:
        return _checked(ds, None, "implicit", "use a data set with interactions", threshold=None)
    ratings = ds.interactions.column(RATING)
    if ratings.null_count() == len(ratings):
        raise DataError(
            f"'{ds.manifest.name}' has no ratings, so a rating threshold cannot apply",
            "drop --threshold (all interactions then count as positive)",
        )
    kept = (ratings.is_null() | (ratings >= threshold)).to_numpy()
    return _checked(
        ds, kept, "implicit", f"lower the rating threshold (now {threshold})", threshold=threshold
    )


def pair_keys(interactions: Interactions, rows: np.ndarray | None = None) -> np.ndarray:
    """One int64 per row (or per row at positions ``rows``) naming its (user, item)
    pair: integer work instead of string work."""
    users, items = interactions.indices()
    if rows is not None:
        users, items = users[rows], items[rows]
    keys = users * len(interactions.items)
    keys += items
    return keys


def deduplicate(ds: Dataset, keep: Literal["first", "last"] = "last") -> Dataset:
    """One interaction per (user, item): the ``first`` or ``last`` in time (ties: in row
    order; a missing time counts as latest). Rows keep their order.

    Pairs are found by sorting integer keys; only the rows of repeated pairs are then
    ordered by time, so a table without duplicates costs one integer sort.
    """
    if keep not in ("first", "last"):
        raise DataError(f"unknown duplicate policy '{keep}'", "use 'first' or 'last'")
    repeated = key_order(pair_keys(ds.interactions))[1]
    wanted = _first_or_last(ds.interactions, repeated, keep) if repeated.any() else None
    del repeated  # not kept while the rows are taken
    return _checked(ds, wanted, "deduplicate", "check the input data", keep=keep)


def _first_or_last(
    interactions: Interactions, repeated: np.ndarray, keep: Literal["first", "last"]
) -> np.ndarray:
    """The rows to keep: all but the ``repeated`` ones, and of those one per pair, the
    ``keep`` one in time (a missing time counts as latest; ties in row order)."""
    rows = np.flatnonzero(repeated)
    keys = pair_keys(interactions, rows)
    times = interactions.column(TIMESTAMP).gather(rows)
    late, missing = times.fill_null(0).to_numpy(), times.is_null().to_numpy()
    ranked = np.lexsort((rows, late, missing, keys))  # pair, time, row
    pair = keys[ranked]
    edge = pair[1:] != pair[:-1]
    chosen = np.concatenate([[True], edge]) if keep == "first" else np.append(edge, True)
    wanted = ~repeated
    wanted[rows[ranked[chosen]]] = True
    return wanted


def k_core(ds: Dataset, min_user: int = 5, min_item: int = 5) -> Dataset:
    """Iteratively drop users with < ``min_user`` and items with < ``min_item`` interactions.

    Dropped items leave the catalog too: they are no longer candidates. Counted with
    ``bincount`` on integer indices, each round linear in the rows.
    """
    if min_user < 1 or min_item < 1:
        raise DataError("k-core thresholds must be at least 1", "pass --min-user/--min-item ≥ 1")
    interactions = ds.interactions
    users, items = interactions.indices()
    alive = np.ones(len(users), dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        user_counts = counts(users, len(interactions.users), alive)
        item_counts = counts(items, len(interactions.items), alive)
        # Per user and item first, then one boolean per row: no row-length count arrays.
        kept = alive & (user_counts >= min_user)[users] & (item_counts >= min_item)[items]
        if np.array_equal(kept, alive):
            break
        alive = kept
    return _checked(
        ds,
        None if alive.all() else alive,
        "k_core",
        f"lower --min-user/--min-item (now {min_user}/{min_item})",
        prune=True,
        min_user=min_user,
        min_item=min_item,
        rounds=rounds,
    )
