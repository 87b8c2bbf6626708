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

from tastemaker.data.dataset import PARTS, Dataset, Split, split_info
from tastemaker.data.interactions import TIMESTAMP
from tastemaker.data.row_chunks import CHUNK_ROWS, ROW, positions
from tastemaker.errors import ConfigError, DataError

Ratios = tuple[float, float, float]


def _check_ratios(ratios: Sequence[float]) -> Ratios:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0 or sum(ratios) <= 0:
        raise ConfigError(
            f"split ratios {list(ratios)} are invalid",
            "give three non-negative train:valid:test ratios with train > 0, e.g. 8:1:1",
        )
    total = float(sum(ratios))
    return (ratios[0] / total, ratios[1] / total, ratios[2] / total)


def _grouped(rows: np.ndarray, part: np.ndarray) -> list[np.ndarray]:
    """The positions ``rows`` of each part, in their order, by ``part`` (0/1/2 for
    train/valid/test): made before :func:`_build`, so that the full-length ``rows`` and
    ``part`` are not kept while the parts are taken and hashed."""
    return [rows[part == code] for code in range(len(PARTS))]


def _build(
    ds: Dataset, groups: list[np.ndarray], kind: str, seed: int | None, params: dict[str, Any]
) -> Split:
    """A recorded :class:`Split` of ``ds``'s interactions, each part the rows at the
    positions of its group (:func:`_grouped`), in that order. Integer work: each part
    is gathered from the source rows once, its indices carried over. ``groups`` is
    emptied once the parts are taken, so the positions are freed before the hashing."""
    interactions = ds.interactions.on_users()  # the vocabulary Split.load rebuilds
    parts = {name: interactions.take(rows) for name, rows in zip(PARTS, groups, strict=True)}
    groups.clear()
    if len(parts["train"]) == 0 or len(parts["test"]) == 0:
        raise DataError(
            f"the {kind} split of '{ds.manifest.name}' has an empty "
            f"{'train' if len(parts['train']) == 0 else 'test'} part",
            "use more data, other ratios, or another split kind",
        )
    manifest = ds.manifest.model_copy(update={"split": split_info(kind, seed, params, parts)})
    return Split.derived(ds.catalog, parts, manifest)


def _require_time(ds: Dataset, kind: str) -> None:
    if not ds.interactions.has_timestamps:
        raise DataError(
            f"the {kind} split needs a timestamp on every interaction, and "
            f"'{ds.manifest.name}' lacks some",
            "use --split ratio or cold_start, or a data set with timestamps",
        )


def _time_order(ds: Dataset) -> np.ndarray:
    """Row positions in time order; ties keep input order, so the split is deterministic."""
    times = ds.interactions.column(TIMESTAMP).to_numpy()
    return np.argsort(times, kind="stable").astype(ROW, copy=False)


def leave_one_out(ds: Dataset) -> Split:
    _require_time(ds, "leave-one-out")
    return _build(ds, _last_two(ds), "loo", None, {})


def _last_two(ds: Dataset) -> list[np.ndarray]:
    """Leave-one-out's parts: each user's last row tests, the second last validates."""
    order = _time_order(ds)
    users = ds.interactions.indices()[0][order]
    pos, counts = user_ranks(users)
    n = counts[users]
    back = n - pos  # 1 for a user's last interaction, 2 for the second last
    part = np.where((back == 1) & (n >= 2), 2, np.where((back == 2) & (n >= 3), 1, 0))
    return _grouped(order, part)


def random_ratio(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 42) -> Split:
    """Shuffle each user's interactions and cut them by ``ratios``.

    Part sizes follow RecBole's ``split_by_ratio``: floor(ratio * n) for valid and
    test, the rest to train, then a part whose share is between 0 and 1 row is
    given one row while train keeps more than one.
    """
    r = _check_ratios(ratios)
    groups = _grouped(*_per_user_ratio(ds.interactions.indices()[0], r, seed))
    return _build(ds, groups, "ratio", seed, {"ratios": list(r)})


