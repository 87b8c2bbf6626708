"""A trained UniMP moved onto another catalog: the new-domain generalisation of the paper.

UniMP reads items as text (and pictures), so a model trained on one data set can
rank another's items zero-shot (Wei et al. 2024, §4.4 "generalization to new
domains"). :func:`transfer` rebuilds the model on the new data's items and keeps
every trained weight except the per-item ID embeddings, which have no meaning on a
new catalog and start at zero: the retrieval head then scores new items from their
titles (and posters, when the new domain has them) alone. A text-only domain gets
an empty visual bank of the trained width, so the weights still fit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from tastemaker.unimp.visual import VisualBank

if TYPE_CHECKING:
    from tastemaker.unimp.model import UniMP
    from tastemaker.unimp.pipeline import UniMPData

ITEM_TABLE = "item_ids.weight"  # per catalog: never transferred


def transfer(model: UniMP, data: UniMPData) -> tuple[UniMP, UniMPData]:
    """``model``'s trained weights on ``data``'s items, and ``data`` with a fitting bank."""
    from tastemaker.unimp.model import build_model

    if not len(data.bank.features):
        data = replace(
            data,
            bank=VisualBank.empty(data.split.items, regions=model.bank.regions, dim=model.bank.dim),
        )
    moved = build_model(model.config, data.bank, data.titles, device=str(model.device),
                        dtype=str(model.item_ids.weight.dtype).removeprefix("torch."))  # fmt: skip
    trained = {k: v for k, v in model.trainable().items() if k != ITEM_TABLE}
    target = moved.trainable()
    with torch.no_grad():
        for name, value in trained.items():
            target[name].copy_(value)
        target[ITEM_TABLE].zero_()
    return moved.eval(), data
