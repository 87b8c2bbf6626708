"""ItemKNN's sparse-sparse similarity equals the dense definition; EASE's memory limit
reads the memory Linux says is available, not only its free pages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tastemaker.models import ease as ease_module
from tastemaker.models import itemknn
from tastemaker.models.itemknn import chunk_bounds, topk_cosine


def dense_cosine(matrix: sp.csr_matrix, shrink: float) -> np.ndarray:
    """The definition on a dense items x items matrix: cosine (shrunk), no diagonal."""
    x = matrix.toarray().astype(np.float64)
    norms = np.sqrt((x * x).sum(axis=0))
    denom = norms[:, None] * norms[None, :] + shrink
    sim = np.divide(x.T @ x, denom, out=np.zeros_like(denom), where=denom > 0)
    np.fill_diagonal(sim, 0)
    return sim


def assert_top_k(got: sp.csr_matrix, sim: np.ndarray, k: int) -> None:
    """Each row holds its k largest positive similarities, at their true values (which
    of two items equal up to float32 rounding is kept may differ)."""
    got = got.toarray()
    for row, values in enumerate(sim):
        kept = np.flatnonzero(got[row])
        np.testing.assert_allclose(got[row, kept], values[kept], rtol=1e-5)
        best = np.sort(values[values > 0])[::-1][:k]
        np.testing.assert_allclose(np.sort(got[row, kept])[::-1], best, rtol=1e-5)


@pytest.mark.parametrize(("k", "shrink"), [(3, 0.0), (10, 2.0), (100, 0.5)])
def test_sparse_similarity_equals_the_dense_definition(
    k: int, shrink: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(k)
    dense = (rng.random((60, 45)) < 0.15).astype(np.float32)
    dense[:, 7] = 0  # an item nobody has
    matrix = sp.csr_matrix(dense)
    sim = dense_cosine(matrix, shrink)
    assert_top_k(topk_cosine(matrix, k, shrink), sim, k)
    monkeypatch.setattr(itemknn, "_CHUNK_CELLS", 50)  # many small products
    assert_top_k(topk_cosine(matrix, k, shrink), sim, k)


def test_chunks_stay_within_the_budget() -> None:
    work = np.array([3, 4, 0, 9, 12, 1, 1, 1])
    bounds = chunk_bounds(work, 10)
    assert bounds == [(0, 3), (3, 4), (4, 5), (5, 8)]  # 12 > 10 alone makes a chunk
    assert chunk_bounds(np.array([], dtype=np.int64), 10) == []


def test_available_memory_is_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       16000000 kB\nMemFree:         2000000 kB\n"
        "MemAvailable:    8000000 kB\nBuffers:          100000 kB\n"
    )
    # 8,000,000 kB available (page cache the kernel gives back), not the 2 GB free.
    assert ease_module.available_memory_gb(meminfo) == pytest.approx(8.192)
    fallback = ease_module.available_memory_gb(tmp_path / "missing")
    assert fallback > 0  # no /proc (macOS): the free pages
