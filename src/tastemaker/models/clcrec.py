"""CLCRec: a content encoder trained to agree with collaborative embeddings, for cold items.

Wei et al., "Contrastive Learning for Cold-Start Recommendation", ACM MM 2021.
Users and items have ID embeddings; an encoder (one MLP per modality, averaged
over the modalities an item has) maps an item's content to the same space. Two
InfoNCE losses, mixed by λ (``ui_weight``), train them together:

* U-I: a user against a training item, ``-log exp(s(u,i)/τ) / Σ_j exp(s(u,j)/τ)``
  over the positive and shared sampled negatives, where an item is represented
  by its ID embedding or, for a random share ρ (``content_rate``) of the items
  that have content, by its content embedding, so users also agree with content;
* I-I: an item's content embedding against its own ID embedding (the other
  items' ID embeddings are the negatives), which ties content to behaviour.

``s`` is the cosine similarity. At scoring time an item with training
interactions uses its ID embedding (mixed with its content embedding by
``warm_content_weight``), an item without any uses its content embedding, so cold
items are ranked from content alone; an item with neither cannot be scored
(``-inf``). Negatives are drawn among the items with training interactions: the
model, like a deployed one, knows nothing of the others until scoring.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch.nn.utils import skip_init

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.models.multimodal import MultimodalConfig, MultimodalMixin
from tastemaker.models.registry import register
from tastemaker.models.training import IterativeRecommender

USERS, ITEMS, ENCODER = "user_embedding", "item_embedding", "encoder."


class CLCRecConfig(MultimodalConfig):
    """Settings of CLCRec (λ = ``ui_weight``, ρ = ``content_rate``, τ = ``temperature``)."""

    factors: PositiveInt = 64
    hidden: PositiveInt = 256
    ui_weight: float = Field(0.5, ge=0.0, le=1.0, description="λ: U-I loss share, 1 - λ for I-I")
    content_rate: float = Field(0.5, ge=0.0, le=1.0, description="ρ: items shown by content")
    temperature: PositiveFloat = 0.2
    n_negatives: PositiveInt = 256
    reg: NonNegativeFloat = 1e-4
    warm_content_weight: float = Field(
        0.0, ge=0.0, le=1.0, description="share of content in the vector of a warm item"
    )
    learning_rate: PositiveFloat = 1e-3
    batch_size: PositiveInt = 1024


class _Network(torch.nn.Module):
    """ID embeddings and the per-modality content encoders."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dims: dict[str, int],
        cfg: CLCRecConfig,
        gen: torch.Generator,
    ) -> None:
        super().__init__()
        self.user_embedding = torch.nn.Parameter(torch.empty(n_users, cfg.factors))
        self.item_embedding = torch.nn.Parameter(torch.empty(n_items, cfg.factors))
        self.encoder = torch.nn.ModuleDict(
            {
                m: torch.nn.Sequential(  # skip_init: no draw from the global RNG
                    skip_init(torch.nn.Linear, dim, cfg.hidden),
                    torch.nn.LeakyReLU(),
                    skip_init(torch.nn.Linear, cfg.hidden, cfg.factors),
                )
                for m, dim in dims.items()
            }
        )
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                torch.nn.init.zeros_(param)
            else:
                torch.nn.init.xavier_normal_(param, generator=gen)


