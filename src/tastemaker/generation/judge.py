"""An offline judge for generated images: an aligned space independent of the selector.

The pipeline's scorer picks the best candidate by its own z, so its scores of that
image are biased upward as a measure of it (the winner's curse). A judge is a
second scorer with other weights: a CLIP checkpoint when one is at hand, or
offline an :class:`~tastemaker.pretrain.alignment.AlignedSpace` trained here with
another seed on items the selector never trained on (:func:`judge_space`), so
neither its weights nor its training pairs are the selector's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tastemaker.config import validate
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import DataError

if TYPE_CHECKING:
    from tastemaker.pretrain.alignment import AlignedSpace, AlignmentConfig

JUDGE_SEED = 1  # the selector's default seed is 0


def without_items(features: ItemEmbeddings, excluded: set[str]) -> ItemEmbeddings:
    """``features`` with the ``excluded`` items masked out (their rows zeroed)."""
    keep = features.mask & np.array([item not in excluded for item in features.item_ids])
    vectors = np.where(keep[:, None], features.vectors, 0.0).astype(np.float32)
    return ItemEmbeddings(
        list(features.item_ids), vectors, keep, features.encoder_id, features.modality
    )


def judge_space(
    image: ItemEmbeddings,
    text: ItemEmbeddings,
    selector: AlignedSpace,
    config: AlignmentConfig | dict[str, Any] | None = None,
    *,
    progress: bool = True,
) -> AlignedSpace:
    """An aligned space on the items ``selector`` did not train on, with another seed.

    ``config`` defaults to the selector's own settings with seed :data:`JUDGE_SEED`;
    a config with the selector's seed is refused, as is a judge with no items left.
    """
    from tastemaker.pretrain.alignment import AlignmentConfig, train_alignment

    if not isinstance(config, AlignmentConfig):
        values = {**selector.config.model_dump(), "seed": JUDGE_SEED, **dict(config or {})}
        config = validate(AlignmentConfig, values, where="judge alignment")
    if config.seed == selector.config.seed:
        raise DataError(
            f"the judge would use the selector's seed {config.seed}",
            "give the judge another seed",
        )
    seen = set(selector.split.get("train", []))
    if not seen:
        raise DataError(
            "the selector's space records no training items, so a disjoint judge cannot be chosen",
            "use a space saved by `tastemaker pretrain align` (it records its split)",
        )
    return train_alignment(
        without_items(image, seen), without_items(text, seen), config, progress=progress
    )


__all__ = ["JUDGE_SEED", "judge_space", "without_items"]
