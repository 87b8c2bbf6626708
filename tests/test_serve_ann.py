"""The item-vector indexes of serving: exact against a brute-force ranking, HNSW's
recall against exact, exclusions, padding, and bad input as typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.errors import ConfigError, DataError
from tastemaker.serve import ann
from tastemaker.serve.ann import ExactIndex, HNSWIndex, build_index


def _random(rows: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim), dtype=np.float32)


def _brute_force(queries: np.ndarray, items: np.ndarray, k: int, exclude=None):
    """Top-k by a full argsort of float64 scores, one query at a time."""
    indices, scores = [], []
    for row, query in enumerate(queries.astype(np.float64)):
        score = items.astype(np.float64) @ query
        if exclude is not None:
            score[np.asarray(exclude[row], dtype=int)] = -np.inf
        order = np.argsort(-score)[:k]
        indices.append(order)
        scores.append(score[order])
    return np.array(indices), np.array(scores)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def hnsw_data() -> tuple[np.ndarray, np.ndarray, HNSWIndex]:
    items, queries = _random(5000, 32, 0), _random(200, 32, 1)
    return items, queries, HNSWIndex(items, seed=0)


@pytest.mark.parametrize("chunk_cells", [ann.CHUNK_CELLS, 3 * 400])
def test_exact_matches_brute_force_argsort(monkeypatch, chunk_cells: int) -> None:
    # A tiny chunk size makes the index score the 50 queries in chunks of 3.
    monkeypatch.setattr(ann, "CHUNK_CELLS", chunk_cells)
    items, queries = _random(400, 16, 2), _random(50, 16, 3)
    found = ExactIndex(items).search(queries, 7)
    indices, scores = _brute_force(queries, items, 7)
    np.testing.assert_array_equal(found.indices, indices)
    np.testing.assert_allclose(found.scores, scores, rtol=1e-5, atol=1e-5)
    assert found.indices.dtype == np.int64 and found.scores.dtype == np.float32


def test_exact_single_vector_query_and_whole_catalog() -> None:
    items = _random(30, 8, 4)
    query = _random(1, 8, 5)[0]
    found = ExactIndex(items).search(query, 30)
    assert found.indices.shape == (1, 30)
    assert sorted(found.indices[0]) == list(range(30))
    assert np.all(np.diff(found.scores[0]) <= 0)


def test_hnsw_recall_at_10_against_exact(hnsw_data) -> None:
    items, queries, index = hnsw_data
    exact = ExactIndex(items).search(queries, 10)
    found = index.search(queries, 10)
    assert _recall(found.indices, exact.indices) >= 0.95
    # Scores are the true inner products of the returned items, best first.
    true = np.einsum("qd,qkd->qk", queries, items[found.indices])
    np.testing.assert_allclose(found.scores, true, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(found.scores, axis=1) <= 0)


def test_hnsw_ef_search_trades_recall(hnsw_data) -> None:
    items, queries, index = hnsw_data
    exact = ExactIndex(items).search(queries, 10).indices
    try:
        index.ef_search = 1
        low = _recall(index.search(queries, 10).indices, exact)
    finally:
        index.ef_search = 128
    assert low < _recall(index.search(queries, 10).indices, exact)


def test_hnsw_same_seed_same_graph() -> None:
    faiss = pytest.importorskip("faiss")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        items, queries = _random(1500, 16, 6), _random(40, 16, 7)
        first = HNSWIndex(items, m=8, ef_construction=16, ef_search=10, seed=3)
        again = HNSWIndex(items, m=8, ef_construction=16, ef_search=10, seed=3)
    finally:
        faiss.omp_set_num_threads(threads)
    np.testing.assert_array_equal(
        first.search(queries, 10).indices, again.search(queries, 10).indices
    )
    levels = faiss.vector_to_array(first.index.hnsw.levels)
    assert np.array_equal(levels, faiss.vector_to_array(again.index.hnsw.levels))


def test_exclusions_exact_equal_brute_force_without_those_items() -> None:
    items, queries = _random(300, 12, 8), _random(20, 12, 9)
    rng = np.random.default_rng(10)
    # Each query excludes its own brute-force top 5 plus random items.
    top = _brute_force(queries, items, 5)[0]
    exclude = [np.concatenate([t, rng.choice(300, 20, replace=False)]) for t in top]
    found = ExactIndex(items).search(queries, 10, exclude=exclude)
    indices, _ = _brute_force(queries, items, 10, exclude)
    np.testing.assert_array_equal(found.indices, indices)
    for row, excluded in zip(found.indices, exclude, strict=True):
        assert not set(row) & set(excluded)


def test_exclusions_hnsw_filtered_after_over_fetch(hnsw_data) -> None:
    items, queries, index = hnsw_data
    top = ExactIndex(items).search(queries, 30).indices
    exclude = [row[:20] for row in top]
    found = index.search(queries, 10, exclude=exclude)
    for row, excluded in zip(found.indices, exclude, strict=True):
        assert not set(row) & set(excluded)
    truth = ExactIndex(items).search(queries, 10, exclude=exclude).indices
    assert _recall(found.indices, truth) >= 0.95
    assert (found.indices >= 0).all()


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_fewer_items_left_than_k_are_padded(kind: str) -> None:
    items, query = _random(50, 8, 11), _random(1, 8, 12)
    index = build_index(items, kind, ef_search=64)
    keep = [3, 17, 41]
    found = index.search(query, 5, exclude=[np.setdiff1d(np.arange(50), keep)])
    assert sorted(found.indices[0, :3]) == keep
    assert list(found.indices[0, 3:]) == [-1, -1]
    assert np.isneginf(found.scores[0, 3:]).all() and np.isfinite(found.scores[0, :3]).all()


def test_empty_exclusion_lists_change_nothing() -> None:
    items, queries = _random(100, 8, 13), _random(3, 8, 14)
    index = ExactIndex(items)
    plain = index.search(queries, 4)
    empty = index.search(queries, 4, exclude=[[], [], []])
    np.testing.assert_array_equal(empty.indices, plain.indices)


def test_build_index_auto_switches_at_the_threshold(monkeypatch) -> None:
    items = _random(200, 8, 15)
    assert build_index(items).kind == "exact"
    monkeypatch.setattr(ann, "AUTO_EXACT_BELOW", 200)
    assert build_index(items).kind == "hnsw"
    assert build_index(items, "exact").kind == "exact"


def test_memory_reported() -> None:
    items = _random(200, 8, 16)
    assert ExactIndex(items).nbytes == 200 * 8 * 4
    assert HNSWIndex(items, m=4).nbytes > 200 * 8 * 4


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_bad_queries_are_typed_errors(kind: str) -> None:
    index = build_index(_random(20, 4, 17), kind)
    good = _random(2, 4, 18)
    with pytest.raises(ConfigError, match=r"outside 1\.\.20"):
        index.search(good, 21)
    with pytest.raises(ConfigError, match="outside"):
        index.search(good, 0)
    with pytest.raises(DataError, match="3 dimensions but the index holds 4"):
        index.search(_random(2, 3, 19), 5)
    with pytest.raises(DataError, match="NaN or infinite"):
        index.search(np.full((1, 4), np.nan), 5)
    with pytest.raises(DataError, match=r"outside 0\.\.19"):
        index.search(good, 5, exclude=[[1], [20]])
    with pytest.raises(DataError, match="1 exclusion lists for 2 queries"):
        index.search(good, 5, exclude=[[1]])


def test_bad_vectors_and_settings_are_typed_errors() -> None:
    with pytest.raises(DataError, match="non-empty 2-D"):
        ExactIndex(np.zeros((0, 4)))
    with pytest.raises(DataError, match="non-empty 2-D"):
        build_index(np.zeros(4))
    with pytest.raises(DataError, match="NaN or infinite"):
        HNSWIndex(np.array([[1.0, np.inf]]))
    with pytest.raises(ConfigError, match="unknown index kind 'ivf'"):
        build_index(_random(5, 2, 20), "ivf")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ef_search=0"):
        HNSWIndex(_random(5, 2, 21), ef_search=0)
