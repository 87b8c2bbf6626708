"""What every model that reads item content shares: features in, kept with the model.

A multimodal model is fitted with ``features``: one :class:`ItemEmbeddings` per
modality (``"text"``, ``"image"``), e.g. from
:func:`tastemaker.experiment.item_features` or
:func:`tastemaker.encoders.store.encode_catalog`. Its config names the subset it
uses (``modalities``). The features are aligned to the model's item vocabulary,
which covers every catalog item with an interaction in any part of the split, so
items never seen in training (cold items) still have content and can be scored.

Items lacking a modality keep ``mask = False`` and a zero row: each model decides
what a missing modality means (never a silent mean vector). The aligned features
are saved with the model (as fixed, untrained tensors), so a loaded model scores
cold items without re-encoding anything.

:class:`ContentRecommender` is the base of the BPR-style content models (VBPR, BM3,
FREEDOM). Its shared choices, documented once:

- *Warm items.* Items with no training interaction (cold items, e.g. those of a
  ``cold_start`` split's valid/test parts) are never sampled, not even as negatives:
  at training time they do not exist yet, and pushing them down as negatives would
  teach the content term to recognise them. Their ID parameters (γ_i, β_i) stay
  untrained and are scored as 0, so a cold item's score comes from content alone.
- *Feature scale.* Each modality is divided by the mean norm of its present rows
  (MiniLM vectors have norm 1, EfficientNet's about 30), so one learning rate fits all.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field, field_validator

from tastemaker.data.interactions import Interactions
from tastemaker.data.vocab import Vocab
from tastemaker.encoders.base import ItemEmbeddings, Modality
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.bpr import PairSampler
from tastemaker.models.config import TrainableConfig
from tastemaker.models.training import IterativeRecommender

FEATURE_PREFIX = "content."
MASK_PREFIX = "content_mask."


class MultimodalConfig(TrainableConfig):
    """Settings every multimodal model has; combine with another config by inheriting both
    (e.g. ``class MyConfig(SASRecConfig, MultimodalConfig)``)."""

    modalities: list[Modality] = Field(
        default_factory=lambda: ["text", "image"], description="which item features to use"
    )

    @field_validator("modalities")
    @classmethod
    def _some_modalities(cls, value: list[Modality]) -> list[Modality]:
        if not value:
            raise ValueError("name at least one modality ('text', 'image')")
        if len(set(value)) != len(value):
            raise ValueError("a modality is named twice")
        return value


class MultimodalMixin:
    """Features handling for a :class:`Recommender` subclass (put it first in the bases).

    The base :meth:`Recommender.fit` hands it the features (:meth:`_use_features`).
    After :meth:`fit`, ``self.content[m]`` is the (n_items, dim_m) float32 tensor of
    modality ``m`` in item-index order and ``self.content_mask[m]`` its bool mask.
    """

    requires_features: ClassVar[bool] = True
    name: ClassVar[str]  # the Recommender's (the mixin is only ever one's base)
    config: MultimodalConfig
    content: dict[str, torch.Tensor]
    content_mask: dict[str, torch.Tensor]

    def _use_features(self, features: Mapping[str, ItemEmbeddings] | None, items: Vocab) -> None:
        """Check and align the used modalities' ``features`` to the item vocabulary."""
        name = self.name
        wanted: list[str] = list(self.config.modalities)
        if features is None:
            raise ConfigError(
                f"model '{name}' reads item content, but fit() got no features",
                "pass features={'text': ..., 'image': ...} (ItemEmbeddings, e.g. from "
                "tastemaker.experiment.item_features)",
            )
        missing = [m for m in wanted if m not in features]
        if missing:
            raise ConfigError(
                f"model '{name}' uses modalities {wanted}, but no {', '.join(missing)} "
                f"features were given (got {sorted(features)})",
                "encode the missing modality, or set the model's modalities to what you have",
            )
        content, masks = {}, {}
        for modality in wanted:
            aligned = features[modality].align(items)
            if not aligned.mask.any():
                raise DataError(
                    f"no item of this split has {modality} features (encoder {aligned.encoder_id})",
                    "check that the features were computed for this data set's catalog",
                )
            content[modality] = torch.from_numpy(aligned.vectors)
            masks[modality] = torch.from_numpy(aligned.mask)
        self.content, self.content_mask = content, masks

    def content_matrix(self) -> torch.Tensor:
        """The used modalities side by side, (n_items, sum of dims); missing rows are zeros."""
        return torch.cat([self.content[m] for m in self.config.modalities], dim=1)

    def _fixed_state(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for modality, vectors in self.content.items():
            state[FEATURE_PREFIX + modality] = vectors
            state[MASK_PREFIX + modality] = self.content_mask[modality].to(torch.uint8)
        return state

    def _load_fixed_state(self, tensors: dict[str, Any]) -> None:
        self.content, self.content_mask = {}, {}
        for modality in self.config.modalities:
            try:
                self.content[modality] = tensors.pop(FEATURE_PREFIX + modality)
                self.content_mask[modality] = tensors.pop(MASK_PREFIX + modality).bool()
            except KeyError:
                raise DataError(
                    f"the saved model lacks its {modality} item features",
                    "re-save the model with this tastemaker version, or re-train it",
                ) from None


def xavier(generator: torch.Generator, *shape: int) -> torch.nn.Parameter:
    """A Xavier-normal parameter drawn from the model's own generator (global RNG untouched)."""
    weight = torch.empty(*shape)
    torch.nn.init.xavier_normal_(weight, generator=generator)
    return torch.nn.Parameter(weight)


def dropout(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Inverted dropout with the model's generator (``F.dropout`` uses the global RNG)."""
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep / (1 - p)


class WarmPairSampler:
    """:class:`PairSampler` over the items with training interactions, in model indices."""

    def __init__(self, seen: sp.csr_matrix, model: str) -> None:
        self.items = torch.from_numpy(np.flatnonzero(seen.getnnz(axis=0)).astype(np.int64))
        warm = seen[:, self.items.numpy()].tocsr()
        warm.sort_indices()
        self._pairs = PairSampler(warm, model)

    def epoch(self, generator: torch.Generator, negatives: bool = True) -> tuple[torch.Tensor, ...]:
        """(users, positives, negatives) in a random order; negatives empty if not wanted."""
        if negatives:
            users, positives, drawn = self._pairs.epoch(generator)
            return users, self.items[positives], self.items[drawn]
        order = torch.randperm(len(self._pairs.users), generator=generator)
        empty = torch.zeros(0, dtype=torch.int64)
        return self._pairs.users[order], self.items[self._pairs.items[order]], empty


class ContentProjection(torch.nn.Module):
    """Per modality m, an affine map of its features: (f / s_m) W_m (+ b_m).

    ``s_m`` is the mean norm of the rows that have modality m. Callers pass only rows
    of items that have m (the mask is theirs to apply, and skipping the rest is the
    cheap part: most items lack a poster).
    """

    def __init__(
        self,
        content: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        dim: int,
        generator: torch.Generator,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.content = content  # fixed features: not parameters, saved by the mixin
        self.scale = {m: 1 / float(v[masks[m]].norm(dim=1).mean()) for m, v in content.items()}
        self.weight = torch.nn.ParameterDict(
            {m: xavier(generator, v.shape[1], dim) for m, v in content.items()}
        )
        self.bias = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.zeros(dim)) for m in content} if bias else {}
        )

    def forward(self, modality: str, rows: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(rows, return_inverse=True)  # batches repeat items
        out = (self.content[modality][unique] @ self.weight[modality]) * self.scale[modality]
        if modality in self.bias:
            out = out + self.bias[modality]
        return out[inverse]


class ContentRecommender(MultimodalMixin, IterativeRecommender):
    """Base of the content models: parameters in one module, warm sampling, cached scores.

    A subclass builds its module (:meth:`_build`), gives the batch loss (:meth:`_loss`)
    and the user and item matrices whose products are the scores (:meth:`_represent`).
    """

    config: MultimodalConfig
    uses_negatives: ClassVar[bool] = True

    def _unfit(self) -> None:
        super()._unfit()
        self.net: torch.nn.Module | None = None
        self._represented: tuple[torch.Tensor, torch.Tensor] | None = None
        self._warm: torch.Tensor | None = None

    @abstractmethod
    def _build(self, generator: torch.Generator) -> torch.nn.Module:
        """The module holding every trained parameter, freshly initialised."""

    @abstractmethod
    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The mean loss of one batch of (user, positive, negative) triples."""

    @abstractmethod
    def _represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, dim) and (items, dim) matrices: a score is their dot product."""

    @property
    def warm(self) -> torch.Tensor:
        """Bool mask of the items with at least one training interaction."""
        if self._warm is None:
            self._warm = torch.from_numpy(self._fitted()[2].getnnz(axis=0) > 0)
        return self._warm

    def _prepare(self, train: Interactions) -> None:
        self._warm = None  # a new training matrix
        self._pairs = WarmPairSampler(self._fitted()[2], self.name)
        self.net = self._build(self.generator)
        self._optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate)

    def _start_epoch(self) -> None:
        """Called before each epoch (FREEDOM prunes its graph here)."""
        return None  # nothing to do by default

    def _train_epoch(self) -> float:
        self._represented = None  # the weights are about to change
        self._start_epoch()
        users, positives, negatives = self._pairs.epoch(self.generator, self.uses_negatives)
        total, size = 0.0, self.config.batch_size
        for start in range(0, len(users), size):
            u, i = users[start : start + size], positives[start : start + size]
            loss = self._loss(u, i, negatives[start : start + size])
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
            total += loss.item() * len(u)
        return total / len(users)

    @torch.no_grad()
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        if self._represented is None:
            self._represented = self._represent()
        users, items = self._represented
        return users[torch.from_numpy(user_idx)] @ items.T

    def _state(self) -> dict[str, torch.Tensor]:
        return dict(self._network().state_dict())

    def _network(self) -> torch.nn.Module:
        """The trained module; a ConfigError before fit or load."""
        if self.net is None:
            self._fitted()  # says "not fitted yet"
            raise ConfigError(f"model '{self.name}' has no network", "fit or load it first")
        return self.net

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.net is None:  # a loaded model: the shapes follow the saved features
            self.net = self._build(self.generator)
        try:
            self.net.load_state_dict(tensors)
        except RuntimeError as exc:
            raise DataError(
                f"the saved {self.name} weights do not fit its config ({exc})".replace("\n", " "),
                "load the model with the tastemaker version that saved it, or re-train it",
            ) from None
        self._represented = None
