"""BM3: self-supervised multimodal recommendation without negative samples.

Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation",
WWW 2023, as the authors' code (MMRec, ``src/models/bm3.py``) computes it. User and
item ID embeddings go through LightGCN, and each item's ID embedding is added back to
its graph output (the item residual): h_u, h_i = LightGCN(e)_i + e_i. Each modality's
features go through an affine projection (h_i^m). A shared predictor p gives the
online view; the target view is a dropout of the detached embedding (no target
network, no negatives). With C(a, b) = 1 − cos(a, b), averaged over a batch of
(user, item) pairs:

- reconstruction of the graph: C(p(h_u), h̃_i) + C(p(h_i), h̃_u),
- inter-modality alignment: Σ_m C(p(h_i^m), h̃_i),
- intra-modality masked prediction: Σ_m C(p(h_i^m), h̃_i^m),

weighted 1, ``cl_weight``, ``cl_weight``, plus the L2 term as the authors compute it:
``reg`` × (‖H_u‖ + ‖H_i‖) / n_items, the Frobenius norms (not squared) of every
user's and every item's h, divided by the number of items. A score is p(h_u)·p(h_i).

The L2 term matters: the cosine losses ignore lengths, so a penalty on the batch's
mean *squared* norms (weight 0.1) shrank the embeddings until Adam's steps dwarfed
them, and validation Recall@20 on ml-latest-small fell from 0.167 to 0.062 within 20
epochs (issue 13). With the authors' term, validation Recall@20 on ml-latest-small's
cold-start split follows MMRec's own BM3 (peak 0.108 at epoch 32 against 0.107 at 43)
and then still declines; MMRec's BM3 declines as much once its features are kept
fixed as they are here (text: 61% of its best kept at the end, ours 70%; posters: both
collapse from about epoch 50), so the decline is BM3's own
(``benchmarks/results/multimodal.md``).

Deliberate differences from the authors' code: their item features are
``nn.Embedding.from_pretrained(freeze=False)``, i.e. fine-tuned; here they stay fixed
(the paper projects given features, and a fine-tuned warm item drifts away from the
untouched features of cold items: on ml-latest-small's cold-start split, validation
cold Recall@20 at epoch 42 was 0.166 fine-tuned against 0.192 fixed, warm 0.156 against
0.150: fine-tuning did not stop the decline either). An item lacking modality m (mask
False) is left out of m's two losses. Cold items (no training interaction) have no
trained e_i. The alignment loss trains p(h_i^m) to point where h_i points, and the
reconstruction loss trains p(h_u) to point there too, so a cold item's vector is the
mean of p(h_i^m) over the modalities it has, rescaled to the mean length of warm items'
p(h_i) (cosine losses fix directions, not lengths); the authors' code scores a cold
item by its untrained ID embedding. A cold item with no modality at all scores 0.
"""

from __future__ import annotations

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.models.lightgcn import normalized_adjacency, propagate
from tastemaker.models.multimodal import (
    ContentProjection,
    ContentRecommender,
    MultimodalConfig,
    dropout,
    xavier,
)
from tastemaker.models.registry import register


class BM3Config(MultimodalConfig):
    """The authors' settings: 64 dims, cl_weight 2, and the first values of their grid
    (1 layer, target dropout 0.3, reg 0.1); lr 1e-3, batch 2048 and patience 20 as in
    their MMRec framework."""

    factors: PositiveInt = 64
    n_layers: NonNegativeInt = 1
    dropout: float = Field(0.3, ge=0, lt=1, description="target-view dropout rate")
    reg: NonNegativeFloat = 0.1
    cl_weight: NonNegativeFloat = 2.0
    learning_rate: PositiveFloat = 1e-3
    epochs: PositiveInt = 200
    patience: PositiveInt = 20


def _distance(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − cos per row, the target not differentiated."""
    return 1 - torch.nn.functional.cosine_similarity(online, target.detach(), dim=-1)


class _BM3Net(torch.nn.Module):
    def __init__(self, model: BM3, generator: torch.Generator) -> None:
        super().__init__()
        if model.seen is None:
            raise model.not_fitted_error()
        n_users, n_items = model.seen.shape
        dim = model.config.factors
        self.user_embedding = xavier(generator, n_users, dim)
        self.item_embedding = xavier(generator, n_items, dim)
        self.predictor_weight = xavier(generator, dim, dim)
        self.predictor_bias = torch.nn.Parameter(torch.zeros(dim))
        self.project = ContentProjection(model.content, model.content_mask, dim, generator)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.predictor_weight + self.predictor_bias


@register
class BM3(ContentRecommender):
    """LightGCN ID embeddings bootstrapped against each other and the items' content."""

    name = "bm3"
    config_class = BM3Config
    config: BM3Config
    state_keys = ("user_embedding", "item_embedding", "predictor_weight", "predictor_bias")
    uses_negatives = False
    net: _BM3Net | None

    def _unfit(self) -> None:
        super()._unfit()
        self._adjacency: torch.Tensor | None = None

    def _build(self, generator: torch.Generator) -> torch.nn.Module:
        return _BM3Net(self, generator)

    def _prepare(self, train: Interactions) -> None:
        super()._prepare(train)
        self._adjacency = None

    def _graph(self) -> tuple[torch.Tensor, torch.Tensor]:
        """h_u and h_i: LightGCN's output, plus each item's own ID embedding (the
        authors' item residual)."""
        if self.net is None or self.seen is None:
            raise self.not_fitted_error()
        if self._adjacency is None:
            self._adjacency = normalized_adjacency(self.seen)
        net = self.net
        users, items = propagate(
            self._adjacency, net.user_embedding, net.item_embedding, self.config.n_layers
        )
        return users, items + net.item_embedding

    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        if self.net is None:
            raise self.not_fitted_error()
        net, cfg, generator = self.net, self.config, self.generator
        all_users, all_items = self._graph()
        h_u, h_i = all_users[users], all_items[positives]
        target_u = dropout(h_u.detach(), cfg.dropout, generator)
        target_i = dropout(h_i.detach(), cfg.dropout, generator)
        loss = (
            _distance(net.predict(h_u), target_i) + _distance(net.predict(h_i), target_u)
        ).mean()
        for modality, mask in self.content_mask.items():
            present = mask[positives]
            if not present.any():
                continue
            h_m = net.project(modality, positives[present])
            target_m = dropout(h_m.detach(), cfg.dropout, generator)
            online_m = net.predict(h_m)
            per_item = _distance(online_m, target_i[present]) + _distance(online_m, target_m)
            loss = loss + cfg.cl_weight * per_item.mean()
        if cfg.reg:  # every row, norms not squared, over the item count (authors' EmbLoss)
            loss = loss + cfg.reg * (all_users.norm() + all_items.norm()) / len(all_items)
        return loss

    def _represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.net is None:
            raise self.not_fitted_error()
        net, warm = self.net, self.warm
        h_u, h_i = self._graph()
        content, count = torch.zeros_like(h_i), torch.zeros(len(h_i))
        for modality, mask in self.content_mask.items():
            rows = torch.nonzero(mask).ravel()
            content.index_add_(0, rows, net.predict(net.project(modality, rows)))
            count += mask
        direction = torch.nn.functional.normalize(content / count.clamp_min(1)[:, None], dim=1)
        items = net.predict(h_i)
        length = items[warm].norm(dim=1).mean() if warm.any() else torch.ones(())
        items = torch.where(warm[:, None], items, direction * length)
        return net.predict(h_u), items * (warm | (count > 0)).float()[:, None]
