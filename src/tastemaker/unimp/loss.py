"""The joint objective: λ_a-weighted next-token loss over every task's answers,
token re-weighting by difficulty, and the retrieval head's full-softmax loss.

UniMP (Wei et al. 2024, §3.3) trains all tasks as next-token prediction with
task weights λ_a and re-weights tokens so that hard ones count more; here a
token's weight is ``(1 - p)^γ`` (p: the model's probability of the true token,
detached; the focal form of Lin et al. 2017), renormalised to mean 1 within each
answer so λ_a keeps its scale. The retrieval head (the prompt's final state
against every item's vector) adds a cross-entropy over all items (or a sampled
softmax, when the batch carries ``negatives``) on the recommendation examples,
weighted by ``retrieval_weight``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional

from tastemaker.text.finetune import IGNORE
from tastemaker.unimp.model import UniMP


def token_weights(log_probs: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 - p)^γ per token, detached; all ones when γ = 0."""
    if gamma == 0:
        return torch.ones_like(log_probs)
    return (1.0 - log_probs.detach().exp()).clamp(min=0.0) ** gamma


def sampled_scores(
    model: UniMP,
    hidden: torch.Tensor,
    last: torch.Tensor,
    slot_items: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores over the batch's targets (in-batch negatives) and the uniform ``negatives``,
    and each row's column: its own target. A column holding a row's target item
    elsewhere is masked for that row, so no positive counts as a negative.

    Uniform negatives need no log-Q correction (the sampled softmax of Jean et al.,
    ACL 2015, with a constant proposal); in-batch ones are as in Yi et al., RecSys 2019.
    """
    columns = torch.cat([targets, negatives])
    scores = model.retrieval_scores(hidden, last, slot_items, items=columns).float()
    own = torch.arange(len(targets), device=scores.device)
    clash = columns.unsqueeze(0) == targets.unsqueeze(1)
    clash[own, own] = False
    return scores.masked_fill(clash, float("-inf")), own


def joint_loss(model: UniMP, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """The batch's loss and its parts (``tokens``, ``retrieval``) as floats."""
    out = model.run(
        batch["input_ids"], batch["token_slots"], batch["slot_items"], batch["attention_mask"]
    )
    labels = batch["labels"][:, 1:]
    where = labels != IGNORE
    hidden = out.hidden[:, :-1][where]
    logits = model.logits(hidden).float()
    targets = labels[where]
    log_probs = -functional.cross_entropy(logits, targets, reduction="none")
    weights = token_weights(log_probs, model.config.reweight)
    rows = where.nonzero()[:, 0]
    b = labels.shape[0]
    # per row: weighted mean of its tokens' losses, weights renormalised to mean 1
    total = torch.zeros(b, device=logits.device).index_add(0, rows, -log_probs * weights)
    norm = torch.zeros(b, device=logits.device).index_add(0, rows, weights)
    per_row = total / norm.clamp(min=1e-8)
    has = norm > 0
    task_weight = batch["weight"]
    tokens = (per_row * task_weight)[has].sum() / task_weight[has].sum().clamp(min=1e-8)
    parts = {"tokens": float(tokens.detach())}
    loss = tokens
    targets = batch["target_item"]
    ranked = targets >= 0
    if model.config.retrieval_weight and bool(ranked.any()):
        hidden, last = out.hidden[ranked], batch["last"][ranked]
        slot_items, wanted = batch["slot_items"][ranked], targets[ranked]
        negatives = batch.get("negatives")
        if negatives is None:
            scores = model.retrieval_scores(hidden, last, slot_items).float()
        else:
            scores, wanted = sampled_scores(model, hidden, last, slot_items, wanted, negatives)
        retrieval = functional.cross_entropy(scores, wanted)
        parts["retrieval"] = float(retrieval.detach())
        loss = loss + model.config.retrieval_weight * retrieval
    return loss, parts
