"""UniSRec pretraining: sequence representations learned on one data set, for another.

Hou et al., "Towards Universal Sequence Representation Learning for Recommender
Systems", KDD 2022. The network is the ``unisrec`` recommender's
(:mod:`tastemaker.models.unisrec`: text → MoE adaptor → causal Transformer, cosine
scores). Pretraining minimises, per batch of training windows,

    L = L_seq-item + seq_seq_weight * L_seq-seq                     (paper, eq. 9)

* sequence-item: InfoNCE of each next item against the other distinct next items of
  the batch (eq. 7), temperature 0.07;
* sequence-sequence: InfoNCE of each sequence against an item-dropout view of itself,
  the other sequences' views being the negatives (eq. 8).

The result is a :class:`~tastemaker.models.unisrec.UniSRecCheckpoint`; the ``unisrec``
recommender fine-tunes it on another data set (``pretrained=<folder>``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, field_validator

from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.models.mm_sasrec import ContentSequenceNetwork
from tastemaker.models.sequential import trim_padding
from tastemaker.models.unisrec import UniSRec, UniSRecCheckpoint, UniSRecConfig


class UniSRecPretrainConfig(UniSRecConfig):
    """Pretraining adds the sequence-sequence loss: its weight (the paper's lambda, 1e-3)
    and the share of items dropped from a sequence to make its second view."""

    item_drop: float = Field(0.2, ge=0.0, lt=1.0)
    seq_seq_weight: NonNegativeFloat = 1e-3

    @field_validator("use_id")
    @classmethod
    def _no_ids(cls, use_id: bool) -> bool:
        if use_id:
            raise ValueError("item IDs do not transfer to another data set; pretrain with False")
        return use_id


def seq_item_contrastive(
    states: torch.Tensor,
    targets: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor],
    temperature: float,
) -> torch.Tensor:
    """InfoNCE of unit ``states`` (N, d) against their next items ``targets`` (N,), the
    batch's other distinct targets being the negatives; ``embed`` maps item indices to
    vectors (normalised here)."""
    candidates, labels = torch.unique(targets, return_inverse=True)
    vectors = F.normalize(embed(candidates), dim=-1)
    return F.cross_entropy(states @ vectors.T / temperature, labels)


def seq_seq_contrastive(
    first: torch.Tensor, second: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of row i of ``first`` against row i of ``second`` (B, d) among all rows
    of ``second``; both are normalised here."""
    logits = F.normalize(first, dim=-1) @ F.normalize(second, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(first)))


def item_dropout(
    sequences: torch.Tensor, lengths: torch.Tensor, p: float, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``sequences`` with each real item dropped with probability ``p``
    (torch's global RNG), the rest moved left in order; a row keeps at least its last
    item. Returns (sequences, lengths)."""
    width = sequences.shape[1]
    real = torch.arange(width) < lengths[:, None]
    keep = real & (torch.rand(sequences.shape) >= p)
    emptied = torch.nonzero(~keep.any(dim=1) & (lengths > 0)).flatten()
    keep[emptied, lengths[emptied] - 1] = True
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept first, in order
    moved = torch.gather(sequences, 1, order)
    kept = keep.sum(dim=1)
    return torch.where(torch.arange(width) < kept[:, None], moved, pad), kept


class _UniSRecPretrainer(UniSRec):
    """UniSRec trained with the two contrastive losses (never registered: pretraining
    yields a :class:`UniSRecCheckpoint`, not a recommender)."""

    name = "unisrec_pretrain"
    config_class: ClassVar[type[UniSRecPretrainConfig]] = UniSRecPretrainConfig
    config: UniSRecPretrainConfig

    def batch_loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        if not isinstance(self.network, ContentSequenceNetwork):
            raise self.not_fitted_error()
        pad, config = self.n_items, self.config
        lengths = (targets != pad).sum(dim=1)
        inputs, targets = trim_padding(inputs, lengths), trim_padding(targets, lengths)
        states = self.network(inputs)
        mask = targets != pad
        loss = seq_item_contrastive(
            states[mask], targets[mask], self.network.items, config.temperature
        )
        if config.seq_seq_weight > 0:
            rows = torch.arange(len(inputs))
            view, view_lengths = item_dropout(inputs, lengths, config.item_drop, pad)
            loss = loss + config.seq_seq_weight * seq_seq_contrastive(
                states[rows, lengths - 1],
                self.network(view)[rows, view_lengths - 1],
                config.temperature,
            )
        return loss, int(mask.sum())


def pretrain_unisrec(
    data: Split | Interactions,
    features: ItemEmbeddings | Mapping[str, ItemEmbeddings],
    config: UniSRecPretrainConfig | None = None,
    **params: Any,
) -> UniSRecCheckpoint:
    """Pretrain UniSRec on ``data`` and return the checkpoint.

    ``data``: a Split (pretrain on train, keep the epoch with the best validation
    NDCG@10, stop early) or Interactions (pretrain on all of them for ``epochs``).
    ``features``: the items' text embeddings (or one entry per configured modality).
    """
    if isinstance(features, ItemEmbeddings):
        features = {features.modality: features}
    if isinstance(data, Split):
        train, valid = data.train, (data.valid if len(data.valid) else None)
    else:
        train, valid = data, None
    model = _UniSRecPretrainer(config, **params).fit(train, valid, features=features)
    if model.network is None:
        raise model.not_fitted_error()
    settings = model.config.model_dump(mode="json")
    network_fields = set(UniSRecConfig.model_fields)
    modalities = model.config.modalities
    return UniSRecCheckpoint(
        UniSRecConfig.model_validate({k: v for k, v in settings.items() if k in network_fields}),
        {m: features[m].encoder_id for m in modalities},
        {m: features[m].dim for m in modalities},
        {k: v.detach().clone() for k, v in model.network.state_dict().items()},
        {k: v for k, v in settings.items() if k not in network_fields},
        model.training_log or [],
        model.best_epoch,
    )
