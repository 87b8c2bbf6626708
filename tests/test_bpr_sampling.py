"""BPR's dynamic negative sampling: each triple keeps the highest-scored of its own
uniform negative and those of the triples before it in the batch, never a positive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastemaker.models import BPR, Recommender
from tastemaker.models.base import TrainingInterrupted
from tastemaker.models.bpr import PairSampler
from tastemaker.models.training import EpochReport

from .test_train_progress import tiny_split


def _reference(
    users: np.ndarray, negatives: np.ndarray, scores: np.ndarray, seen: np.ndarray, k: int
) -> np.ndarray:
    """Brute force: triple t looks at the negatives of triples t, t-1, ..., t-k+1 (those
    that exist), skips the user's positives and keeps the first strictly highest score."""
    chosen = negatives.copy()
    for t in range(len(users)):
        best = scores[users[t], negatives[t]]
        for shift in range(1, k):
            if t - shift < 0:
                break
            other = negatives[t - shift]
            if not seen[users[t], other] and scores[users[t], other] > best:
                best, chosen[t] = scores[users[t], other], other
    return chosen


@pytest.mark.parametrize("k", [2, 3])
def test_the_hardest_unseen_candidate_is_kept(k: int) -> None:
    rng = np.random.default_rng(k)
    n_users, n_items, n = 6, 12, 40
    seen = rng.random((n_users, n_items)) < 0.3
    seen[:, 0] = False  # every user has unseen items
    model = BPR(negative_candidates=k)
    model._pairs = PairSampler(sp.csr_matrix(seen.astype(np.float32)), "bpr")
    user_table = torch.randn(n_users, 4, generator=torch.Generator().manual_seed(k))
    item_table = torch.randn(n_items, 4, generator=torch.Generator().manual_seed(k + 10))
    users = torch.from_numpy(rng.integers(0, n_users, n))
    positives = torch.from_numpy(rng.integers(0, n_items, n))
    negatives = model._pairs.negatives(users, torch.Generator().manual_seed(0))
    items = torch.cat([positives, negatives])
    item = item_table[items]
    scores = (user_table @ item_table.T).numpy()
    expected = _reference(users.numpy(), negatives.numpy(), scores, seen, k)
    # the check matters: some candidate that scores higher is a positive of the user
    assert (expected != _reference(users.numpy(), negatives.numpy(), scores, seen * 0, k)).any()

    model._hardest_negatives(users, user_table[users], items, item)

    np.testing.assert_array_equal(items[n:].numpy(), expected)
    torch.testing.assert_close(item[n:], item_table[torch.from_numpy(expected)])
    torch.testing.assert_close(item[:n], item_table[positives])  # positives untouched
    assert (items[n:] != negatives).any()  # some triple did move to a harder negative


def test_two_candidates_change_training_and_resume_exactly(tmp_path: Path) -> None:
    """The choice uses no random numbers of its own, so an interrupted run resumes to
    the weights of a whole one; and it is in effect (one candidate trains otherwise)."""
    train = tiny_split().train
    whole = BPR(factors=4, epochs=4, negative_candidates=2).fit(train)
    uniform = BPR(factors=4, epochs=4, negative_candidates=1).fit(train)

    def stop(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    model = BPR(factors=4, epochs=4, negative_candidates=2)
    model.on_epoch = stop
    with pytest.raises(TrainingInterrupted):
        model.fit(train)
    resumed = Recommender.load(model.save(tmp_path / "bpr")).resume(train)
    users = np.arange(5)
    torch.testing.assert_close(resumed.score_indices(users), whole.score_indices(users))
    assert not torch.allclose(uniform.score_indices(users), whole.score_indices(users))
