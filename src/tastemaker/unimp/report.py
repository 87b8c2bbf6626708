"""One evaluation of a trained UniMP on the leave-one-out test part.

:func:`eval_plan` fixes, with a seed, which test users are measured and each
one's 100 candidates (the test item + 99 items they never rated), so a baseline
(SASRec in the benchmark) is scored on exactly the same sets;
:func:`evaluate_all` measures generative ranking (constrained decoding over the
candidates' titles), the retrieval head (on the candidates and over all unseen
items), rating MAE/RMSE and poster selection accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tastemaker.unimp.evaluate import (
    generative_scores,
    rank_metrics,
    rating_errors,
    retrieval_scores,
    sample_candidates,
    selection_accuracy,
    target_ranks,
)
from tastemaker.unimp.examples import held_out_examples
from tastemaker.unimp.model import UniMP
from tastemaker.unimp.pipeline import UniMPData


@dataclass(frozen=True)
class EvalPlan:
    """The measured users (test item known) and their candidate item indices (target first)."""

    users: list[str]
    candidates: np.ndarray


def eval_plan(data: UniMPData, users: int | None, seed: int = 0, negatives: int = 99) -> EvalPlan:
    """A seeded sample of ``users`` test users (None: all) and their candidate sets."""
    vocab = data.split.items
    chosen = sorted(u for u in data.test if data.known.get(u))
    if users is not None and users < len(chosen):
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(chosen, size=users, replace=False).tolist())
    targets = np.array([vocab.index([data.test[u][0][0]])[0] for u in chosen])
    exclude = [set(vocab.index(sorted(data.seen[u])).tolist()) for u in chosen]
    return EvalPlan(chosen, sample_candidates(targets, exclude, len(vocab), negatives, seed))


def evaluate_all(
    model: UniMP, data: UniMPData, *, users: int | None = 100, seed: int = 0,
    generative: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Every measured task's metrics, with the number of examples behind each."""
    plan = eval_plan(data, users, seed)
    builder = data.builder(model.config)
    known = {u: data.known[u] for u in plan.users}
    targets = {u: data.test[u] for u in plan.users}
    rec = held_out_examples(builder, known, targets, "recommend", seed=seed, everything=data.seen)
    out: dict[str, Any] = {"users": len(plan.users)}
    scores = retrieval_scores(model, rec)
    sampled = np.take_along_axis(scores, plan.candidates, axis=1)
    out["retrieval@100"] = rank_metrics(target_ranks(sampled))
    out["retrieval@full"] = rank_metrics(full_ranks(scores, plan, data))
    if generative:
        gen = generative_scores(model, rec, plan.candidates, data.titles)
        out["generative@100"] = rank_metrics(target_ranks(gen))
    rating = held_out_examples(builder, known, targets, "rating", seed=seed, everything=data.seen)
    out["rating"] = rating_errors(model, rating) if rating else None
    select = held_out_examples(builder, known, targets, "select", seed=seed, everything=data.seen)
    out["select"] = selection_accuracy(model, select) if select else None
    return out


def full_ranks(scores: np.ndarray, plan: EvalPlan, data: UniMPData) -> np.ndarray:
    """Rank of each test item among every item the user did not rate before (train/valid)."""
    vocab = data.split.items
    ranks = np.zeros(len(plan.users), dtype=np.int64)
    for row, user in enumerate(plan.users):
        known = vocab.index([i for i, _ in data.known[user]])
        target = plan.candidates[row, 0]
        row_scores = scores[row].astype(np.float64).copy()
        row_scores[known] = -np.inf
        ranks[row] = int((np.delete(row_scores, target) >= row_scores[target]).sum())
    return ranks
