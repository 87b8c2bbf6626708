"""SASRec: a causal Transformer over a user's item sequence predicts the next item.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Item
embedding + learned position embedding → LayerNorm → dropout → causal Transformer
encoder (post-LN blocks, GELU); the state after the last item is scored against
the (shared) item embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, ValidationInfo, field_validator

from tastemaker.models.registry import register
from tastemaker.models.sequential import SequenceNetwork, SequentialConfig, SequentialRecommender


class SASRecConfig(SequentialConfig):
    """RecBole's SASRec defaults (``recbole/properties/model/SASRec.yaml``: n_layers 2,
    n_heads 2, hidden_size 64, inner_size 256, dropout 0.5, GELU, layer_norm_eps 1e-12,
    initializer_range 0.02, CE loss; ``MAX_ITEM_LIST_LENGTH`` 50, lr 1e-3).

    ``torch.nn.TransformerEncoderLayer`` has one ``dropout`` for attention weights and
    hidden states, where RecBole has two (both 0.5 by default).
    """

    hidden_size: PositiveInt = 64
    n_layers: PositiveInt = 2
    n_heads: PositiveInt = 2
    inner_size: PositiveInt = 256
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    initializer_range: float = Field(0.02, gt=0.0)

    @field_validator("n_heads")
    @classmethod
    def _heads_divide_hidden(cls, n_heads: int, info: ValidationInfo) -> int:
        hidden = info.data.get("hidden_size")
        if hidden is not None and hidden % n_heads:
            raise ValueError(f"n_heads must divide hidden_size ({hidden})")
        return n_heads


class _SASRecNetwork(SequenceNetwork):
    def __init__(self, n_items: int, config: SASRecConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.item_embedding = torch.nn.Embedding(n_items + 1, hidden, padding_idx=n_items)
        self.position_embedding = torch.nn.Embedding(config.max_len, hidden)
        self.norm = torch.nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = torch.nn.Dropout(config.dropout)
        layer = torch.nn.TransformerEncoderLayer(
            hidden,
            config.n_heads,
            config.inner_size,
            config.dropout,
            activation="gelu",
            layer_norm_eps=1e-12,
            batch_first=True,
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer, config.n_layers, enable_nested_tensor=False
        )
        for name, param in self.named_parameters():  # RecBole's init: N(0, 0.02), zero biases
            if param.dim() > 1:
                torch.nn.init.normal_(param, std=config.initializer_range)
            elif name.endswith("bias"):
                torch.nn.init.zeros_(param)
        with torch.no_grad():
            self.item_embedding.weight[n_items].zero_()

    def _inputs(self, sequences: torch.Tensor) -> torch.Tensor:
        length = sequences.shape[1]
        states = self.item_embedding(sequences) + self.position_embedding.weight[:length]
        return self.dropout(self.norm(states))

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        causal = torch.nn.Transformer.generate_square_subsequent_mask(sequences.shape[1])
        return self.encoder(self._inputs(sequences), mask=causal, is_causal=True)

    def last_states(self, sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same states as :meth:`forward` at each row's last item, with the last layer
        computed for that position only (its keys and values still span the sequence):
        about half the work of a full forward pass. Inference only (no dropout)."""
        if self.training:
            return super().last_states(sequences, lengths)
        states = self._inputs(sequences)
        *lower, top = self.encoder.layers
        for layer in lower:
            states = _layer(layer, states, None)
        return _layer(top, states, (lengths - 1).clamp(min=0))[:, 0]


def _layer(
    layer: torch.nn.TransformerEncoderLayer, states: torch.Tensor, last: torch.Tensor | None
) -> torch.Tensor:
    """A post-LN ``TransformerEncoderLayer`` in eval mode with causal attention, written with
    ``scaled_dot_product_attention``; with ``last`` (one position per row) only those
    positions' outputs are computed, ``(B, 1, d)``."""
    attention = layer.self_attn
    batch, length, hidden = states.shape
    heads = attention.num_heads
    w, b = attention.in_proj_weight, attention.in_proj_bias
    keys, values = F.linear(states, w[hidden:], b[hidden:]).split(hidden, dim=-1)
    if last is None:
        queries, mask = F.linear(states, w[:hidden], b[:hidden]), None
    else:
        rows = torch.arange(batch)
        states = states[rows, last][:, None]
        queries = F.linear(states, w[:hidden], b[:hidden])
        # causal for the one query: keys up to and including its own position
        mask = (torch.arange(length) <= last[:, None])[:, None, None, :]

    def split_heads(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(batch, -1, heads, hidden // heads).transpose(1, 2)

    attended = F.scaled_dot_product_attention(
        split_heads(queries),
        split_heads(keys),
        split_heads(values),
        attn_mask=mask,
        is_causal=last is None,
    )
    attended = attended.transpose(1, 2).reshape(batch, -1, hidden)
    states = layer.norm1(states + attention.out_proj(attended))
    return layer.norm2(states + layer.linear2(layer.activation(layer.linear1(states))))


@register
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation (see the module docstring)."""

    name = "sasrec"
    config_class = SASRecConfig
    config: SASRecConfig

    def _build_network(self) -> SequenceNetwork:
        return _SASRecNetwork(self.n_items, self.config)
