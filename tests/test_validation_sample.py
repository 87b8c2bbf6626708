"""Validation on a seeded sample of users: the same users every epoch and on resume, all of
them when there are few, and early stopping scored on exactly that sample."""

from __future__ import annotations

import numpy as np
import pytest

from tastemaker.evaluation import evaluate
from tastemaker.models import BPR
from tastemaker.models.training import user_sample

from .test_train_progress import tiny_split


def test_sample_is_seeded_and_complete_per_user() -> None:
    valid = tiny_split().valid
    users = np.unique(valid.indices()[0])
    assert user_sample(valid, None, 0) is valid
    assert user_sample(valid, len(users), 0) is valid
    sample = user_sample(valid, 5, seed=3)
    chosen = np.unique(sample.indices()[0])
    assert len(chosen) == 5 and set(chosen) <= set(users)
    # Every row of a chosen user is kept, no other row.
    in_sample = np.isin(valid.indices()[0], chosen)
    assert len(sample) == in_sample.sum()
    np.testing.assert_array_equal(sample.indices()[1], valid.indices()[1][in_sample])
    again = user_sample(valid, 5, seed=3)
    np.testing.assert_array_equal(np.unique(again.indices()[0]), chosen)
    other = np.unique(user_sample(valid, 5, seed=4).indices()[0])
    assert not np.array_equal(other, chosen)


@pytest.mark.parametrize("valid_users", [4, None])
def test_early_stopping_scores_the_sample(valid_users: int | None) -> None:
    split = tiny_split()
    model = BPR(factors=8, batch_size=64, epochs=1, valid_users=valid_users)
    model.fit(split.train, split.valid)
    logged = model.training_log[0]["ndcg@10"]
    sample = user_sample(split.valid, valid_users, model.config.seed)
    expected = evaluate(model, sample, exclude=[split.train], ks=(10,), metrics=("ndcg",))
    assert logged == pytest.approx(expected["ndcg@10"])
    assert expected["n_users"] == (4 if valid_users else np.unique(split.valid.indices()[0]).size)
