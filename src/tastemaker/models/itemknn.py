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

_CHUNK_CELLS = 1 << 23  # dense similarity cells computed at once (~32 MB of float32)


class ItemKNNConfig(ModelConfig):
    k: PositiveInt = 100
    shrink: NonNegativeFloat = 0.0


def topk_cosine(matrix: sp.csr_matrix, k: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Items x items similarity of the columns of ``matrix``, top ``k`` per row, no diagonal.

    Rows are computed a chunk of items at a time, so memory stays near
    ``_CHUNK_CELLS`` however large the catalog; only positive similarities are kept.
    """
    n_items = matrix.shape[1]
    columns = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float32).ravel())
    k = min(k, n_items - 1)
    step = max(1, _CHUNK_CELLS // max(n_items, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n_items if k > 0 else 0, step):
        stop = min(start + step, n_items)
        dots = (columns[start:stop] @ matrix).toarray()
        denom = norms[start:stop, None] * norms[None, :] + np.float32(shrink)
        sim = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        local = np.arange(stop - start)
        sim[local, local + start] = 0.0
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top_vals = np.take_along_axis(sim, top, axis=1)
        keep = top_vals > 0
        rows.append(np.broadcast_to(local[:, None] + start, top.shape)[keep])
        cols.append(top[keep])
        vals.append(top_vals[keep])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
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
