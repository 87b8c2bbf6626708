"""Sampled softmax for the sequential models: the loss by hand, logQ, and the full path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tastemaker import Dataset
from tastemaker.errors import ConfigError
from tastemaker.models import GRU4Rec, Recommender, SASRec
from tastemaker.models.base import TrainingInterrupted
from tastemaker.models.sampled_softmax import NegativeSampler, sampled_softmax_loss
from tastemaker.models.sequential import SequentialRecommender
from tastemaker.models.training import EpochReport

SMALL = {
    SASRec: {"hidden_size": 16, "n_layers": 1, "n_heads": 2, "inner_size": 32, "dropout": 0.0},
    GRU4Rec: {"embedding_size": 16, "hidden_size": 16, "dropout": 0.0},
}


def test_loss_equals_a_hand_computation_with_logq() -> None:
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]])
    states = torch.tensor([[0.5, -1.0], [2.0, 1.0]])
    targets = torch.tensor([2, 1])
    negatives = torch.tensor([1, 3, 3])  # row 1's target (1) is drawn: an accidental hit
    log_q = torch.tensor([0.1, 0.2, 0.3, 0.4]).log()
    loss = sampled_softmax_loss(states, targets, negatives, weights, log_q)

    def logit(state: list[float], item: int) -> float:
        w = weights[item].tolist()
        return state[0] * w[0] + state[1] * w[1] - math.log([0.1, 0.2, 0.3, 0.4][item])

    # row 0: target 2 against 1, 3, 3; row 1: target 1 against 3, 3 (the hit 1 is dropped)
    rows = [([0.5, -1.0], 2, [1, 3, 3]), ([2.0, 1.0], 1, [3, 3])]
    expected = 0.0
    for state, target, others in rows:
        logits = [logit(state, target)] + [logit(state, j) for j in others]
        expected += math.log(sum(math.exp(x) for x in logits)) - logits[0]
    assert loss.item() == pytest.approx(expected / 2, rel=1e-6)


def test_uniform_over_the_whole_catalog_is_the_full_softmax() -> None:
    """Every item drawn once and Q uniform: the candidates are the catalog, so the loss is
    exactly the full cross-entropy (the correction cancels, the hit leaves the target once)."""
    generator = torch.Generator().manual_seed(0)
    weights, states = torch.randn(7, 3, generator=generator), torch.randn(5, 3, generator=generator)
    targets = torch.tensor([0, 3, 6, 3, 1])
    sampler = NegativeSampler(targets, 7, "uniform")
    sampled = sampled_softmax_loss(states, targets, torch.arange(7), weights, sampler.log_q)
    full = torch.nn.functional.cross_entropy(states @ weights.T, targets)
    assert sampled.item() == pytest.approx(full.item(), rel=1e-6)


def test_popularity_q_is_the_smoothed_target_frequency_and_is_what_is_drawn() -> None:
    """log Q, which the loss subtracts, is exactly the law the negatives are drawn from."""
    targets = torch.tensor([0, 0, 0, 2, 5, 5])  # 5 is padding for 5 items: not counted
    sampler = NegativeSampler(targets, 5, "popularity")
    expected = torch.tensor([4.0, 1.0, 2.0, 1.0, 1.0]) / 9  # counts + 1
    assert torch.allclose(sampler.log_q.exp(), expected)
    draws = sampler.draw(200_000, torch.Generator().manual_seed(1))
    frequency = torch.bincount(draws, minlength=5).double() / len(draws)
    assert torch.allclose(frequency, expected.double(), atol=0.005)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_sampled_training_is_seeded_and_learns(
    cls: type[SequentialRecommender], toy: Dataset
) -> None:
    params = {"loss_type": "sampled", "sampled_negatives": 4, "epochs": 12, "learning_rate": 0.02}
    state = torch.get_rng_state()
    model = cls(**params, **SMALL[cls]).fit(toy.interactions)
    again = cls(**params, **SMALL[cls]).fit(toy.interactions)
    assert torch.equal(torch.get_rng_state(), state)  # private randomness only
    assert torch.equal(model.score_indices(np.arange(3)), again.score_indices(np.arange(3)))
    log = model.training_log
    assert log is not None and log[-1]["loss"] < 0.8 * log[0]["loss"]


def test_full_softmax_draws_no_negatives(toy: Dataset) -> None:
    """The default path is the plain cross-entropy and leaves the sampling settings unused:
    a different ``sampled_negatives`` or ``sampling`` trains the very same weights."""
    one = SASRec(epochs=2, **SMALL[SASRec]).fit(toy.interactions)
    two = SASRec(epochs=2, sampled_negatives=3, sampling="uniform", **SMALL[SASRec])
    two.fit(toy.interactions)
    assert one._sampler is None
    assert torch.equal(one.score_indices(np.arange(3)), two.score_indices(np.arange(3)))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"sampled_negatives": 0}, "sampled_negatives"), ({"sampling": "zipf"}, "sampling")],
)
def test_bad_sampling_config_names_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        SASRec(loss_type="sampled", **params)


def test_a_sampled_model_saves_loads_and_resumes_exactly(toy: Dataset, tmp_path: Path) -> None:
    """The sampler is rebuilt from the training data on resume; the generator carries on."""
    params = {"loss_type": "sampled", "sampled_negatives": 3, "epochs": 4, **SMALL[GRU4Rec]}
    whole = GRU4Rec(**params).fit(toy.interactions)

    def stop(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    model = GRU4Rec(**params)
    model.on_epoch = stop
    with pytest.raises(TrainingInterrupted):
        model.fit(toy.interactions)
    loaded = Recommender.load(model.save(tmp_path / "gru"))
    assert torch.equal(loaded.score_indices(np.arange(3)), model.score_indices(np.arange(3)))
    resumed = loaded.resume(toy.interactions)
    assert torch.equal(resumed.score_indices(np.arange(3)), whole.score_indices(np.arange(3)))