def user_ranks(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of integer user codes its position among its user's rows (in row order,
    int32), and per user code its number of rows; no strings.

    A slice of rows at a time: each slice is grouped by a stable integer sort and its
    positions offset by the rows each user had in the slices before, so the temporaries
    are one slice long.
    """
    counts = np.bincount(users)
    seen = np.zeros(len(counts), dtype=np.int32)  # rows per user in the slices so far
    pos = np.empty(len(users), dtype=np.int32)
    for start in range(0, len(users), CHUNK_ROWS):
        block = users[start : start + CHUNK_ROWS]
        grouped = _stable_order(block)
        ordered = block[grouped]
        heads = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))
        runs = np.diff(np.append(heads, len(block)))  # one run of rows per user
        first = ordered[heads]
        ranks = np.arange(len(block), dtype=np.int32) - np.repeat(heads, runs).astype(np.int32)
        pos[start + grouped] = ranks + np.repeat(seen[first], runs)
        seen[first] += runs.astype(np.int32)
    return pos, counts


def _stable_order(codes: np.ndarray) -> np.ndarray:
    """``np.argsort(codes, kind="stable")`` for non-negative integer codes, as two
    16-bit radix passes (numpy radix-sorts 16-bit keys) when the codes fit in 32 bits."""
    if len(codes) == 0 or codes.max() >= 1 << 32:
        return np.argsort(codes, kind="stable")
    low = np.argsort(codes.astype(np.uint16), kind="stable")  # the low 16 bits
    high = (codes[low] >> 16).astype(np.uint16)
    return low[np.argsort(high, kind="stable")]


def _per_user_ratio(users: np.ndarray, r: Ratios, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of the rows of integer user codes ``users``, and each shuffled
    row's part (0/1/2) when each user's rows are cut by ``r`` (part sizes per user)."""
    # The rng's permutation, shuffled in place in 32 bits (permutation(n) shuffles an
    # int64 arange by the same draws), and the users gathered a slice at a time.
    order = np.arange(len(users), dtype=ROW if len(users) < 1 << 32 else np.int64)
    np.random.default_rng(seed).shuffle(order)
    shuffled = np.empty(len(users), dtype=np.int32 if len(users) < 1 << 31 else np.int64)
    for start in range(0, len(users), CHUNK_ROWS):
        shuffled[start : start + CHUNK_ROWS] = users[order[start : start + CHUNK_ROWS]]
    pos, n = user_ranks(shuffled)
    valid = np.floor(r[1] * n).astype(np.int64)
    test = np.floor(r[2] * n).astype(np.int64)
    train = n - valid - test
    for count, share in ((test, r[2]), (valid, r[1])):
        bump = (train > 1) & (share * n > 0) & (share * n < 1)
        count += bump
        train -= bump
    cuts = train.astype(pos.dtype), (train + valid).astype(pos.dtype)  # 32 bits per row
    part = (pos >= cuts[0][shuffled]).astype(np.int8)
    part += pos >= cuts[1][shuffled]
    return order, part


def temporal(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """One global time order; the first share trains, the next validates, the last tests."""
    _require_time(ds, "temporal")
    r = _check_ratios(ratios)
    order = _time_order(ds)
    n = len(order)
    cut_train, cut_valid = round(r[0] * n), round((r[0] + r[1]) * n)
    groups = [order[:cut_train], order[cut_train:cut_valid], order[cut_valid:]]
    del order  # held by the groups only, which _build empties
    return _build(ds, groups, "temporal", None, {"ratios": list(r)})


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
    item_idx = ds.interactions.indices()[1]
    vocab = ds.interactions.items
    active = np.flatnonzero(np.bincount(item_idx, minlength=len(vocab)))
    items = active[np.argsort(vocab.lexical_ranks()[active])]  # as their IDs sort
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
    label = np.zeros(len(vocab), dtype=np.int8)
    label[shuffled[cut_train:cut_valid]], label[shuffled[cut_valid:]] = 1, 2
    groups = _item_groups(ds, label, r, seed, per_user=cold_items is not None)
    return _build(ds, groups, "cold_start", seed, params)


def _item_groups(
    ds: Dataset, label: np.ndarray, r: Ratios, seed: int, per_user: bool
) -> list[np.ndarray]:
    """Each row in its item's part (``label``, per item); with ``per_user`` the warm
    rows (label 0) are cut per user as in :func:`random_ratio`, the cold ones follow."""
    users, item_idx = ds.interactions.indices()
    part = label[item_idx]
    if not per_user:
        return [positions(part == code) for code in range(len(PARTS))]
    warm, cold = np.flatnonzero(part == 0), np.flatnonzero(part != 0)
    order, warm_part = _per_user_ratio(users[warm], r, seed)
    return _grouped(np.concatenate([warm[order], cold]), np.concatenate([warm_part, part[cold]]))


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
