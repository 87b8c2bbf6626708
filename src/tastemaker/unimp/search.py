"""Personalized search measured: Recall@10 of the wanted item among the shared candidates.

For each measured user the query is a phrase of their test item (their own tag
on it when they left one, else one of its genres or catalog tags; UniMP §3.3's
search task); UniMP ranks the user's 100 candidates (the test item + 99 never
rated, the same sets as recommendation) by the constrained-decoding probability
of each title after the search instruction, so the history personalizes the
ranking. With one wanted item, Recall@10 is HR@10. A non-personalized peer ranks
the same candidates by the query alone (the benchmark's text retrieval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tastemaker.unimp.evaluate import generative_scores, target_ranks
from tastemaker.unimp.tasks import TaskBuilder

if TYPE_CHECKING:
    from tastemaker.unimp.batching import Example
    from tastemaker.unimp.model import UniMP
    from tastemaker.unimp.pipeline import UniMPData
    from tastemaker.unimp.report import EvalPlan


@dataclass(frozen=True)
class SearchSet:
    """The measured rows of an evaluation plan, each user's query and search example."""

    rows: np.ndarray  # row indices into the plan (users whose test item yields a query)
    queries: list[str]
    examples: list[Example]


def search_set(data: UniMPData, plan: EvalPlan, builder: TaskBuilder, seed: int = 0) -> SearchSet:
    """One seeded query per plan user whose test item has a tag, genre or catalog tag."""
    rng = np.random.default_rng(seed)
    rows, queries, examples = [], [], []
    for row, user in enumerate(plan.users):
        target = data.test[user][0][0]
        query = builder.query(user, target, rng)
        if query is None:
            continue
        example = builder.search(user, data.known[user], target, rng, query=query)
        rows.append(row)
        queries.append(query)
        examples.append(example)
    return SearchSet(np.array(rows, dtype=np.int64), queries, examples)


def recall_at(ranks: np.ndarray, k: int = 10) -> float:
    """Share of rows whose single wanted item ranks in the top ``k`` (0-based ranks)."""
    return float((np.asarray(ranks) < k).mean()) if len(ranks) else 0.0


def unimp_search_ranks(
    model: UniMP, data: UniMPData, plan: EvalPlan, searches: SearchSet
) -> np.ndarray:
    """0-based rank of each wanted item among its candidates under UniMP's search prompt."""
    candidates = plan.candidates[searches.rows]
    return target_ranks(generative_scores(model, searches.examples, candidates, data.titles))
