"""SASRec: a causal Transformer over a user's item sequence predicts the next item.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. Item
embedding + learned position embedding → LayerNorm → dropout → causal Transformer
encoder (post-LN blocks, GELU); the state after the last item is scored against
the (shared) item embeddings.
"""

from __future__ import annotations

import torch
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

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        length = sequences.shape[1]
        states = self.item_embedding(sequences) + self.position_embedding.weight[:length]
        causal = torch.nn.Transformer.generate_square_subsequent_mask(length)
        return self.encoder(self.dropout(self.norm(states)), mask=causal, is_causal=True)


@register
class SASRec(SequentialRecommender):
    """Self-attentive sequential recommendation (see the module docstring)."""

    name = "sasrec"
    config_class = SASRecConfig
    config: SASRecConfig

    def _build_network(self) -> SequenceNetwork:
        return _SASRecNetwork(self.n_items, self.config)
