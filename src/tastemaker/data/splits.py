"""Train/validation/test splits, each recorded with its seed and content hashes.

* ``loo``        leave-one-out by time: a user's last interaction is test, the second
                 last validation (users with 2 interactions get no validation row,
                 users with 1 stay in train only).
* ``ratio``      per-user random ratio split (RecBole's ``RS`` with ``order: RO``).
* ``temporal``   one global time cut: the latest interactions are test.
* ``cold_start`` items are split, not interactions: valid and test items never occur
                 in training, so only content can score them. With ``cold_items`` only
                 that share of the items is held out (half to valid, half to test, by
                 ``ratios``) and the other items' interactions are split per user like
                 ``ratio``, so test holds warm and cold interactions side by side
                 (:mod:`tastemaker.evaluation.cold_start` reports them separately).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from tastemaker.data.dataset import PARTS, Dataset, Split, split_info
from tastemaker.data.interactions import ITEM_ID, TIMESTAMP, USER_ID, lexical_codes
from tastemaker.errors import ConfigError, DataError

Ratios = tuple[float, float, float]
_PART = "_part"


def _check_ratios(ratios: Sequence[float]) -> Ratios:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0 or sum(ratios) <= 0:
        raise ConfigError(
            f"split ratios {list(ratios)} are invalid",
            "give three non-negative train:valid:test ratios with train > 0, e.g. 8:1:1",
        )
    total = float(sum(ratios))
    return (ratios[0] / total, ratios[1] / total, ratios[2] / total)


def _build(
    ds: Dataset, labelled: pl.DataFrame, kind: str, seed: int | None, params: dict[str, Any]
) -> Split:
    """Turn a frame with a ``_part`` column (0/1/2) into a recorded :class:`Split`."""
    parts = {
        name: labelled.filter(pl.col(_PART) == code).drop(_PART) for code, name in enumerate(PARTS)
    }
    if parts["train"].height == 0 or parts["test"].height == 0:
        raise DataError(
            f"the {kind} split of '{ds.manifest.name}' has an empty "
            f"{'train' if parts['train'].height == 0 else 'test'} part",
            "use more data, other ratios, or another split kind",
        )
    manifest = ds.manifest.model_copy(update={"split": split_info(kind, seed, params, parts)})
    return Split(ds.catalog, parts["train"], parts["valid"], parts["test"], manifest)


def _require_time(ds: Dataset, kind: str) -> None:
    if not ds.interactions.has_timestamps:
        raise DataError(
            f"the {kind} split needs a timestamp on every interaction, and "
            f"'{ds.manifest.name}' lacks some",
            "use --split ratio or cold_start, or a data set with timestamps",
        )


def _time_ordered(ds: Dataset) -> pl.DataFrame:
    """Interactions in time order; ties keep input order, so the split is deterministic."""
    return ds.interactions.frame.with_row_index("_row").sort([TIMESTAMP, "_row"]).drop("_row")


def leave_one_out(ds: Dataset) -> Split:
    _require_time(ds, "leave-one-out")
    frame = _time_ordered(ds).with_columns(
        _back=pl.int_range(pl.len(), 0, -1).over(USER_ID), _n=pl.len().over(USER_ID)
    )
    part = (
        pl.when((pl.col("_back") == 1) & (pl.col("_n") >= 2))
        .then(2)
        .when((pl.col("_back") == 2) & (pl.col("_n") >= 3))
        .then(1)
        .otherwise(0)
    )
    labelled = frame.with_columns(part.cast(pl.Int8).alias(_PART)).drop("_back", "_n")
    return _build(ds, labelled, "loo", None, {})


def random_ratio(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 42) -> Split:
    """Shuffle each user's interactions and cut them by ``ratios``.

    Part sizes follow RecBole's ``split_by_ratio``: floor(ratio * n) for valid and
    test, the rest to train, then a part whose share is between 0 and 1 row is
    given one row while train keeps more than one.
    """
    r = _check_ratios(ratios)
    labelled = _per_user_ratio(ds.interactions.frame, r, seed, ds.interactions.indices()[0])
    return _build(ds, labelled, "ratio", seed, {"ratios": list(r)})


def user_ranks(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of integer user codes: its position among its user's rows (in row order)
    and the user's number of rows; a stable integer sort, no string grouping."""
    counts = np.bincount(users)
    grouped = np.argsort(users, kind="stable")
    starts = np.cumsum(counts) - counts
    pos = np.empty(len(users), dtype=np.int64)
    pos[grouped] = np.arange(len(users)) - starts[users[grouped]]
    return pos, counts[users]


