"""Cross-modal retrieval: Recall@k both ways, its chance level, and CLIP's InfoNCE loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

KS = (1, 10)
DIRECTIONS = ("i2t", "t2i")  # image -> text, text -> image


@dataclass(frozen=True)
class Retrieval:
    """Recall@k of cross-modal retrieval among ``n`` items, both directions."""

    n: int
    image_to_text: dict[int, float]
    text_to_image: dict[int, float]

    def as_dict(self) -> dict[str, float]:
        out = {f"i2t_r@{k}": v for k, v in self.image_to_text.items()}
        out.update({f"t2i_r@{k}": v for k, v in self.text_to_image.items()})
        return out


def retrieval_metrics(image_z: np.ndarray, text_z: np.ndarray, ks: Sequence[int] = KS) -> Retrieval:
    """Recall@k when row i of ``image_z`` and of ``text_z`` are the one matching pair.

    Similarity is the dot product (cosine for unit rows). Ties count against the
    match: its rank is the number of *other* candidates scoring at least as high.
    """
    if image_z.shape[0] != text_z.shape[0] or image_z.shape[0] < 1:
        raise ValueError(f"need equally many paired rows, got {image_z.shape} and {text_z.shape}")
    sims = np.asarray(image_z, np.float64) @ np.asarray(text_z, np.float64).T
    diag = np.diag(sims)
    rank_i2t = (sims >= diag[:, None]).sum(axis=1) - 1
    rank_t2i = (sims >= diag[None, :]).sum(axis=0) - 1
    return Retrieval(
        sims.shape[0],
        {k: float((rank_i2t < k).mean()) for k in ks},
        {k: float((rank_t2i < k).mean()) for k in ks},
    )


def chance_retrieval(n: int, ks: Sequence[int] = KS) -> Retrieval:
    """Recall@k of a random ranking of ``n`` candidates: min(k, n) / n."""
    recall = {k: min(k, n) / n for k in ks}
    return Retrieval(n, recall, dict(recall))


def info_nce(
    image_z: torch.Tensor, text_z: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a batch of unit rows (pair i = row i of both)."""
    import torch
    import torch.nn.functional as F

    logits = logit_scale.exp() * image_z @ text_z.T
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
