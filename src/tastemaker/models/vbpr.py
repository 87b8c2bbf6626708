"""VBPR, and what the content-reading models (VBPR, BM3, FREEDOM) share.

VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016, eq. 2) scores x̂_ui = β_i + <γ_u, γ_i> + <θ_u, E f_i> + β'·f_i
(α and β_u are dropped: they do not change a user's ranking) and trains it with the
BPR loss. Here f_i is each used modality (text, image), and E, β' are per modality.

Shared choices, documented once:

- *Warm items.* Items with no training interaction (cold items, e.g. those of a
  ``cold_start`` split's valid/test parts) are never sampled, not even as negatives:
  at training time they do not exist yet, and pushing them down as negatives would
  teach the content term to recognise them. Their ID parameters (γ_i, β_i) stay
  untrained and are scored as 0, so a cold item's score comes from content alone.
- *Feature scale.* Each modality is divided by the mean norm of its present rows
  (MiniLM vectors have norm 1, EfficientNet's about 30), so one learning rate fits all.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.models.bpr import PairSampler
from tastemaker.models.multimodal import MultimodalConfig, MultimodalMixin
from tastemaker.models.registry import register
from tastemaker.models.training import IterativeRecommender


def xavier(generator: torch.Generator, *shape: int) -> torch.nn.Parameter:
    """A Xavier-normal parameter drawn from the model's own generator (global RNG untouched)."""
    weight = torch.empty(*shape)
    torch.nn.init.xavier_normal_(weight, generator=generator)
    return torch.nn.Parameter(weight)


def dropout(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Inverted dropout with the model's generator (``F.dropout`` uses the global RNG)."""
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep / (1 - p)


class WarmPairSampler:
    """:class:`PairSampler` over the items with training interactions, in model indices."""

    def __init__(self, seen: sp.csr_matrix, model: str) -> None:
        self.items = torch.from_numpy(np.flatnonzero(seen.getnnz(axis=0)).astype(np.int64))
        warm = seen[:, self.items.numpy()].tocsr()
        warm.sort_indices()
        self._pairs = PairSampler(warm, model)

    def epoch(self, generator: torch.Generator, negatives: bool = True) -> tuple[torch.Tensor, ...]:
        """(users, positives, negatives) in a random order; negatives empty if not wanted."""
        if negatives:
            users, positives, drawn = self._pairs.epoch(generator)
            return users, self.items[positives], self.items[drawn]
        order = torch.randperm(len(self._pairs.users), generator=generator)
        empty = torch.zeros(0, dtype=torch.int64)
        return self._pairs.users[order], self.items[self._pairs.items[order]], empty


class ContentProjection(torch.nn.Module):
    """Per modality m, an affine map of its features: (f / s_m) W_m (+ b_m).

    ``s_m`` is the mean norm of the rows that have modality m. Callers pass only rows
    of items that have m (the mask is theirs to apply, and skipping the rest is the
    cheap part: most items lack a poster).
    """

    def __init__(
        self,
        content: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        dim: int,
        generator: torch.Generator,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.content = content  # fixed features: not parameters, saved by the mixin
        self.scale = {m: 1 / float(v[masks[m]].norm(dim=1).mean()) for m, v in content.items()}
        self.weight = torch.nn.ParameterDict(
            {m: xavier(generator, v.shape[1], dim) for m, v in content.items()}
        )
        self.bias = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.zeros(dim)) for m in content} if bias else {}
        )

    def forward(self, modality: str, rows: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(rows, return_inverse=True)  # batches repeat items
        out = (self.content[modality][unique] @ self.weight[modality]) * self.scale[modality]
        if modality in self.bias:
            out = out + self.bias[modality]
        return out[inverse]


class ContentRecommender(MultimodalMixin, IterativeRecommender):
    """Base of the content models: parameters in one module, warm sampling, cached scores.

    A subclass builds its module (:meth:`_build`), gives the batch loss (:meth:`_loss`)
    and the user and item matrices whose products are the scores (:meth:`_represent`).
    """

    config: MultimodalConfig
    uses_negatives: ClassVar[bool] = True

    def _unfit(self) -> None:
        super()._unfit()
        self.net: torch.nn.Module | None = None
        self._represented: tuple[torch.Tensor, torch.Tensor] | None = None
        self._warm: torch.Tensor | None = None

    @abstractmethod
    def _build(self, generator: torch.Generator) -> torch.nn.Module:
        """The module holding every trained parameter, freshly initialised."""

    @abstractmethod
    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The mean loss of one batch of (user, positive, negative) triples."""

    @abstractmethod
    def _represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, dim) and (items, dim) matrices: a score is their dot product."""

    @property
    def warm(self) -> torch.Tensor:
        """Bool mask of the items with at least one training interaction."""
        assert self.seen is not None
        if self._warm is None:
            self._warm = torch.from_numpy(self.seen.getnnz(axis=0) > 0)
        return self._warm

    def _prepare(self, train: Interactions) -> None:
        assert self.seen is not None
        self._warm = None  # a new training matrix
        self._pairs = WarmPairSampler(self.seen, self.name)
        self.net = self._build(self.generator)
        self._optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate)

    def _start_epoch(self) -> None:
        """Called before each epoch (FREEDOM prunes its graph here)."""
        return None  # nothing to do by default

    def _train_epoch(self) -> float:
        self._represented = None  # the weights are about to change
        self._start_epoch()
        users, positives, negatives = self._pairs.epoch(self.generator, self.uses_negatives)
        total, size = 0.0, self.config.batch_size
        for start in range(0, len(users), size):
            u, i = users[start : start + size], positives[start : start + size]
            loss = self._loss(u, i, negatives[start : start + size])
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
            total += loss.item() * len(u)
        return total / len(users)

    @torch.no_grad()
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        if self._represented is None:
            self._represented = self._represent()
        users, items = self._represented
        return users[torch.from_numpy(user_idx)] @ items.T

    def _state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        return dict(self.net.state_dict())

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.net is None:  # a loaded model: the shapes follow the saved features
            self.net = self._build(torch.Generator().manual_seed(self.config.seed))
        try:
            self.net.load_state_dict(tensors)
        except RuntimeError as exc:
            raise DataError(
                f"the saved {self.name} weights do not fit its config ({exc})".replace("\n", " "),
                "load the model with the tastemaker version that saved it, or re-train it",
            ) from None
        self._represented = None


