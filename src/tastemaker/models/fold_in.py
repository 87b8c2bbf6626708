"""Recommendations for a user the model was not trained on, known only by a list of items.

implicit's ``recalculate_user`` and Cornac's fold-in answer the same need: a new
visitor has rated a few items and wants recommendations now, without retraining.
A model that can score such a user implements :class:`FoldsIn`; item-based models
(popularity, item kNN, EASE) and sequential ones (the network reads the items as it
reads a known user's history) do, exactly as they score a training user.

Models that learn one vector per training user (ALS, BPR, LightGCN, VBPR) fold in by
solving that vector with the item side fixed (:class:`SolvesUserVector`): one
d x d linear system per request, no retraining. ALS solves its own objective (Hu,
Koren & Volinsky, ICDM 2008, eq. 4, as implicit's ``recalculate_user``): every item
is a zero target weighted 1, the history items are one-targets weighted 1 + α, with
the model's α and λ. BPR-trained models have no squared loss to reuse, so they solve
a ridge regression of a score of 1 on the history items' vectors,
x = (Y_hᵀY_h + λI)⁻¹ Y_hᵀ1, λ = :data:`RIDGE_SHARE` of the mean squared length of
those vectors (scale-free: BPR's vector lengths vary with training). A positives-only
ridge has no negatives to push away, so its vector points along what the history's
items share, which is what a BPR user vector learns too. These are estimates: a
training user's folded-in scores rank like, but do not equal, the trained ones
(tests/test_fold_in_mf.py measures how well they rank held-out items). Other models
say they cannot.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
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


RIDGE_SHARE = 0.1  # λ of the positives-only ridge, per unit of mean squared item-vector length


@dataclass(frozen=True)
class UserSystem:
    """What a solved user vector is fitted against: ``items`` (n_items, d) are the item
    side of the score, ``offset`` (n_items,) a per-item score term the user vector does
    not multiply (VBPR's biases), ``gram`` YᵀY over every item when every item is a zero
    target (ALS) and None for a ridge on the history alone; ``reg`` λ, ``alpha`` α."""

    items: torch.Tensor
    reg: float | None = None
    alpha: float = 0.0
    gram: torch.Tensor | None = None
    offset: torch.Tensor | None = None


def solve_user(system: UserSystem, history: np.ndarray) -> torch.Tensor:
    """Scores of every item for the user vector x solving
    (G + α Y_hᵀY_h + λI) x = (1 + α) Y_hᵀ(1 − b_h), G = ``gram`` or Y_hᵀY_h, b = offset."""
    items = system.items.detach().double()
    rows = items[torch.from_numpy(np.unique(np.asarray(history, dtype=np.int64)))]
    local = rows.T @ rows
    gram = local if system.gram is None else system.gram.detach().double()
    reg = system.reg
    if reg is None:  # scale-free ridge: a share of the mean squared length of the rows
        reg = RIDGE_SHARE * float(rows.square().sum(dim=1).mean()) + 1e-12
    targets = torch.ones(len(rows), dtype=torch.float64)
    offset = None if system.offset is None else system.offset.detach().double()
    if offset is not None:
        targets = targets - offset[torch.from_numpy(np.unique(history))]
    matrix = gram + system.alpha * local + reg * torch.eye(items.shape[1], dtype=torch.float64)
    vector = torch.linalg.solve(matrix, (1 + system.alpha) * rows.T @ targets)
    scores = items @ vector
    return (scores if offset is None else scores + offset).float()


class SolvesUserVector:
    """Fold-in for a model with one vector per training user: solve it (:func:`solve_user`)."""

    @abstractmethod
    def user_system(self) -> UserSystem:
        """The item side of the model's scores and how to fit a user vector to it."""

    @torch.no_grad()
    def fold_in_scores(self, items: np.ndarray) -> torch.Tensor:
        """Scores of every item for the vector solved from ``items`` (order is ignored)."""
        return solve_user(self.user_system(), items)


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
