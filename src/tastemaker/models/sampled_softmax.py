"""Sampled softmax: next-item cross-entropy over the target and a few shared negatives.

Full softmax scores every item for every target, O(targets x items) a step, which
dominates training on a large catalog. Sampled softmax (Jean et al., "On Using Very
Large Target Vocabulary for Neural Machine Translation", ACL 2015) replaces the
catalog by the target plus ``K`` negatives drawn once per batch from a distribution
Q and shared by all its targets, O(targets x K). Drawing by popularity spends the
negatives on the items the model most often ranks too high, but then biases the
estimate towards them; subtracting log Q(i) from every candidate's logit, the
target's included, removes that bias (the "logQ correction": Bengio & Senécal,
IEEE TNN 2008; Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large Corpus
Item Recommendations", RecSys 2019, eq. 3). A negative that equals a row's target
(an "accidental hit") is dropped from that row, as TensorFlow's
``sampled_softmax_loss(remove_accidental_hits=True)`` does.

With uniform Q the correction is the same constant for every candidate and cancels.
"""

from __future__ import annotations

from typing import Literal

import torch

from tastemaker.errors import DataError

Sampling = Literal["uniform", "popularity"]


class NegativeSampler:
    """Draws shared negatives from Q over ``n_items`` items and knows log Q of any item.

    ``"popularity"``: Q(i) ∝ (number of times i is a training target + 1); the one
    keeps every item drawable, so every item is pushed down now and then, as the full
    softmax pushes every item down on every step.
    """

    def __init__(self, targets: torch.Tensor, n_items: int, sampling: Sampling) -> None:
        if n_items < 1:
            raise DataError("sampled softmax needs a catalog of at least one item", "add items")
        self.n_items = n_items
        self.uniform = sampling == "uniform"
        if self.uniform:
            weights = torch.ones(n_items, dtype=torch.float64)
        else:
            weights = torch.bincount(targets, minlength=n_items)[:n_items].double() + 1
        q = weights / weights.sum()
        self.log_q = q.log().float()
        self._cdf = q.cumsum(0)

    def draw(self, k: int, generator: torch.Generator) -> torch.Tensor:
        """``k`` item indices drawn independently from Q (with replacement)."""
        if self.uniform:
            return torch.randint(self.n_items, (k,), generator=generator)
        # Inverse-CDF sampling: O(k log items) a batch (torch.multinomial rebuilds the
        # CDF, O(items), on every call).
        draws = torch.rand(k, generator=generator, dtype=torch.float64)
        return torch.searchsorted(self._cdf, draws * self._cdf[-1]).clamp_(max=self.n_items - 1)


def sampled_softmax_loss(
    states: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    weights: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Mean over rows of −log softmax of the target among {target} ∪ negatives.

    ``states`` (N, d) and ``targets`` (N,) are the rows; ``negatives`` (K,) the shared
    draws; ``weights`` the (items, d) item matrix; ``log_q`` (items,) log Q. Logits are
    <state, item> − log Q(item); a negative equal to a row's target is masked out.
    """
    positive = torch.linalg.vecdot(states, weights[targets]) - log_q[targets]
    negative = states @ weights[negatives].T - log_q[negatives]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], negative], dim=1)
    return (torch.logsumexp(logits, dim=1) - positive).mean()