class VBPRConfig(MultimodalConfig):
    """64 ID + 64 content factors, as MMRec's VBPR (whose user vector is their concatenation).

    ``reg`` is the weight of the squared L2 norm of the batch's vectors per triple (as
    BPR here). On ml-latest-small with 20% cold items (text + posters, test warm /
    cold Recall@20): lr 1e-3 with reg 1e-3 gave 0.281 / 0.261, lr 2e-3 0.256 / 0.262,
    reg 1e-2 0.251 / 0.237.
    """

    factors: PositiveInt = 64
    content_factors: PositiveInt = 64
    reg: NonNegativeFloat = 1e-3
    learning_rate: PositiveFloat = 1e-3
    epochs: PositiveInt = 200
    patience: PositiveInt = 20


class _VBPRNet(torch.nn.Module):
    def __init__(self, model: VBPR, generator: torch.Generator) -> None:
        super().__init__()
        assert model.seen is not None
        n_users, n_items = model.seen.shape
        cfg = model.config
        self.masks = model.content_mask
        self.user_factors = xavier(generator, n_users, cfg.factors)
        self.item_factors = xavier(generator, n_items, cfg.factors)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))
        self.user_content = xavier(generator, n_users, cfg.content_factors)
        # One more column than θ_u: the content bias β'·f_i of eq. 2.
        width = cfg.content_factors + 1
        self.project = ContentProjection(model.content, self.masks, width, generator, bias=False)
        # A learned vector stands for a missing modality, so e.g. "has no poster" is a
        # signal of its own, never a zero or mean feature vector.
        self.missing = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(torch.zeros(width)) for m in model.content}
        )

    def item_content(self, rows: torch.Tensor) -> torch.Tensor:
        """Σ_m E_m f_i (mask True) or the missing vector of m (mask False), with the bias last."""
        total = torch.zeros(())
        for modality, missing in self.missing.items():
            mask = self.masks[modality][rows]
            projected = self.project(modality, rows[mask])
            total = total + missing.expand(len(rows), -1).masked_scatter(mask[:, None], projected)
        return total


@register
class VBPR(ContentRecommender):
    """BPR-MF plus a content term, so items with no interactions are scored from content."""

    name = "vbpr"
    config_class = VBPRConfig
    config: VBPRConfig
    state_keys = ("user_factors", "item_factors", "item_bias", "user_content")
    net: _VBPRNet | None

    def _build(self, generator: torch.Generator) -> torch.nn.Module:
        return _VBPRNet(self, generator)

    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        assert self.net is not None
        net, items = self.net, torch.cat([positives, negatives])
        gamma_u, theta_u = net.user_factors[users], net.user_content[users]
        gamma_i, bias_i, content = (
            net.item_factors[items],
            net.item_bias[items],
            net.item_content(items),
        )
        scores = (gamma_u.repeat(2, 1) * gamma_i).sum(1) + bias_i + content[:, -1]
        scores = scores + (theta_u.repeat(2, 1) * content[:, :-1]).sum(1)
        positive, negative = scores.split(len(users))
        loss = -torch.nn.functional.logsigmoid(positive - negative).mean()
        if self.config.reg:
            squares = sum(x.square().sum() for x in (gamma_u, theta_u, gamma_i, bias_i, content))
            loss = loss + self.config.reg * squares / len(users)
        return loss

    def _represent(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.net is not None
        net, warm = self.net, self.warm.float()
        content = net.item_content(torch.arange(len(warm)))
        ones = torch.ones(len(net.user_factors), 1)
        users = torch.cat([net.user_factors, net.user_content, ones], dim=1)
        bias = (content[:, -1] + net.item_bias * warm)[:, None]
        items = torch.cat([net.item_factors * warm[:, None], content[:, :-1], bias], dim=1)
        return users, items
