"""VBPR: BPR-MF plus a content term, so items are scored from their features too.

VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit
Feedback", AAAI 2016, eq. 2) scores x̂_ui = β_i + <γ_u, γ_i> + <θ_u, E f_i> + β'·f_i
(α and β_u are dropped: they do not change a user's ranking) and trains it with the
BPR loss. Here f_i is each used modality (text, image), and E, β' are per modality.
It is a :class:`~tastemaker.models.multimodal.ContentRecommender` (warm-only
sampling, feature scaling: see there), so a cold item scores from content alone.

A step costs O(batch), as BPR's (:mod:`.bpr`): with u = [γ_u, θ_u, 1] and
v_i = [γ_i, c_i, β_i + β'·f_i], the score is <u, v_i>, so BPR's hand-written
gradients (:func:`.bpr_gradients`) give those of the batch's rows of the user and
item tables, which :class:`.RowAdagrad` moves alone; only the content projection
E, β' (a few thousand weights, shared by all items) goes through autograd.
"""

from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.models.bpr import bpr_gradients, triple_epoch
from tastemaker.models.fold_in import SolvesUserVector, UserSystem
from tastemaker.models.multimodal import (
    ContentProjection,
    ContentRecommender,
    MultimodalConfig,
    xavier,
)
from tastemaker.models.registry import register
from tastemaker.models.row_adagrad import RowAdagrad


class VBPRConfig(MultimodalConfig):
    """64 ID + 64 content factors, as MMRec's VBPR (whose user vector is their concatenation).

    ``reg`` is the weight of the squared L2 norm of the batch's vectors per triple (as
    BPR here). Trained by row-wise Adagrad, whose ``learning_rate`` is not Adam's: on
    ml-latest-small with 20% cold items and text features (split seed 1, not the
    benchmark's 42; best validation NDCG@10 within 80 epochs), lr 0.03 gave 0.137
    (epoch 29), 0.1 gave 0.131, 0.01 gave 0.128, and the dense Adam step it replaced
    (lr 1e-3, which had given test warm / cold Recall@20 0.281 / 0.261 at seed 42)
    0.137 (epoch 66).
    """

    factors: PositiveInt = 64
    content_factors: PositiveInt = 64
    reg: NonNegativeFloat = 1e-3
    learning_rate: PositiveFloat = 0.03
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


def vbpr_gradients(
    net: _VBPRNet, users: torch.Tensor, items: torch.Tensor, reg: float
) -> tuple[float, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """A batch's summed −log σ(x̂_ui − x̂_uj), the gradients of the objective (with
    reg·(‖γ_u‖² + ‖θ_u‖² + ‖γ_i‖² + β_i² + ‖c_i‖² per item, for i and j)) on the
    batch's table rows, keyed by table, and (content, its gradient): ``content`` are
    the items' projected features with their autograd graph, for ``backward``.

    ``items`` holds the positives, then the negatives.
    """
    n, f = len(users), net.user_factors.shape[1]
    gamma_u = net.user_factors.detach().index_select(0, users)
    theta_u = net.user_content.detach().index_select(0, users)
    gamma_i = net.item_factors.detach().index_select(0, items)
    beta_i = net.item_bias.detach().index_select(0, items)
    content = net.item_content(items)
    c = content.detach()
    user = torch.cat([gamma_u, theta_u, torch.ones(n, 1)], dim=1)
    item = torch.cat([gamma_i, c[:, :-1], (beta_i + c[:, -1])[:, None]], dim=1)
    loss, grad_user, grad_item = bpr_gradients(user, item, 0.0)  # L2 added per part below
    grads = {
        "user_factors": grad_user[:, :f].add(gamma_u, alpha=2 * reg),
        "user_content": grad_user[:, f:-1].add(theta_u, alpha=2 * reg),
        "item_factors": grad_item[:, :f].add(gamma_i, alpha=2 * reg),
        "item_bias": grad_item[:, -1].add(beta_i, alpha=2 * reg),
    }
    return loss, grads, content, grad_item[:, f:].add(c, alpha=2 * reg)


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

    def _prepare(self, train: Interactions) -> None:
        super()._prepare(train)
        self._optimizer = RowAdagrad(self._network().parameters(), self.config.learning_rate)

    def _train_epoch(self) -> float:
        self._represented = None  # the weights are about to change
        triples = self._pairs.epoch(self.generator)
        return triple_epoch(self._step, triples, self.config.batch_size)

    def _step(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> float:
        """One batch: the tables' rows by hand, the projection through autograd; the
        batch's summed −log σ (the L2 term is in the gradients only, as in BPR)."""
        net, optimizer = self._network(), self._optimizer
        if not isinstance(net, _VBPRNet) or not isinstance(optimizer, RowAdagrad):
            raise self.not_fitted_error()
        items = torch.cat([positives, negatives])
        loss, grads, content, grad_content = vbpr_gradients(net, users, items, self.config.reg)
        for name, rows in (("user_factors", users), ("user_content", users)):
            optimizer.update_rows(getattr(net, name), rows, grads[name])
        for name in ("item_factors", "item_bias"):
            optimizer.update_rows(getattr(net, name), items, grads[name])
        content.backward(grad_content)  # reaches E, β' and the missing vectors only
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    def _loss(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The objective per triple in autograd form: what :func:`vbpr_gradients`
        differentiates by hand (the reference it is tested against)."""
        net, items = self._network(), torch.cat([positives, negatives])
        if not isinstance(net, _VBPRNet):
            raise self.not_fitted_error()
        gamma_u, theta_u = net.user_factors[users], net.user_content[users]
        gamma_i, bias_i, content = (
            net.item_factors[items],
            net.item_bias[items],
            net.item_content(items),
        )
        scores = (gamma_u.repeat(2, 1) * gamma_i).sum(1) + bias_i + content[:, -1]
        scores = scores + (theta_u.repeat(2, 1) * content[:, :-1]).sum(1)
        positive, negative = scores.split(len(users))
        loss = -torch.nn.functional.logsigmoid(positive - negative).sum()
        squares = sum(x.square().sum() for x in (gamma_u, theta_u, gamma_i, bias_i, content))
        return loss + self.config.reg * squares

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
