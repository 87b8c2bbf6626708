"""VBPR: BPR-MF plus a content term, so items are scored from their features too.

VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016, eq. 2) scores x̂_ui = β_i + <γ_u, γ_i> + <θ_u, E f_i> + β'·f_i
(α and β_u are dropped: they do not change a user's ranking) and trains it with the
BPR loss. Here f_i is each used modality (text, image), and E, β' are per modality.
It is a :class:`~tastemaker.models.multimodal.ContentRecommender` (warm-only
sampling, feature scaling: see there), so a cold item scores from content alone.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from tastemaker.models.fold_in import SolvesUserVector, UserSystem
from tastemaker.models.multimodal import (
    ContentProjection,
    ContentRecommender,
    MultimodalConfig,
    xavier,
)
from tastemaker.models.registry import register


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
        if model.seen is None:
            raise model.not_fitted_error()
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
class VBPR(SolvesUserVector, ContentRecommender):
    """BPR-MF plus a content term, so items with no interactions are scored from content;
    a new user's (γ_u, θ_u) folds in by ridge with the item biases fixed (:mod:`.fold_in`)."""

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
        if self.net is None:
            raise self.not_fitted_error()
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
        if self.net is None:
            raise self.not_fitted_error()
        net, warm = self.net, self.warm.float()
        content = net.item_content(torch.arange(len(warm)))
        ones = torch.ones(len(net.user_factors), 1)
        users = torch.cat([net.user_factors, net.user_content, ones], dim=1)
        bias = (content[:, -1] + net.item_bias * warm)[:, None]
        items = torch.cat([net.item_factors * warm[:, None], content[:, :-1], bias], dim=1)
        return users, items

    @torch.no_grad()
    def user_system(self) -> UserSystem:
        if self._represented is None:
            self._represented = self._represent()
        items = self._represented[1]
        return UserSystem(items[:, :-1], offset=items[:, -1])