def _per_user_ratio(
    frame: pl.DataFrame, r: Ratios, seed: int, users: np.ndarray | None = None
) -> pl.DataFrame:
    """``frame`` shuffled, with each user's rows labelled train/valid/test by ``r``;
    ``users``: the rows' integer user codes when known (else made from the IDs)."""
    order = np.random.default_rng(seed).permutation(frame.height)
    if users is None:
        users = lexical_codes(frame[USER_ID]).to_numpy().astype(np.int64)
    pos, n = user_ranks(users[order])
    shuffled = frame[order]
    valid = np.floor(r[1] * n).astype(np.int64)
    test = np.floor(r[2] * n).astype(np.int64)
    train = n - valid - test
    for count, share in ((test, r[2]), (valid, r[1])):
        bump = (train > 1) & (share * n > 0) & (share * n < 1)
        count += bump
        train -= bump
    part = np.where(pos < train, 0, np.where(pos < train + valid, 1, 2)).astype(np.int8)
    return shuffled.with_columns(pl.Series(_PART, part))


def temporal(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """One global time order; the first share trains, the next validates, the last tests."""
    _require_time(ds, "temporal")
    r = _check_ratios(ratios)
    frame = _time_ordered(ds)
    n = frame.height
    cut_train, cut_valid = round(r[0] * n), round((r[0] + r[1]) * n)
    pos = np.arange(n)
    part = np.where(pos < cut_train, 0, np.where(pos < cut_valid, 1, 2)).astype(np.int8)
    return _build(
        ds, frame.with_columns(pl.Series(_PART, part)), "temporal", None, {"ratios": list(r)}
    )


def cold_start(
    ds: Dataset,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    cold_items: float | None = None,
) -> Split:
    """Split the interacted items by ``ratios``; each interaction follows its item.

    With ``cold_items`` (a share in (0, 1)) that share of the items is cold: their
    interactions go to valid and test, split by item in the proportion of
    ``ratios[1]:ratios[2]``; the warm items' interactions are split per user at
    random by ``ratios``, as in :func:`random_ratio`.
    """
    r = _check_ratios(ratios)
    frame = ds.interactions.frame
    items = frame[ITEM_ID].unique().sort().to_numpy()
    shuffled = items[np.random.default_rng(seed).permutation(len(items))]
    params: dict[str, Any] = {"ratios": list(r)}
    if cold_items is None:
        cut_train, cut_valid = round(r[0] * len(items)), round((r[0] + r[1]) * len(items))
    else:
        if not 0 < cold_items < 1:
            raise ConfigError(
                f"cold_items={cold_items} is not a share of the items",
                "give a share between 0 and 1, e.g. 0.2",
            )
        if r[1] + r[2] == 0:
            raise ConfigError(
                f"ratios {list(ratios)} leave the cold items no valid or test part",
                "give valid and test ratios, e.g. 8:1:1",
            )
        n_cold = round(cold_items * len(items))
        cut_train = len(items) - n_cold
        cut_valid = cut_train + round(n_cold * r[1] / (r[1] + r[2]))
        params["cold_items"] = cold_items
    codes = np.zeros(len(items), dtype=np.int8)
    codes[cut_train:cut_valid], codes[cut_valid:] = 1, 2
    table = pl.DataFrame({ITEM_ID: shuffled, _PART: codes})
    labelled = frame.join(table, on=ITEM_ID, how="left", maintain_order="left")
    if cold_items is not None:
        warm = labelled.filter(pl.col(_PART) == 0).drop(_PART)
        labelled = pl.concat([_per_user_ratio(warm, r, seed), labelled.filter(pl.col(_PART) != 0)])
    return _build(ds, labelled, "cold_start", seed, params)


SPLITS: dict[str, Callable[..., Split]] = {
    "loo": leave_one_out,
    "ratio": random_ratio,
    "temporal": temporal,
    "cold_start": cold_start,
}


def make_split(
    ds: Dataset,
    kind: str,
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    cold_items: float | None = None,
) -> Split:
    """Dispatch by name, passing only the parameters a split kind uses."""
    if kind not in SPLITS:
        raise ConfigError(f"unknown split '{kind}'", f"use one of: {', '.join(SPLITS)}")
    if cold_items is not None:
        if kind != "cold_start":
            raise ConfigError(
                f"cold_items is a setting of the cold_start split, not of '{kind}'",
                "use kind cold_start with cold_items, or drop cold_items",
            )
        return cold_start(ds, ratios, seed=seed, cold_items=cold_items)
    if kind == "loo":
        return leave_one_out(ds)
    if kind == "temporal":
        return temporal(ds, ratios)
    return SPLITS[kind](ds, ratios, seed=seed)
