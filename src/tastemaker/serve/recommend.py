"""Recommendations for a known user (data + live feedback) or an ad-hoc history.

A user's history is their known interactions (a Split's train + valid, or all of a
Dataset) followed by their feedback events. How a model scores it:

- a model that folds in exactly (popularity, item kNN, EASE, the sequential models)
  always scores the full history, so a feedback event changes the list at once;
- a model with one trained vector per user (BPR, LightGCN, ALS, VBPR) uses that vector
  while the user has no feedback, and a vector solved from the full history once they
  have some (:class:`~tastemaker.models.fold_in.SolvesUserVector`), or when the model
  never saw the user;
- any other model scores the users it was trained on, and answers 409 for others.

``exclude_seen`` leaves out every item of the history, feedback included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from tastemaker.models.base import Recommender
from tastemaker.models.fold_in import FoldsIn, SolvesUserVector
from tastemaker.serve.problems import ApiError, unknown_item, unknown_user
from tastemaker.serve.state import ModelSet, ServeState


def fold_in_names(models: ModelSet) -> list[str]:
    """The served models that score a user from a list of items."""
    return [name for name, model in models.models.items() if isinstance(model, FoldsIn)]


def cannot_fold_in(name: str, models: ModelSet) -> ApiError:
    able = fold_in_names(models)
    return ApiError(
        409,
        f"model '{name}' scores only the users it was trained on, not this history",
        f"use one of the models that can: {', '.join(able)}"
        if able
        else "serve a model that folds in (e.g. bpr, sasrec, itemknn)",
    )


def history_indices(model: Recommender, items: Sequence[str]) -> np.ndarray:
    """Indices in the model's item vocabulary of the ``items`` it knows, in order."""
    if model.items is None:
        raise model.not_fitted_error()
    vocab = model.items
    return vocab.index([i for i in items if i in vocab]) if items else np.zeros(0, np.int64)


def user_scores(
    state: ServeState, models: ModelSet, name: str | None, user_id: str
) -> tuple[torch.Tensor, np.ndarray]:
    """Scores of the model's items for a known user, and the user's history indices."""
    model = models.get(name)
    history, events = state.history(user_id)
    if not history:
        raise unknown_user(user_id)
    seen = history_indices(model, history)
    trained = model.users is not None and user_id in model.users
    own_vector = isinstance(model, SolvesUserVector) and not events
    if trained and (own_vector or not isinstance(model, FoldsIn)):
        return model.score_indices(model.users.index([user_id]))[0], seen
    return folded_in(model, name or models.default, models, seen), seen


def items_scores(
    state: ServeState, models: ModelSet, name: str | None, items: Sequence[str]
) -> tuple[torch.Tensor, np.ndarray]:
    """Scores of the model's items for an ad-hoc history (a new or anonymous user)."""
    model = models.get(name)
    for item in items:
        if item not in state.item_index:
            raise unknown_item(item)
    seen = history_indices(model, items)
    return folded_in(model, name or models.default, models, seen), seen


def folded_in(model: Recommender, name: str, models: ModelSet, seen: np.ndarray) -> torch.Tensor:
    """The model's scores for a history of ``seen`` item indices (409 when it cannot)."""
    if not isinstance(model, FoldsIn):
        raise cannot_fold_in(name, models)
    if not len(seen):
        raise ApiError(
            409,
            f"model '{name}' knows none of the items of this history",
            "use another model, or add items that the model saw in training",
        )
    return model.fold_in_scores(seen)


def top_items(
    state: ServeState,
    item_ids: list[str],
    scores: torch.Tensor,
    seen: np.ndarray,
    k: int,
    exclude_seen: bool,
) -> list[dict[str, object]]:
    """The ``k`` best items as the API shows them, best first (``item_ids``: the model's
    item IDs by index)."""
    if exclude_seen and len(seen):
        scores = scores.clone()
        scores[torch.from_numpy(seen)] = -torch.inf
    values, indices = torch.topk(scores, min(k, len(scores)))
    return [
        state.item_view(item_ids[i], round(v, 6))
        for i, v in zip(indices.tolist(), values.tolist(), strict=True)
        if math.isfinite(v)
    ]


def recommendations(
    state: ServeState,
    user_id: str | None,
    items: Sequence[str] | None,
    *,
    k: int,
    exclude_seen: bool,
    model: str | None,
) -> dict[str, object]:
    """The API's answer for a known user (``user_id``) or an ad-hoc history (``items``)."""
    models = state.current()  # one model set for the whole request, even during a reload
    if user_id is not None:
        scores, seen = user_scores(state, models, model, user_id)
    else:
        scores, seen = items_scores(state, models, model, items or [])
    name = model or models.default
    return {
        "user_id": user_id,
        "model": name,
        "items": top_items(state, models.item_ids[name], scores, seen, k, exclude_seen),
    }


__all__ = ["fold_in_names", "recommendations", "user_scores"]
