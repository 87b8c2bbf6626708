"""Preprocessing steps: Dataset -> Dataset, each recorded in the manifest.

A step that leaves nothing raises a :class:`DataError` naming the step and the
knob to turn, instead of handing an empty data set to a model.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import ITEM_ID, RATING, TIMESTAMP, USER_ID
from tastemaker.errors import DataError


def _checked(
    ds: Dataset, frame: pl.DataFrame, step: str, fix: str, prune: bool = False, **params: object
) -> Dataset:
    """Record ``step``; with ``prune`` drop catalog items no interaction refers to any more."""
    if frame.height == 0:
        raise DataError(f"{step} left no interactions in '{ds.manifest.name}'", fix)
    manifest = ds.manifest.with_step(step, frame.height, **params)
    catalog = ds.catalog.subset(frame[ITEM_ID].unique().to_list()) if prune else None
    return ds.replace(interactions=frame, catalog=catalog, manifest=manifest)


def implicit(ds: Dataset, threshold: float | None) -> Dataset:
    """Keep interactions rated at least ``threshold`` (None keeps all, as implicit feedback)."""
    frame = ds.interactions.frame
    if threshold is None:
        return _checked(ds, frame, "implicit", "use a data set with interactions", threshold=None)
    if frame[RATING].null_count() == frame.height:
        raise DataError(
            f"'{ds.manifest.name}' has no ratings, so a rating threshold cannot apply",
            "drop --threshold (all interactions then count as positive)",
        )
    kept = frame.filter(pl.col(RATING).is_null() | (pl.col(RATING) >= threshold))
    return _checked(
        ds, kept, "implicit", f"lower the rating threshold (now {threshold})", threshold=threshold
    )


def deduplicate(ds: Dataset, keep: Literal["first", "last"] = "last") -> Dataset:
    """One interaction per (user, item): the ``first`` or ``last`` in time."""
    if keep not in ("first", "last"):
        raise DataError(f"unknown duplicate policy '{keep}'", "use 'first' or 'last'")
    frame = ds.interactions.frame.with_row_index("_row")
    ordered = frame.sort([TIMESTAMP, "_row"], nulls_last=True)
    kept = ordered.unique([USER_ID, ITEM_ID], keep=keep, maintain_order=True).sort("_row")
    return _checked(ds, kept.drop("_row"), "deduplicate", "check the input data", keep=keep)


def k_core(ds: Dataset, min_user: int = 5, min_item: int = 5) -> Dataset:
    """Iteratively drop users with < ``min_user`` and items with < ``min_item`` interactions.

    Dropped items leave the catalog too: they are no longer candidates.
    """
    if min_user < 1 or min_item < 1:
        raise DataError("k-core thresholds must be at least 1", "pass --min-user/--min-item ≥ 1")
    frame = ds.interactions.frame
    rounds = 0
    while True:
        rounds += 1
        kept = frame.filter(
            (pl.len().over(USER_ID) >= min_user) & (pl.len().over(ITEM_ID) >= min_item)
        )
        if kept.height == frame.height:
            break
        frame = kept
    return _checked(
        ds,
        frame,
        "k_core",
        f"lower --min-user/--min-item (now {min_user}/{min_item})",
        prune=True,
        min_user=min_user,
        min_item=min_item,
        rounds=rounds,
    )
