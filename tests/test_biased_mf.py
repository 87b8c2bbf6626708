"""Biased MF (Koren et al. 2009) learns explicit ratings, saves and loads exactly,
and refuses bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastemaker.data.splits import random_ratio
from tastemaker.errors import ConfigError, DataError
from tastemaker.models import BiasedMF, Recommender

from .conftest import make_dataset


def low_rank_ratings(n_users: int = 60, n_items: int = 50, seed: int = 0) -> list[tuple]:
    """Ratings = 3 + user bias + item bias + rank-2 taste + small noise, 60% observed."""
    rng = np.random.default_rng(seed)
    bu, bi = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    p, q = rng.normal(0, 0.8, (n_users, 2)), rng.normal(0, 0.8, (n_items, 2))
    rows = []
    for u in range(n_users):
        for i in np.flatnonzero(rng.random(n_items) < 0.6):
            r = 3 + bu[u] + bi[i] + p[u] @ q[i] + rng.normal(0, 0.1)
            rows.append((f"u{u}", f"i{i}", float(r), int(u * 1000 + i)))
    return rows


@pytest.fixture(scope="module")
def fitted() -> tuple[BiasedMF, object]:
    split = random_ratio(make_dataset(low_rank_ratings(), n_items=50), seed=3)
    model = BiasedMF(factors=4, reg=0.01, learning_rate=0.02, epochs=80, patience=5, batch_size=128)
    return model.fit(split.train, split.valid), split


def rmse(pred: np.ndarray, gold: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - gold) ** 2)))


def test_valid_rmse_is_well_below_the_global_mean_baseline(fitted) -> None:
    model, split = fitted
    valid = split.valid.frame
    gold = valid["rating"].to_numpy()
    pred = model.predict_ratings(valid["user_id"].to_list(), valid["item_id"].to_list())
    baseline = rmse(np.full_like(gold, split.train.frame["rating"].mean()), gold)
    assert rmse(pred, gold) < 0.5 * baseline
    best = min(e["valid_rmse"] for e in model.training_log)
    assert rmse(pred, gold) == pytest.approx(best, rel=1e-4)  # the best epoch is kept


def test_scores_are_the_predicted_ratings(fitted) -> None:
    model = fitted[0]
    scores = model.score(["u5"], ["i1", "i7"])[0]
    assert np.allclose(scores, model.predict_ratings(["u5", "u5"], ["i1", "i7"]), atol=1e-5)


def test_save_and_load_give_identical_predictions(fitted, tmp_path: Path) -> None:
    model, split = fitted
    loaded = Recommender.load(model.save(tmp_path / "mf"))
    users, items = split.test.frame["user_id"].to_list(), split.test.frame["item_id"].to_list()
    assert isinstance(loaded, BiasedMF)
    assert np.array_equal(loaded.predict_ratings(users, items), model.predict_ratings(users, items))


def test_bad_config_and_bad_pairs_are_typed_errors(fitted) -> None:
    with pytest.raises(ConfigError, match="factors"):
        BiasedMF(factors=0)
    with pytest.raises(ConfigError, match="reg"):
        BiasedMF(reg=-1.0)
    with pytest.raises(DataError, match="one user and one item"):
        fitted[0].predict_ratings(["u1"], ["i1", "i2"])
