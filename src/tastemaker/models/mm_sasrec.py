"""Multimodal SASRec: SASRec over item vectors computed from content, so unseen items score.

An item's vector is made from its frozen content features: each modality is projected
to ``hidden_size`` (linear, MLP, or UniSRec's mixture-of-experts adaptor), the
projections of the modalities an item *has* are fused (mean, or concatenation + linear
rescaled by ``n_modalities / n_present``), and, with ``use_id``, a learned ID embedding
is added for items seen in training. The same vectors feed the input sequence and form
the output item matrix, so an item with no training interaction (a cold item) is
scored from its content alone. During training each item's ID is dropped with
probability ``id_dropout`` (as in DropoutNet, Volkovs et al., NeurIPS 2017), so the
model also learns to rank items by content only.

A missing modality contributes nothing (its projection is masked out before fusion);
an item with no content and no ID gets the zero vector, like padding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from tastemaker.models.multimodal import MultimodalConfig, MultimodalMixin
from tastemaker.models.registry import register
from tastemaker.models.sasrec import SASRecConfig
from tastemaker.models.sequential import SequenceNetwork, SequentialRecommender


class MMSASRecConfig(SASRecConfig, MultimodalConfig):
    """SASRec's settings, the modalities used, and how items are built from them.

    ``content_dropout`` drops entries of the frozen features before projection (UniSRec's
    adaptor dropout); ``n_experts`` is used by ``projection="moe"`` only.
    """

    projection: Literal["linear", "mlp", "moe"] = "linear"
    n_experts: PositiveInt = 8
    fusion: Literal["mean", "concat"] = "mean"
    content_dropout: float = Field(0.2, ge=0.0, lt=1.0)
    use_id: bool = True
    id_dropout: float = Field(0.3, ge=0.0, le=1.0)


def normal_init(module: nn.Module, std: float) -> None:
    """RecBole's initialisation: weights N(0, std), biases zero (LayerNorm weights kept)."""
    for name, param in module.named_parameters():
        if param.dim() > 1:
            nn.init.normal_(param, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(param)


class MoEAdaptor(nn.Module):
    """UniSRec's MoE-enhanced adaptor (Hou et al., "Towards Universal Sequence
    Representation Learning for Recommender Systems", KDD 2022, eqs. 2-4):

        expert k:  x_k = (x - b_k) W_k               (parametric whitening)
        gate:      g = softmax(x W_g + d),  d = N(0, 1) * softplus(x W_n)   (noise: training only)
        output:    sum_k g_k x_k

    Gate weights start at zero (uniform gates), as in the paper's code release.
    """

    def __init__(self, in_dim: int, out_dim: int, n_experts: int, std: float = 0.02) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_experts, in_dim))
        self.weight = nn.Parameter(torch.randn(n_experts, in_dim, out_dim) * std)
        self.gate = nn.Parameter(torch.zeros(in_dim, n_experts))
        self.noise = nn.Parameter(torch.zeros(in_dim, n_experts))

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax gate weights per row, (..., n_experts)."""
        logits = x @ self.gate
        if self.training:
            logits = logits + torch.randn_like(logits) * F.softplus(x @ self.noise)
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x - b_k) W_k = x W_k - b_k W_k: no (rows, experts, in_dim) intermediate
        experts = torch.einsum("...d,kdh->...kh", x, self.weight)
        experts = experts - torch.einsum("kd,kdh->kh", self.bias, self.weight)
        return (self.gates(x).unsqueeze(-1) * experts).sum(dim=-2)


def _projection(in_dim: int, config: MMSASRecConfig) -> nn.Module:
    hidden = config.hidden_size
    if config.projection == "moe":
        return MoEAdaptor(in_dim, hidden, config.n_experts, config.initializer_range)
    if config.projection == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    return nn.Linear(in_dim, hidden)


class ContentItems(nn.Module):
    """Item index → ``hidden_size`` vector from frozen content (and an optional ID).

    The features are non-persistent buffers: the model saves them once as fixed state,
    not again inside every checkpoint of the network.
    """

    def __init__(
        self,
        content: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        has_id: torch.Tensor | None,
        config: MMSASRecConfig,
    ) -> None:
        super().__init__()
        self.modalities = list(content)
        self.n_items = len(masks[self.modalities[0]])
        for modality in self.modalities:
            self.register_buffer(f"content_{modality}", content[modality], persistent=False)
            self.register_buffer(f"mask_{modality}", masks[modality], persistent=False)
        self.dropout = nn.Dropout(config.content_dropout)
        self.projections = nn.ModuleDict(
            {m: _projection(content[m].shape[1], config) for m in self.modalities}
        )
        self.fuse = None
        if config.fusion == "concat" and len(self.modalities) > 1:
            self.fuse = nn.Linear(len(self.modalities) * config.hidden_size, config.hidden_size)
        self.id_embedding = None
        if has_id is not None:
            self.id_embedding = nn.Embedding(self.n_items, config.hidden_size)
            self.register_buffer("has_id", has_id, persistent=False)
        self.id_dropout = config.id_dropout
        for module in (self.fuse, self.id_embedding, *self.projections.values()):
            if module is not None and not isinstance(module, MoEAdaptor):
                normal_init(module, config.initializer_range)

    def forward(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of ``items`` (any shape; index ``n_items`` is padding → zeros), or of
        every item in index order when ``items`` is None."""
        if items is None:  # a slice, not an index: no copy of the feature matrices
            index, real = slice(None), torch.ones(self.n_items, dtype=torch.bool)
            ids = torch.arange(self.n_items)
        else:
            real = items < self.n_items
            index = ids = torch.where(real, items, 0)
        parts, count = [], torch.zeros(real.shape)
        for modality in self.modalities:
            have = getattr(self, f"mask_{modality}")[index] & real
            features = self.dropout(getattr(self, f"content_{modality}")[index])
            parts.append(self.projections[modality](features) * have.unsqueeze(-1))
            count = count + have
        present = count.clamp(min=1).unsqueeze(-1)
        if self.fuse is None:
            vectors = torch.stack(parts).sum(dim=0) / present
        else:  # rescaled as if every modality were there; nothing at all stays zero
            fused = self.fuse(torch.cat(parts, dim=-1) * (len(parts) / present))
            vectors = fused * (count > 0).unsqueeze(-1)
        if self.id_embedding is not None:
            keep = self.has_id[index] & real
            if self.training and self.id_dropout > 0:
                keep = keep & (torch.rand(keep.shape) >= self.id_dropout)
            vectors = vectors + self.id_embedding(ids) * keep.unsqueeze(-1)
        return vectors


