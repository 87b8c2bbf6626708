"""GRU4Rec: a recurrent network over a user's item sequence predicts the next item.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks",
ICLR 2016, in RecBole's variant: item embedding → dropout → GRU → linear layer back
to the embedding size; the state after the last item is scored against the
(shared) item embeddings, with cross-entropy over all items.
"""

from __future__ import annotations

import torch
from pydantic import Field, PositiveInt

from tastemaker.models.registry import register
from tastemaker.models.sequential import SequenceNetwork, SequentialConfig, SequentialRecommender


class GRU4RecConfig(SequentialConfig):
    """RecBole's GRU4Rec defaults (``recbole/properties/model/GRU4Rec.yaml``:
    embedding_size 64, hidden_size 128, num_layers 1, dropout 0.3, CE loss;
    ``MAX_ITEM_LIST_LENGTH`` 50, lr 1e-3)."""

    embedding_size: PositiveInt = 64
    hidden_size: PositiveInt = 128
    num_layers: PositiveInt = 1
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


class _GRU4RecNetwork(SequenceNetwork):
    def __init__(self, n_items: int, config: GRU4RecConfig) -> None:
        super().__init__()
        size = config.embedding_size
        self.item_embedding = torch.nn.Embedding(n_items + 1, size, padding_idx=n_items)
        self.dropout = torch.nn.Dropout(config.dropout)
        self.gru = torch.nn.GRU(
            size, config.hidden_size, config.num_layers, bias=False, batch_first=True
        )
        self.dense = torch.nn.Linear(config.hidden_size, size)
        torch.nn.init.xavier_normal_(self.item_embedding.weight)  # RecBole's init
        for weight in self.gru.parameters():
            torch.nn.init.xavier_uniform_(weight)
        with torch.no_grad():
            self.item_embedding.weight[n_items].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.dropout(self.item_embedding(sequences)))
        return self.dense(states)


@register
class GRU4Rec(SequentialRecommender):
    """Recurrent sequential recommendation (see the module docstring)."""

    name = "gru4rec"
    config_class = GRU4RecConfig
    config: GRU4RecConfig

    def _build_network(self) -> SequenceNetwork:
        return _GRU4RecNetwork(self.n_items, self.config)
