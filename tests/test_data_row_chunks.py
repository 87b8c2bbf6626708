"""Preparation done a slice of rows at a time gives what the whole-column numpy
operations give, whatever the slice size: the same positions, counts, orders and
ranks, and the same split (rows, order, hashes) end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tastemaker.data import filters, interactions, row_chunks, row_hash, splits
from tastemaker.data.interactions import content_hash
from tastemaker.data.row_chunks import counts, key_order, map_in_place, positions

from .conftest import make_dataset
from .test_fast_prepare import messy_rows, string_hash


@pytest.fixture(params=[1, 7, 1 << 18])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Slices of 1 and 7 rows (many slices, ragged ends) and the default (one slice)."""
    for module in (row_chunks, row_hash, splits, interactions):
        monkeypatch.setattr(module, "CHUNK_ROWS", request.param)
    return int(request.param)


def test_helpers_equal_whole_column_numpy(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    keep = rng.random(50) < 0.6
    index = rng.integers(0, 9, 50)
    got = positions(keep)
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, np.flatnonzero(keep))
    np.testing.assert_array_equal(counts(index, 12, keep), np.bincount(index[keep], minlength=12))
    mapping = rng.permutation(9) * 10
    expected = mapping[index]
    assert map_in_place(index, mapping) is index
    np.testing.assert_array_equal(index, expected)


@pytest.mark.parametrize("high", [5, 1 << 20, 1 << 62])  # the last leaves no room to pack
def test_key_order_is_a_stable_sort_and_finds_repeats(chunk: int, high: int) -> None:
    keys = np.random.default_rng(high % 89).integers(0, high, 300)
    keys[[3, 200]] = keys[100]  # a repeat even among large keys
    order, repeated = key_order(keys.copy())
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    _, inverse, times = np.unique(keys, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(repeated, times[inverse] > 1)
    assert repeated[[3, 100, 200]].all()


def test_key_order_of_no_rows() -> None:
    order, repeated = key_order(np.zeros(0, dtype=np.int64))
    assert order.size == 0 and repeated.size == 0


def test_user_ranks_equal_a_row_by_row_count(chunk: int) -> None:
    users = np.random.default_rng(1).integers(0, 6, 40)
    pos, n = splits.user_ranks(users)
    seen: dict[int, int] = {}
    for row, user in enumerate(users):
        assert pos[row] == seen.get(int(user), 0)
        seen[int(user)] = seen.get(int(user), 0) + 1
    np.testing.assert_array_equal(n, np.bincount(users))


def test_content_hash_is_streamed_across_slices(chunk: int) -> None:
    frame = make_dataset(messy_rows(10)).interactions.frame
    assert content_hash(frame) == string_hash(frame)  # header once, rows in order
    assert content_hash(frame.head(0)) == string_hash(frame.head(0))


def test_preparation_is_the_same_in_any_slice_size(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepared() -> dict[str, object]:
        rows = [(u, i, r, 20 if t is None else t) for u, i, r, t in messy_rows(11, n=600)]
        ds = filters.k_core(filters.deduplicate(make_dataset(rows)), 3, 3)  # time ties kept
        out: dict[str, object] = {"catalog": ds.catalog.vocab.ids}
        for kind in ("ratio", "loo", "temporal", "cold_start"):
            split = splits.make_split(ds, kind, seed=5)
            out[kind] = (split.info.part_hashes, split.users.ids)
            for name in ("train", "valid", "test"):
                part = split.part(name)
                indices = [index.tolist() for index in part.indices()]
                out[f"{kind}/{name}"] = (part.frame.to_dicts(), indices)
        split = splits.make_split(ds, "cold_start", seed=5, cold_items=0.3)
        out["cold_items"] = [split.part(p).frame.to_dicts() for p in ("train", "valid", "test")]
        return out

    got = prepared()
    for module in (row_chunks, row_hash, splits, interactions):
        monkeypatch.setattr(module, "CHUNK_ROWS", 1 << 18)
    assert got == prepared()


def test_vocab_from_a_string_series_keeps_its_ids() -> None:
    from tastemaker.data.vocab import Vocab

    ids = pl.Series(["b", "a", "c"])
    vocab = Vocab(ids, "user")
    assert vocab.ids == ["b", "a", "c"] and vocab.at([2, 0]).to_list() == ["c", "b"]
    assert vocab == Vocab(["b", "a", "c"], "user")