class CausalTrunk(nn.Module):
    """SASRec's body over already-embedded items (Kang & McAuley, ICDM 2018): + learned
    position embedding → LayerNorm → dropout → causal post-LN Transformer encoder (GELU)."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.position_embedding = nn.Embedding(config.max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            hidden,
            config.n_heads,
            config.inner_size,
            config.dropout,
            activation="gelu",
            layer_norm_eps=1e-12,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        normal_init(self, config.initializer_range)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        length = embedded.shape[1]
        states = embedded + self.position_embedding.weight[:length]
        causal = nn.Transformer.generate_square_subsequent_mask(length)
        return self.encoder(self.dropout(self.norm(states)), mask=causal, is_causal=True)


class ContentSequenceNetwork(SequenceNetwork):
    """:class:`ContentItems` feeding a :class:`CausalTrunk`; with ``normalize`` the states
    are unit vectors (UniSRec scores by cosine)."""

    def __init__(self, items: ContentItems, config: SASRecConfig, normalize: bool = False) -> None:
        super().__init__()
        self.items = items
        self.trunk = CausalTrunk(config)
        self.normalize = normalize

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        # Each distinct item of the batch is embedded once.
        unique, inverse = torch.unique(sequences, return_inverse=True)
        states = self.trunk(self.items(unique)[inverse])
        return F.normalize(states, dim=-1) if self.normalize else states


@register
class MMSASRec(MultimodalMixin, SequentialRecommender):
    """SASRec with items embedded from content (see the module docstring)."""

    name = "mm_sasrec"
    config_class: ClassVar[type[MMSASRecConfig]] = MMSASRecConfig
    config: MMSASRecConfig
    normalize_states: ClassVar[bool] = False

    def _build_network(self) -> ContentSequenceNetwork:
        if self.seen is None:
            raise self.not_fitted_error()
        has_id = None
        if self.config.use_id:  # an ID only for items with a training interaction
            has_id = torch.from_numpy(self.seen.getnnz(axis=0) > 0)
        items = ContentItems(self.content, self.content_mask, has_id, self.config)
        return ContentSequenceNetwork(items, self.config, normalize=self.normalize_states)

    def _item_weights(self) -> torch.Tensor:
        if not isinstance(self.network, ContentSequenceNetwork):
            raise self.not_fitted_error()
        return self.network.items()
