"""Preparation on integer indices gives what the string operations gave: the same rows in
the same order, the same content hashes, the same recorded steps; and the evaluator's
context joins indices without building a string frame."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from tastemaker.data import filters
from tastemaker.data.interactions import (
    ITEM_ID,
    TIMESTAMP,
    USER_ID,
    Interactions,
    content_hash,
    normalise_frame,
)
from tastemaker.data.splits import make_split

from .conftest import make_dataset


def string_hash(frame: pl.DataFrame) -> str:
    """The hash's definition: rows sorted by their string IDs, then time; CSV text."""
    canonical = normalise_frame(frame).sort([USER_ID, ITEM_ID, TIMESTAMP], nulls_last=True)
    return hashlib.sha256(canonical.write_csv().encode()).hexdigest()


def messy_rows(seed: int, n: int = 400) -> list[tuple[str, str, float, int | None]]:
    """IDs that sort differently as strings and numbers ("10" < "9"), repeated pairs,
    equal and missing timestamps."""
    rng = np.random.default_rng(seed)
    return [
        (
            str(rng.integers(1, 30)),
            f"i{rng.integers(1, 25)}",
            float(rng.integers(1, 6)),
            None if rng.random() < 0.1 else int(rng.integers(0, 20)),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_content_hash_keeps_its_definition(seed: int) -> None:
    frame = make_dataset(messy_rows(seed)).interactions.frame
    deduped = filters.deduplicate(make_dataset(messy_rows(seed))).interactions.frame
    for rows in (frame, deduped, frame.head(0), frame.reverse()):
        assert content_hash(rows) == string_hash(rows)


@pytest.mark.parametrize("keep", ["first", "last"])
def test_deduplicate_equals_the_sort_and_unique_of_strings(keep: str) -> None:
    ds = make_dataset(messy_rows(2))
    frame = ds.interactions.frame.with_row_index("_row")
    ordered = frame.sort([TIMESTAMP, "_row"], nulls_last=True)
    expected = ordered.unique([USER_ID, ITEM_ID], keep=keep, maintain_order=True).sort("_row")
    got = filters.deduplicate(ds, keep)
    assert got.interactions.frame.equals(expected.drop("_row"))
    assert got.manifest.steps[-1].rows_after == expected.height < frame.height


def test_k_core_equals_the_string_rounds_and_prunes_the_catalog() -> None:
    ds = filters.deduplicate(make_dataset(messy_rows(3, n=300)))
    frame, rounds = ds.interactions.frame, 0
    while True:  # the string version the integer one replaced
        rounds += 1
        kept = frame.filter((pl.len().over(USER_ID) >= 6) & (pl.len().over(ITEM_ID) >= 7))
        if kept.height == frame.height:
            break
        frame = kept
    got = filters.k_core(ds, 6, 7)
    assert got.interactions.frame.equals(frame) and 0 < frame.height < len(ds.interactions)
    assert got.manifest.steps[-1].params["rounds"] == rounds > 1
    assert sorted(got.catalog.vocab.ids) == sorted(frame[ITEM_ID].unique().to_list())
    # The derived interactions' indices are those a fresh encoding gives.
    fresh = Interactions(frame, items=got.catalog.vocab)
    assert got.interactions.users == fresh.users
    for carried, encoded in zip(got.interactions.indices(), fresh.indices(), strict=True):
        np.testing.assert_array_equal(carried, encoded)


def test_ratio_split_equals_the_string_grouping() -> None:
    ds = filters.deduplicate(make_dataset(messy_rows(4)))
    split = make_split(ds, "ratio", ratios=(0.6, 0.2, 0.2), seed=7)
    frame = ds.interactions.frame
    order = np.random.default_rng(7).permutation(frame.height)
    shuffled = frame[order].with_columns(
        _pos=pl.int_range(pl.len()).over(USER_ID), _n=pl.len().over(USER_ID)
    )
    n, pos = shuffled["_n"].to_numpy(), shuffled["_pos"].to_numpy()
    valid, test = np.floor(0.2 * n), np.floor(0.2 * n)  # no user has a 0 < share < 1 row
    assert (0.2 * n >= 1).all()
    part = np.where(pos < n - valid - test, 0, np.where(pos < n - test, 1, 2))
    for code, name in enumerate(("train", "valid", "test")):
        expected = shuffled.filter(pl.Series(part == code)).drop("_pos", "_n")
        assert split.part(name).frame.equals(expected), name


def test_context_joins_indices_without_a_string_frame() -> None:
    whole = make_dataset(messy_rows(5, n=60)).interactions
    first, second = whole.with_frame(whole.frame[:40]), whole.with_frame(whole.frame[40:])
    joined = Interactions.concat([first, second])
    assert joined._frame is None  # only indices so far
    assert len(joined) == 60 and joined.has_timestamps is False
    np.testing.assert_array_equal(
        joined.indices()[1], np.concatenate([first.indices()[1], second.indices()[1]])
    )
    times = joined.column(TIMESTAMP)  # what a sequential model reads: one column joined
    assert times.equals(pl.concat([first.frame[TIMESTAMP], second.frame[TIMESTAMP]]))
    assert joined._frame is None
    assert joined.frame.equals(pl.concat([first.frame, second.frame]))
