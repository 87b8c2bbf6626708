"""Recommendations for a user the model was not trained on, known only by a list of items.

implicit's ``recalculate_user`` and Cornac's fold-in answer the same need: a new
visitor has rated a few items and wants recommendations now, without retraining.
A model that can score such a user implements :class:`FoldsIn`; item-based models
(popularity, item kNN, EASE) and sequential ones (the network reads the items as it
reads a known user's history) do. Models that learn one embedding per user (BPR,
LightGCN, ALS, the content models) would need an optimisation per new user and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from tastemaker.data.vocab import id_list
from tastemaker.errors import ConfigError
from tastemaker.models.base import Recommender
from tastemaker.models.registry import available_models, get_model_class


@runtime_checkable
class FoldsIn(Protocol):
    """A model that scores every item for a new user from that user's item indices."""

    def fold_in_scores(self, items: np.ndarray) -> torch.Tensor:
        """Scores of every item, ``(n_items,)``, for one user who interacted with
        ``items`` (indices into the model's item vocabulary, oldest first)."""
        ...


def one_hot_row(items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """A ``(1, n_items)`` binary row of ``items``: a new user as a row of the training
    matrix (each item once, as :meth:`Interactions.to_csr` counts them)."""
    columns = np.unique(np.asarray(items, dtype=np.int64))
    data = np.ones(len(columns), dtype=np.float32)
    return sp.csr_matrix((data, (np.zeros(len(columns)), columns)), shape=(1, n_items))


def fold_in_models() -> list[str]:
    """The registered models that can recommend for a new user from a list of items."""
    return [name for name in available_models() if issubclass(get_model_class(name), FoldsIn)]


def recommend_for_items(
    model: Recommender, items: Sequence[str], k: int = 10, exclude_seen: bool = True
) -> pl.DataFrame:
    """Top-``k`` items (rank, item_id, score) for a new user who interacted with ``items``
    (raw IDs, oldest first); those items themselves are left out with ``exclude_seen``."""
    if not isinstance(model, FoldsIn):
        raise ConfigError(
            f"model '{model.name}' learns one vector per training user, so it cannot score a "
            "user known only by a list of items",
            f"use one of {', '.join(fold_in_models())}, or retrain with the user's interactions",
        )
    if model.items is None:
        raise model.not_fitted_error()
    wanted = id_list(items, "items")
    if not wanted:
        raise ConfigError("no items were given for the new user", "pass at least one item ID")
    if k < 1:
        raise ConfigError(f"k={k} is invalid", "ask for at least 1 recommendation")
    idx = model.items.index(wanted)
    scores = model.fold_in_scores(idx).clone()
    if exclude_seen:
        scores[torch.from_numpy(idx)] = -torch.inf
    top_scores, top_items = torch.topk(scores, min(k, len(model.items)))
    frame = pl.DataFrame(
        {
            "rank": pl.Series(np.arange(1, len(top_items) + 1), dtype=pl.Int32),
            "item_id": pl.Series(model.items.decode(top_items.numpy()), dtype=pl.Utf8),
            "score": pl.Series(top_scores.numpy(), dtype=pl.Float32),
        }
    )
    return frame.filter(pl.col("score") > -np.inf)
