"""Preparation on integer indices gives what the string operations gave: the same rows in
the same order, the same content hashes, the same recorded steps; and the evaluator's
context joins indices without building a string frame."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import polars as pl
import pytest

from tastemaker.data import filters
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import (
    ITEM_ID,
    TIMESTAMP,
    USER_ID,
    Interactions,
    content_hash,
    normalise_frame,
)
from tastemaker.data.splits import _stable_order, make_split
from tastemaker.data.vocab import Vocab
from tastemaker.errors import DataError

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


def test_content_hash_from_indices_equals_the_string_definition() -> None:
    # Catalog order i0, i1, ..., i29 is not the IDs' lexical order (i10 < i2).
    ds = make_dataset(messy_rows(7), n_items=30)
    assert ds.catalog.vocab.ids != sorted(ds.catalog.vocab.ids)
    lazy = ds.interactions.take(np.arange(len(ds.interactions))[::-1].copy())
    for rows in (ds.interactions, lazy, filters.deduplicate(ds).interactions):
        assert rows.content_hash() == string_hash(rows.frame)


def test_taken_rows_are_gathered_from_the_source_once() -> None:
    ds = make_dataset(messy_rows(8), n_items=30)
    frame = ds.interactions.frame
    rows = np.random.default_rng(0).permutation(frame.height)[:150]
    taken = ds.interactions.take(rows)
    assert taken._frame is None and len(taken) == 150  # nothing gathered yet
    assert taken.column(TIMESTAMP).equals(frame[TIMESTAMP].gather(rows))
    again = taken.take(np.arange(10, 60))
    assert again._source is not None and again._source[0] is frame  # rows of rows
    assert again.frame.equals(frame[rows[10:60]])
    for carried, encoded in zip(
        again.indices(), again.with_frame(again.frame).indices(), strict=True
    ):
        np.testing.assert_array_equal(carried, encoded)
    sent = pickle.loads(pickle.dumps(taken.take(np.arange(5))))  # its rows, not the source
    assert sent._source is None and sent.frame.equals(frame[rows[:5]])


def test_dataset_binds_other_vocabularies_by_their_indices() -> None:
    ds = make_dataset(messy_rows(9), n_items=30)
    frame = ds.interactions.frame
    # Users in reverse order with one unknown to the rows; items in reverse order.
    users = Vocab(["nobody", *sorted(frame[USER_ID].unique().to_list(), reverse=True)], "user")
    items = Vocab(list(reversed(ds.catalog.vocab.ids)), "item")
    bound = Dataset(ds.catalog, Interactions(frame, users, items), ds.manifest).interactions
    fresh = Interactions(frame, items=ds.catalog.vocab)
    assert bound.users == fresh.users and bound.items == fresh.items
    for carried, encoded in zip(bound.indices(), fresh.indices(), strict=True):
        np.testing.assert_array_equal(carried, encoded)
    assert bound.frame.equals(fresh.frame)


def test_vocab_encode_by_enum_names_unknown_ids() -> None:
    vocab = Vocab(["b", "a", "c"], "item")
    np.testing.assert_array_equal(vocab.encode(pl.Series(["c", "a", "a", "b"])), [2, 1, 1, 0])
    assert vocab.encode(pl.Series([], dtype=pl.Utf8)).dtype == np.int64
    with pytest.raises(DataError, match=r"1 item ID not in the vocabulary, e\.g\. zz"):
        vocab.encode(pl.Series(["a", "zz"]))


@pytest.mark.parametrize("high", [5, 300_000, 1 << 40])
def test_stable_order_equals_numpy_stable_argsort(high: int) -> None:
    codes = np.random.default_rng(high % 97).integers(0, high, 5_000)
    np.testing.assert_array_equal(_stable_order(codes), np.argsort(codes, kind="stable"))
