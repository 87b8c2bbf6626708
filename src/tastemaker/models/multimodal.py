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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import torch
from pydantic import Field, field_validator

from tastemaker.data.interactions import Interactions
from tastemaker.encoders.base import ItemEmbeddings, Modality
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.base import Recommender, TrainableConfig

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

    After :meth:`fit`, ``self.content[m]`` is the (n_items, dim_m) float32 tensor of
    modality ``m`` in item-index order and ``self.content_mask[m]`` its bool mask.
    """

    requires_features: ClassVar[bool] = True
    content: dict[str, torch.Tensor]
    content_mask: dict[str, torch.Tensor]

    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        *,
        features: Mapping[str, ItemEmbeddings] | None = None,
    ) -> Self:
        """Learn from ``train`` and the items' ``features`` (one entry per used modality)."""
        name = self.name  # type: ignore[attr-defined]
        wanted: list[str] = list(self.config.modalities)  # type: ignore[attr-defined]
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
            aligned = features[modality].align(train.items)
            if not aligned.mask.any():
                raise DataError(
                    f"no item of this split has {modality} features (encoder {aligned.encoder_id})",
                    "check that the features were computed for this data set's catalog",
                )
            content[modality] = torch.from_numpy(aligned.vectors)
            masks[modality] = torch.from_numpy(aligned.mask)
        self.content, self.content_mask = content, masks
        return super().fit(train, valid)  # type: ignore[misc]

    def content_matrix(self) -> torch.Tensor:
        """The used modalities side by side, (n_items, sum of dims); missing rows are zeros."""
        return torch.cat([self.content[m] for m in self.config.modalities], dim=1)  # type: ignore[attr-defined]

    def _fixed_state(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for modality, vectors in self.content.items():
            state[FEATURE_PREFIX + modality] = vectors
            state[MASK_PREFIX + modality] = self.content_mask[modality].to(torch.uint8)
        return state

    def _load_fixed_state(self, tensors: dict[str, Any]) -> None:
        self.content, self.content_mask = {}, {}
        for modality in self.config.modalities:  # type: ignore[attr-defined]
            try:
                self.content[modality] = tensors.pop(FEATURE_PREFIX + modality)
                self.content_mask[modality] = tensors.pop(MASK_PREFIX + modality).bool()
            except KeyError:
                raise DataError(
                    f"the saved model lacks its {modality} item features",
                    "re-save the model with this tastemaker version, or re-train it",
                ) from None


def requires_features(model: Recommender | type[Recommender]) -> bool:
    """Whether ``model`` must be fitted with item features."""
    return bool(getattr(model, "requires_features", False))
