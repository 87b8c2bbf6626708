"""Item-item similarity from who interacted with what (co-occurrence cosine).

Two items are alike when the same users interacted with both: the cosine of their
binary user columns, |U_i ∩ U_j| / sqrt(|U_i| |U_j|) (Sarwar et al., "Item-based
collaborative filtering recommendation algorithms", WWW 2001). It needs no model,
so ``/items/{id}/similar`` and explanations work with whatever models are served;
it is computed from the known interactions at start-up (sparse, items x users).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp


class ItemSimilarity:
    """Co-occurrence cosine between catalog rows."""

    def __init__(self, histories: Mapping[str, Sequence[str]], item_index: Mapping[str, int]):
        rows, cols = [], []
        for user, (_, items) in enumerate(histories.items()):
            known = {item_index[i] for i in items if i in item_index}
            rows.extend(known)
            cols.extend([user] * len(known))
        shape = (len(item_index), max(len(histories), 1))
        matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        self.unit = sp.diags(scale.astype(np.float32)) @ matrix
        self.counts = np.asarray(matrix.sum(axis=1)).ravel().astype(np.int64)

    def to(self, row: int, others: Sequence[int] | None = None) -> np.ndarray:
        """Similarity of ``row`` to ``others`` (every row when None)."""
        target = self.unit[row]
        pool = self.unit if others is None else self.unit[np.asarray(others, dtype=np.int64)]
        return np.asarray((pool @ target.T).todense()).ravel()

    def most_similar(self, row: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` rows most like ``row`` (itself left out, zero similarity dropped)."""
        scores = self.to(row)
        scores[row] = 0.0
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]


__all__ = ["ItemSimilarity"]
