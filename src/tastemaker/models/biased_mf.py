"""Biased matrix factorisation: a rating model, r̂(u, i) = μ + b_u + b_i + p_u·q_i.

Koren, Bell and Volinsky, "Matrix Factorization Techniques for Recommender
Systems", IEEE Computer 2009 (eq. 4-5): squared error on the observed explicit
ratings plus L2 on the biases and factors, fitted here with mini-batch Adam and
early-stopped on validation RMSE. The score of an item is its predicted rating,
so the same model ranks (:meth:`score_indices`) and predicts ratings
(:meth:`BiasedMF.predict_ratings`), the LaMP-3 style rating task's baseline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.models.base import Recommender
from tastemaker.models.config import ModelConfig
from tastemaker.models.registry import register

logger = logging.getLogger(__name__)


class BiasedMFConfig(ModelConfig):
    """Defaults not tuned yet; measured on ml-latest-small and ml-100k (per-user time
    split, ``benchmarks/personalized_text.py``) they early-stop after ~3 epochs with
    test RMSE just below the user+item bias baseline."""

    factors: PositiveInt = 32
    reg: NonNegativeFloat = 0.05
    learning_rate: PositiveFloat = 5e-3
    epochs: PositiveInt = 60
    patience: PositiveInt = 5
    batch_size: PositiveInt = 1024


def ratings_of(part: Interactions, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user indices, item indices, ratings) of ``part``; a missing rating is a DataError."""
    ratings = part.frame["rating"].to_numpy().astype(np.float32)
    if not np.isfinite(ratings).all():
        raise DataError(
            f"the {what} interactions have missing ratings",
            "fit biased_mf on explicit ratings (e.g. MovieLens ratings.csv)",
        )
    users, items = part.indices()
    return np.array(users), np.array(items), ratings


@register
class BiasedMF(Recommender):
    """Global mean, user and item biases and a low-rank interaction, on explicit ratings."""

    name = "biased_mf"
    config_class = BiasedMFConfig
    config: BiasedMFConfig
    state_keys = ("mean", "user_bias", "item_bias", "user_factors", "item_factors")

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        users, items, ratings = ratings_of(train, "training")
        u, i, r = (torch.from_numpy(a) for a in (users, items, ratings))
        n_users, n_items = len(train.users), len(train.items)
        f = self.config.factors
        self.mean = torch.tensor(float(ratings.mean()))
        self.user_bias = torch.zeros(n_users, requires_grad=True)
        self.item_bias = torch.zeros(n_items, requires_grad=True)
        scale = 0.1 / math.sqrt(f)
        self.user_factors = (
            torch.randn(n_users, f, generator=self.generator) * scale
        ).requires_grad_()
        self.item_factors = (
            torch.randn(n_items, f, generator=self.generator) * scale
        ).requires_grad_()
        params = [self.user_bias, self.item_bias, self.user_factors, self.item_factors]
        optimizer = torch.optim.Adam(params, lr=self.config.learning_rate)
        held = ratings_of(valid, "validation") if valid is not None and len(valid) else None
        best, best_state, stale, log = math.inf, self._state(), 0, []
        for epoch in range(1, self.config.epochs + 1):
            loss = self._epoch(u, i, r, optimizer)
            rmse = self._rmse(*held) if held else None
            log.append({"epoch": epoch, "loss": loss, "valid_rmse": rmse})
            logger.info("biased_mf epoch %d: loss %.4f, valid rmse %s", epoch, loss, rmse)
            if rmse is None:
                continue
            if rmse < best:
                best, best_state, stale = rmse, self._state(), 0
            else:
                stale += 1
                if stale >= self.config.patience:
                    break
        self._load_state(best_state if held else self._state())
        self.training_log = log

    def _epoch(
        self, u: torch.Tensor, i: torch.Tensor, r: torch.Tensor, optimizer: torch.optim.Optimizer
    ) -> float:
        """One shuffled pass; L2 per rating on the rows the batch touches (Koren eq. 5)."""
        order = torch.randperm(len(r), generator=self.generator)
        total = 0.0
        for start in range(0, len(r), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            bu, bi = u[batch], i[batch]
            error = self._predict(bu, bi) - r[batch]
            penalty = (
                self.user_bias[bu].square()
                + self.item_bias[bi].square()
                + self.user_factors[bu].square().sum(1)
                + self.item_factors[bi].square().sum(1)
            )
            loss = (error.square() + self.config.reg * penalty).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += error.detach().square().sum().item()
        return math.sqrt(total / len(r))

    def _predict(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors[u] * self.item_factors[i]).sum(1)
        return self.mean + self.user_bias[u] + self.item_bias[i] + dot

    @torch.no_grad()
    def _rmse(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> float:
        pred = self._predict(torch.from_numpy(users), torch.from_numpy(items))
        return float(torch.sqrt((pred - torch.from_numpy(ratings)).square().mean()))

    def predict_ratings(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Predicted ratings of the (user, item) pairs, raw IDs, one float per pair."""
        vocab_users, vocab_items, _ = self._fitted()
        if len(users) != len(items):
            raise DataError(
                f"{len(users)} users but {len(items)} items",
                "pass one user and one item per pair",
            )
        u = torch.from_numpy(vocab_users.index(users))
        i = torch.from_numpy(vocab_items.index(items))
        with torch.no_grad():
            return self._predict(u, i).numpy().astype(np.float32)

    @torch.no_grad()
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        u = torch.from_numpy(user_idx)
        dots = self.user_factors[u] @ self.item_factors.T
        return (self.mean + self.user_bias[u, None] + self.item_bias[None, :] + dots).float()

    def _state(self) -> dict[str, torch.Tensor]:
        return {key: getattr(self, key).detach().clone() for key in self.state_keys}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for key in self.state_keys:
            setattr(self, key, tensors[key].detach().clone())
