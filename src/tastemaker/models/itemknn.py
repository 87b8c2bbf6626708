"""ItemKNN: items similar to what the user already interacted with.

Cosine similarity between the item columns of the binary user-item matrix,
optionally shrunk towards zero for items with little support
(sim = dot / (|i| |j| + shrink)), pruned to each item's ``k`` most similar
items (Deshpande & Karypis, "Item-based top-N recommendation algorithms",
TOIS 2004). A user's score for item j is the sum of sim(i, j) over the items i
the user interacted with.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import NonNegativeFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.models.base import Recommender
from tastemaker.models.config import ModelConfig
from tastemaker.models.fold_in import one_hot_row
from tastemaker.models.registry import register

_CHUNK_CELLS = 1 << 23  # co-occurrence entries (an upper bound) computed at once (~100 MB)


class ItemKNNConfig(ModelConfig):
    k: PositiveInt = 100
    shrink: NonNegativeFloat = 0.0


def chunk_bounds(work: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges of rows whose summed ``work`` stays within
    ``budget`` (a row over it alone makes a range of one), so every chunk's product has
    a bounded size however skewed the rows are."""
    ends = np.cumsum(work, dtype=np.int64)
    bounds, start = [], 0
    while start < len(work):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def top_per_row(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest positive entries of each row of a sparse block given as
    coordinates grouped by row (ties keep their input order): one sort of the stored
    entries, no dense row ever built.

    The sort key packs the row above the bits of ``-value``: positive float32 bit
    patterns order as the floats do, so one integer sort orders rows, then values.
    """
    keep = vals > 0
    rows, cols, vals = rows[keep], cols[keep], vals[keep].astype(np.float32)
    key = (rows.astype(np.uint64) << np.uint64(32)) | (
        np.uint64(0xFFFFFFFF) - vals.view(np.uint32).astype(np.uint64)
    )
    order = np.argsort(key, kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(n_rows))
    kept = np.arange(len(rows)) - starts[rows] < k
    return rows[kept], cols[kept], vals[kept]


def topk_cosine(matrix: sp.csr_matrix, k: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Items x items similarity of the columns of ``matrix``, top ``k`` per row, no diagonal.

    Sparse-sparse products of a chunk of item columns with the matrix give only the
    pairs that co-occur (work ∝ co-occurrences, not items²); chunks are cut so that
    each product holds at most about ``_CHUNK_CELLS`` entries, and each row is cut to
    its top ``k`` before the next chunk. Only positive similarities are kept.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    n_items = matrix.shape[1]
    columns = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float32).ravel())
    k = min(k, n_items - 1)
    if k <= 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    # The entries a column's product can make: the summed lengths of its users' rows.
    user_lengths = np.diff(matrix.indptr).astype(np.int64)
    work = np.add.reduceat(np.append(user_lengths[columns.indices], 0), columns.indptr[:-1]) * (
        np.diff(columns.indptr) > 0
    )
    rows, cols, vals = [], [], []
    for start, stop in chunk_bounds(work, _CHUNK_CELLS):
        dots = columns[start:stop] @ matrix
        local = np.repeat(np.arange(start, stop), np.diff(dots.indptr))
        denom = norms[local] * norms[dots.indices] + np.float32(shrink)
        sim = np.divide(dots.data, denom, out=np.zeros_like(dots.data), where=denom > 0)
        sim[local == dots.indices] = 0.0
        top = top_per_row(local - start, dots.indices, sim, stop - start, k)
        rows.append(top[0] + start)
        cols.append(top[1])
        vals.append(top[2])
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )


@register
class ItemKNN(Recommender):
    """Item-based k-nearest-neighbours on cosine similarity."""

    name = "itemknn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig
    state_keys = ("similarity.indptr", "similarity.indices", "similarity.data")

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        if self.seen is None:
            raise self.not_fitted_error()
        self.similarity = topk_cosine(self.seen, self.config.k, self.config.shrink)

    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        if self.seen is None:
            raise self.not_fitted_error()
        block = (self.seen[user_idx] @ self.similarity).toarray()
        return torch.from_numpy(block.astype(np.float32, copy=False))

    def fold_in_scores(self, items: np.ndarray) -> torch.Tensor:
        """A new user's items summed through the neighbour matrix, as a known user's are."""
        row = one_hot_row(items, self.n_items)
        block = (row @ self.similarity).toarray()[0]
        return torch.from_numpy(block.astype(np.float32, copy=False))

    def _state(self) -> dict[str, torch.Tensor]:
        return {
            "similarity.indptr": torch.from_numpy(self.similarity.indptr.astype(np.int64)),
            "similarity.indices": torch.from_numpy(self.similarity.indices.astype(np.int64)),
            "similarity.data": torch.from_numpy(self.similarity.data),
        }

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.similarity = sp.csr_matrix(
            (
                tensors["similarity.data"].numpy(),
                tensors["similarity.indices"].numpy(),
                tensors["similarity.indptr"].numpy(),
            ),
            shape=(self.n_items, self.n_items),
        )
