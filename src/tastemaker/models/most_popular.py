"""MostPopular: every user gets the items with the most training interactions.

The non-personalised floor any personalised model must beat.
"""

from __future__ import annotations

import numpy as np
import torch

from tastemaker.data.interactions import Interactions
from tastemaker.models.base import Recommender
from tastemaker.models.registry import register


@register
class MostPopular(Recommender):
    """Score of an item = its number of training interactions (same for every user)."""

    name = "most_popular"
    state_keys = ("popularity",)

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        counts = np.bincount(train.indices()[1], minlength=self.n_items)
        self.popularity = torch.from_numpy(counts.astype(np.float32))

    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        return self.popularity.repeat(len(user_idx), 1)

    def fold_in_scores(self, items: np.ndarray) -> torch.Tensor:
        """Popularity: the same for a new user as for every other."""
        return self.popularity.clone()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"popularity": self.popularity}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.popularity = tensors["popularity"]
