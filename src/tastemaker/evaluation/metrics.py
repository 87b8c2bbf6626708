"""Top-K ranking metrics as pure, vectorised functions of a hits matrix.

``hits`` is a boolean ``(n_users, K)`` array: ``hits[u, i]`` says whether the item
ranked ``i + 1`` for user ``u`` is relevant. ``n_relevant`` is ``|R_u|``, the size of
each user's relevant set (at least 1). Every function returns one value per user at
``K = hits.shape[1]``; a metric at a smaller K is the same function on ``hits[:, :k]``.

The definitions follow RecBole's (``recbole.evaluator.metrics``) so numbers are
comparable with published RecBole results: NDCG's ideal DCG and MAP's normaliser
both use ``min(|R|, K)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tastemaker.errors import DataError

Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check(hits: np.ndarray, n_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coerce the inputs, failing loudly instead of returning NaN or inf averages."""
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if hits.ndim != 2 or hits.shape[1] < 1 or n_relevant.shape != (hits.shape[0],):
        raise DataError(
            f"hits has shape {hits.shape} and n_relevant {n_relevant.shape}",
            "pass hits as (n_users, K) with K >= 1 and n_relevant as (n_users,)",
        )
    if n_relevant.size and n_relevant.min() < 1:
        raise DataError(
            "some users have no relevant items, so their metrics are undefined",
            "leave users without relevant items out of the evaluation",
        )
    return hits, n_relevant


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Share of the relevant items found in the top K: Σh / |R|."""
    hits, n_relevant = _check(hits, n_relevant)
    return hits.sum(axis=1) / n_relevant


def precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Share of the top K that is relevant: Σh / K."""
    hits, _ = _check(hits, n_relevant)
    return hits.sum(axis=1) / hits.shape[1]


def hit_rate(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """1 if any relevant item is in the top K, else 0."""
    hits, _ = _check(hits, n_relevant)
    return hits.any(axis=1).astype(np.float64)


def mrr(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Reciprocal rank of the first relevant item (0 when none is in the top K)."""
    hits, _ = _check(hits, n_relevant)
    first_rank = hits.argmax(axis=1) + 1
    return np.where(hits.any(axis=1), 1.0 / first_rank, 0.0)


def _discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """DCG of the ranking over the DCG of a perfect one with min(|R|, K) hits on top."""
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    discounts = _discounts(k)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    return (hits @ discounts) / ideal


def average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Σ_i h_i · precision@i over min(|R|, K): precision averaged over the hit positions."""
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k)


METRICS: dict[str, Metric] = {
    "recall": recall,
    "precision": precision,
    "hit": hit_rate,
    "mrr": mrr,
    "ndcg": ndcg,
    "map": average_precision,
}


def coverage(top_items: np.ndarray, n_items: int) -> float:
    """Fraction of the catalog's ``n_items`` that appear anywhere in ``top_items``.

    Low coverage with good accuracy means the model recommends the same few
    popular items to everyone.
    """
    if n_items < 1:
        raise DataError("coverage of an empty catalog is undefined", "evaluate on a catalog")
    top_items = np.asarray(top_items, dtype=np.int64).ravel()
    if top_items.size and (top_items.min() < 0 or top_items.max() >= n_items):
        raise DataError(
            f"top items hold indices outside 0..{n_items - 1}",
            "pass item indices from the same item vocabulary as n_items",
        )
    return float(np.unique(top_items).size / n_items)
