"""FREEDOM: a frozen item-item content graph and a denoised user-item graph.

Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
Multimodal Recommendation", ACM MM 2023:

- *Freezing.* Per modality, each item is linked to its ``knn_k`` most cosine-similar
  items by content; the graphs are row-normalised and mixed (image weight
  ``image_weight``, text the rest) once, before training
  (:func:`~tastemaker.models.item_graph.mixed_knn_graph`, built in chunks: never a dense
  n×n matrix). Item ID embeddings are smoothed over it ``mm_layers`` times: h = S^L e.
- *Denoising.* Each epoch keeps a share 1 − ``dropout`` of the user-item edges, drawn
  without replacement with probability ∝ 1/√(d_u d_i) (degree-sensitive pruning), and
  LightGCN propagates over that graph; scoring uses the full graph.
- A score is <u, i_LightGCN + h_i>; the loss is BPR plus ``reg_weight`` × a BPR loss of
  the users against each modality's projected features.

Missing modalities: an item lacking one is not in that modality's graph (the other
modality's weight becomes 1, see ``mixed_knn_graph``), and triples whose positive or
negative lacks it are left out of its auxiliary loss. Cold items (no training
interaction) have their ID embedding zeroed and only warm items are graph neighbours,
so a cold item is scored with the graph-weighted mean of its content neighbours' final
embeddings (LightGCN output + smoothing): it is ranked like the warm items it resembles.

Memory of the item graph for n = 100k items (k = 10, 384-dim text, ``knn_chunk`` =
1024 rows): n·k·(4 + 8) B = 12 MB kept, plus 1024·n·4 B = 410 MB for one chunk of
similarities and n·d·4 B = 154 MB of normalised features while building. Measured on
synthetic 100k × 384 features: 147 s on one CPU thread, 585 MB above the features
(1.01 GB peak RSS); ``knn_chunk=256``: 278 MB, 201 s
(``benchmarks/results/item_graph_memory.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.models.item_graph import DEFAULT_CHUNK, mixed_knn_graph
from tastemaker.models.lightgcn import csr_tensor, normalized_adjacency, propagate
from tastemaker.models.multimodal import (
    ContentProjection,
    ContentRecommender,
    MultimodalConfig,
    xavier,
)
from tastemaker.models.registry import register

GRAPH_KEYS = ("item_graph.indptr", "item_graph.indices", "item_graph.values")


class FREEDOMConfig(MultimodalConfig):
    """The authors' MMRec settings: 64 dims, k = 10, one item-graph layer, two user-item
    layers, image weight 0.1, and from their search grids dropout 0.8 (of {0.8, 0.9})
    and reg_weight 1e-4 (of {0, 1e-5, 1e-4, 1e-3}); but lr 5e-3, not 1e-3: on
    ml-latest-small (20% cold items, text + posters) 1e-3 was still improving after 200
    epochs (7 min), while 5e-3 peaked at epoch 55 with test warm / cold Recall@20 of
    0.269 / 0.193 (1e-2: 0.258 / 0.183)."""

    factors: PositiveInt = 64
    knn_k: PositiveInt = 10
    mm_layers: NonNegativeInt = 1
    n_layers: NonNegativeInt = 2
    image_weight: float = Field(0.1, gt=0, lt=1, description="image share of the item graph")
    dropout: float = Field(0.8, ge=0, lt=1, description="share of user-item edges pruned")
    reg_weight: NonNegativeFloat = 1e-4
    knn_chunk: PositiveInt = DEFAULT_CHUNK
    learning_rate: PositiveFloat = 5e-3
    epochs: PositiveInt = 200
    patience: PositiveInt = 20


def prune_edges(seen: sp.csr_matrix, drop: float, generator: torch.Generator) -> sp.csr_matrix:
    """``seen`` keeping int(nnz·(1 − drop)) edges, sampled ∝ 1/√(d_u d_i) without replacement.

    Efraimidis & Spirakis (2006): the edges with the largest log(U)/w, U uniform, are a
    weighted sample without replacement, drawn in one vectorised pass.
    """
    coo = seen.tocoo()
    weight = 1 / np.sqrt(seen.getnnz(axis=1)[coo.row] * seen.getnnz(axis=0)[coo.col])
    keep = int(coo.nnz * (1 - drop))
    keys = torch.rand(coo.nnz, generator=generator, dtype=torch.float64).log()
    chosen = torch.topk(keys / torch.from_numpy(weight), keep).indices.numpy()
    values = np.ones(keep, dtype=np.float32)
    return sp.csr_matrix((values, (coo.row[chosen], coo.col[chosen])), shape=seen.shape)


class _FREEDOMNet(torch.nn.Module):
    def __init__(self, model: FREEDOM, generator: torch.Generator) -> None:
        super().__init__()
        if model.seen is None:
            raise model.not_fitted_error()
        n_users, n_items = model.seen.shape
        dim = model.config.factors
        self.user_embedding = xavier(generator, n_users, dim)
        self.item_embedding = xavier(generator, n_items, dim)
        self.project = ContentProjection(model.content, model.content_mask, dim, generator)


@register
class FREEDOM(ContentRecommender):
    """LightGCN on a pruned user-item graph plus ID embeddings smoothed over a content kNN graph."""

    name = "freedom"
    config_class = FREEDOMConfig
    config: FREEDOMConfig
    state_keys = ("user_embedding", "item_embedding")
    net: _FREEDOMNet | None

    def _unfit(self) -> None:
        super()._unfit()
        self.item_graph: sp.csr_matrix | None = None
        self._item_graph: torch.Tensor | None = None
        self._adjacency: torch.Tensor | None = None
        self._train_adjacency: torch.Tensor | None = None

    def _build(self, generator: torch.Generator) -> torch.nn.Module:
        return _FREEDOMNet(self, generator)

    def _prepare(self, train: Interactions) -> None:
        super()._prepare(train)
        cfg = self.config
        weights = {"text": 1 - cfg.image_weight, "image": cfg.image_weight}
        self.item_graph = mixed_knn_graph(
            self.content,
            self.content_mask,
            weights,
            cfg.knn_k,
            keys=self.warm,
            chunk_size=cfg.knn_chunk,
            progress=True,
        )
        self._item_graph, self._adjacency = None, None

    def _start_epoch(self) -> None:
        if self.seen is None:
            raise self.not_fitted_error()
        if self.config.dropout == 0:
            self._train_adjacency = self._full_adjacency()
            return
        pruned = prune_edges(self.seen, self.config.dropout, self.generator)
        self._train_adjacency = normalized_adjacency(pruned)

    def _full_adjacency(self) -> torch.Tensor:
        if self.seen is None:
            raise self.not_fitted_error()
        if self._adjacency is None:
            self._adjacency = normalized_adjacency(self.seen)
        return self._adjacency

    def _forward(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """User embeddings and item embeddings (LightGCN output + item-graph smoothing)."""
        if self.net is None or self.item_graph is None:
            raise self.not_fitted_error()
        if self._item_graph is None:
            self._item_graph = csr_tensor(self.item_graph)
        items = self.net.item_embedding * self.warm.float()[:, None]
        smoothed = items
        for _ in range(self.config.mm_layers):
            smoothed = self._item_graph @ smoothed
        users, items = propagate(adjacency, self.net.user_embedding, items, self.config.n_layers)
        return users, items + smoothed

    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        if self.net is None or self._train_adjacency is None:
            raise self.not_fitted_error()
        all_users, all_items = self._forward(self._train_adjacency)
        u = all_users[users]
        logsigmoid = torch.nn.functional.logsigmoid
        loss = -logsigmoid((u * (all_items[positives] - all_items[negatives])).sum(1)).mean()
        if self.config.reg_weight:
            for modality, mask in self.content_mask.items():
                both = mask[positives] & mask[negatives]
                if not both.any():
                    continue
                rows = torch.cat([positives[both], negatives[both]])
                pos, neg = self.net.project(modality, rows).split(int(both.sum()))
                aux = -logsigmoid((u[both] * (pos - neg)).sum(1)).mean()
                loss = loss + self.config.reg_weight * aux
        return loss

    def _represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self._forward(self._full_adjacency())
        if self._item_graph is None:
            raise self.not_fitted_error()
        # A cold item takes the (graph-weighted) mean final embedding of its warm content
        # neighbours: the vectors users were trained to score, not the bare ID embeddings.
        cold = ~self.warm
        items[cold] = (self._item_graph @ items)[cold]
        return users, items

    def _fixed_state(self) -> dict[str, torch.Tensor]:
        if self.item_graph is None:
            raise self.not_fitted_error()
        graph = self.item_graph
        arrays = (graph.indptr.astype(np.int64), graph.indices.astype(np.int64), graph.data)
        return {
            **super()._fixed_state(),
            **{key: torch.from_numpy(a) for key, a in zip(GRAPH_KEYS, arrays, strict=True)},
        }

    def _load_fixed_state(self, tensors: dict[str, Any]) -> None:
        super()._load_fixed_state(tensors)
        if any(key not in tensors for key in GRAPH_KEYS):
            raise DataError(
                "the saved FREEDOM model lacks its item-item graph",
                "re-save the model with this tastemaker version, or re-train it",
            )
        indptr, indices, values = (tensors.pop(key).numpy() for key in GRAPH_KEYS)
        n = len(indptr) - 1
        self.item_graph = sp.csr_matrix((values, indices, indptr), shape=(n, n))