@register
class CLCRec(MultimodalMixin, IterativeRecommender):
    """Contrastive ID-content alignment; cold items are scored from their content."""

    name = "clcrec"
    config_class: ClassVar = CLCRecConfig
    config: CLCRecConfig
    state_keys = (USERS, ITEMS)

    def _unfit(self) -> None:
        super()._unfit()
        self._network: _Network | None = None

    # ------------------------------------------------------------------ training
    def _prepare(self, train: Interactions) -> None:
        if self.seen is None:
            raise self.not_fitted_error()
        n_users, n_items = self.seen.shape
        coo = self.seen.tocoo()
        self._pair_users = torch.from_numpy(coo.row.astype(np.int64))
        self._pair_items = torch.from_numpy(coo.col.astype(np.int64))
        self._negative_pool = torch.from_numpy(np.flatnonzero(self._has_id()))
        self._network = self._build(n_users, n_items)
        self._optimizer = torch.optim.Adam(self._network.parameters(), lr=self.config.learning_rate)

    def _build(self, n_users: int, n_items: int) -> _Network:
        dims = {m: int(self.content[m].shape[1]) for m in self.config.modalities}
        return _Network(n_users, n_items, dims, self.config, self.generator)

    def _has_id(self) -> np.ndarray:
        """Items with a training interaction (their ID embedding was trained)."""
        if self.seen is None:
            raise self.not_fitted_error()
        return np.diff(self.seen.tocsc().indptr) > 0

    def _encode(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit content vectors of ``items`` (mean over the modalities each has; zero
        without any) and the mask of items with some content."""
        if self._network is None:
            raise self.not_fitted_error()
        total = torch.zeros(len(items), self.config.factors)
        count = torch.zeros(len(items))
        for modality in self.config.modalities:
            where = self.content_mask[modality][items].nonzero().squeeze(1)
            features = F.normalize(self.content[modality][items[where]], dim=1)
            total = total.index_add(0, where, self._network.encoder[modality](features))
            count[where] += 1
        return F.normalize(total / count.clamp(min=1)[:, None], dim=1), count > 0

    def _train_epoch(self) -> float:
        cfg, gen = self.config, self.generator
        order = torch.randperm(len(self._pair_users), generator=gen)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = self._loss(self._pair_users[batch], self._pair_items[batch])
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
            total += loss.item() * len(batch)
        return total / len(order)

    def _loss(self, users: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        cfg, net, gen = self.config, self._network, self.generator
        if net is None:
            raise self.not_fitted_error()
        pool = self._negative_pool
        negatives = pool[torch.randint(len(pool), (cfg.n_negatives,), generator=gen)]
        items = torch.cat([positives, negatives])
        ids = F.normalize(net.item_embedding[items], dim=1)
        unique, inverse = torch.unique(items, return_inverse=True)  # popular items recur
        content, has_content = (part[inverse] for part in self._encode(unique))
        # U-I: each item shown by its content with probability ρ (when it has content).
        swap = (torch.rand(len(items), generator=gen) < cfg.content_rate) & has_content
        shown = torch.where(swap[:, None], content, ids)
        user = F.normalize(net.user_embedding[users], dim=1)
        clash = negatives[None, :] == positives[:, None]  # a positive is not its own negative
        n = len(users)
        loss = cfg.ui_weight * _info_nce(user, shown[:n], shown[n:], clash, cfg.temperature)
        # I-I: an item's content against its own ID embedding, among the negatives' IDs.
        keep = has_content[:n]
        if keep.any():
            ii = _info_nce(content[:n][keep], ids[:n][keep], ids[n:], clash[keep], cfg.temperature)
            loss = loss + (1 - cfg.ui_weight) * ii
        if cfg.reg:
            squares = (
                net.user_embedding[users].square().sum()
                + net.item_embedding[positives].square().sum()
            )
            loss = loss + cfg.reg * squares / len(users)
        return loss

    # ------------------------------------------------------------------- scoring
    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        """Unit vectors of all items as scored; an item with neither ID nor content is NaN."""
        if self._network is None:
            raise self.not_fitted_error()
        ids = F.normalize(self._network.item_embedding, dim=1)
        content, has_content = self._encode(torch.arange(self.n_items))
        has_id = torch.from_numpy(self._has_id())
        w = self.config.warm_content_weight
        warm = F.normalize((1 - w) * ids + w * content, dim=1) if w else ids
        vectors = torch.where(has_id[:, None], warm, content)
        vectors[~has_id & ~has_content] = float("nan")
        return vectors

    @torch.no_grad()
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        if self._network is None:
            raise self.not_fitted_error()
        users = F.normalize(self._network.user_embedding[torch.from_numpy(user_idx)], dim=1)
        return (users @ self.item_vectors().T).nan_to_num_(nan=float("-inf"))

    # --------------------------------------------------------------- persistence
    def _state(self) -> dict[str, torch.Tensor]:
        if self._network is None:
            raise self.not_fitted_error()
        return {
            USERS: self._network.user_embedding,
            ITEMS: self._network.item_embedding,
            **{ENCODER + k: v for k, v in self._network.encoder.state_dict().items()},
        }

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self._network is None:  # loading a saved model: its features are back already
            self._network = self._build(len(tensors[USERS]), len(tensors[ITEMS]))
        encoder = {k[len(ENCODER) :]: v for k, v in tensors.items() if k.startswith(ENCODER)}
        try:
            self._network.encoder.load_state_dict(encoder)
        except RuntimeError as exc:
            raise DataError(
                f"the saved {self.name} content encoder does not fit its config ({exc})",
                "re-save the model with this tastemaker version, or re-train it",
            ) from None
        with torch.no_grad():
            self._network.user_embedding.copy_(tensors[USERS])
            self._network.item_embedding.copy_(tensors[ITEMS])


def _info_nce(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    clash: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean InfoNCE of unit ``anchor`` rows against their ``positive`` row and the shared
    ``negatives`` (``clash[b, j]``: negative j is anchor b's positive, left out)."""
    pos = (anchor * positive).sum(dim=1, keepdim=True)
    neg = (anchor @ negatives.T).masked_fill(clash, float("-inf"))
    logits = torch.cat([pos, neg], dim=1) / temperature
    return -torch.log_softmax(logits, dim=1)[:, 0].mean()
