"""The Recommender contract, checked for every registered model (after scikit-learn's
``check_estimator``): a model added to the registry is covered without editing this file.

Data: 40 users in 4 taste clusters over 60 items with timestamps, features for every
item (text) and most items (image) that follow the clusters; small settings so that
each model trains in about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tastemaker import Split
from tastemaker.data.splits import random_ratio
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.models import Recommender
from tastemaker.models.registry import available_models, get_model_class
from tastemaker.tuning import tune

from .conftest import make_dataset

N_USERS, N_ITEMS, CLUSTERS = 40, 60, 4
# Small settings, applied to the fields a model's config has (others are left alone).
SMALL = {
    "epochs": 2, "patience": 2, "factors": 8, "hidden_size": 16, "embedding_size": 16,
    "n_layers": 1, "n_heads": 1, "max_len": 10, "batch_size": 64, "n_negatives": 4,
    "neighbours": 5, "k": 5, "layers": 1,
}  # fmt: skip


def small_params(name: str) -> dict[str, Any]:
    fields = get_model_class(name).config_class.model_fields
    return {key: value for key, value in SMALL.items() if key in fields}


@pytest.fixture(scope="module")
def split() -> Split:
    rng = np.random.default_rng(7)
    rows = []
    for user in range(N_USERS):
        liked = [i for i in range(N_ITEMS) if i % CLUSTERS == user % CLUSTERS]
        picks = rng.choice(liked, size=8, replace=False)
        rows += [(f"u{user}", f"i{i}", 5.0, int(t)) for t, i in enumerate(picks)]
    return random_ratio(make_dataset(rows, n_items=N_ITEMS), seed=1)


@pytest.fixture(scope="module")
def features() -> dict[str, ItemEmbeddings]:
    rng = np.random.default_rng(3)
    ids = [f"i{k}" for k in range(N_ITEMS)]
    cluster = np.arange(N_ITEMS) % CLUSTERS
    out = {}
    for modality, dim, missing in (("text", 12, 0.0), ("image", 6, 0.3)):
        centres = rng.normal(size=(CLUSTERS, dim))
        vectors = (centres[cluster] + 0.5 * rng.normal(size=(N_ITEMS, dim))).astype(np.float32)
        mask = rng.random(N_ITEMS) >= missing
        vectors[~mask] = 0
        out[modality] = ItemEmbeddings(ids, vectors, mask, f"synthetic-{modality}", modality)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module", params=available_models())
def fitted(request, split: Split, features: dict[str, ItemEmbeddings]) -> Recommender:
    """Every model fitted the one way: fit(train, valid, features=...)."""
    model = get_model_class(request.param)(**small_params(request.param))
    return model.fit(split.train, split.valid, features=features)


def test_the_registry_is_what_is_checked() -> None:
    assert {"bpr", "sasrec", "vbpr", "unisrec"} <= set(available_models())


def test_scores_are_finite_float32_for_every_user_and_item(
    fitted: Recommender, split: Split
) -> None:
    scores = fitted.score_indices(np.arange(len(split.users)))
    assert scores.dtype == torch.float32
    assert tuple(scores.shape) == (len(split.users), len(split.items))
    assert torch.isfinite(scores).all()


def test_recommend_never_returns_seen_items(fitted: Recommender, split: Split) -> None:
    users = split.users.ids[:10]
    recs = fitted.recommend(users, k=5)
    seen = set(zip(split.train.frame["user_id"], split.train.frame["item_id"], strict=True))
    assert recs.height == 50
    assert not [pair for pair in zip(recs["user_id"], recs["item_id"], strict=True) if pair in seen]


def test_save_and_load_give_identical_scores(fitted: Recommender, tmp_path: Path) -> None:
    loaded = Recommender.load(fitted.save(tmp_path / "model"))
    assert type(loaded) is type(fitted) and loaded.config == fitted.config
    users = np.arange(len(fitted.users or []))
    assert torch.equal(loaded.score_indices(users), fitted.score_indices(users))


def test_fitting_again_reproduces_the_model_and_leaves_global_rng_alone(
    fitted: Recommender, split: Split, features: dict[str, ItemEmbeddings]
) -> None:
    users = np.arange(len(split.users))
    before = fitted.score_indices(users)
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    again = type(fitted)(fitted.config).fit(split.train, split.valid, features=features)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.allclose(again.score_indices(users), before, atol=1e-5)


@pytest.mark.parametrize("name", available_models())
def test_an_unknown_parameter_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'no_such_knob'"):
        get_model_class(name)(no_such_knob=1)


@pytest.mark.parametrize("name", available_models())
def test_features_are_required_exactly_by_content_models(name: str, split: Split) -> None:
    model = get_model_class(name)(**small_params(name))
    if model.requires_features:
        with pytest.raises(ConfigError, match="got no features"):
            model.fit(split.train, split.valid)
    else:
        assert model.fit(split.train, split.valid).is_fitted


@pytest.mark.parametrize("name", available_models())
def test_one_tuning_trial_succeeds(
    name: str, split: Split, features: dict[str, ItemEmbeddings]
) -> None:
    fields = get_model_class(name).config_class.model_fields
    knob = "learning_rate" if "learning_rate" in fields else "seed"
    space = {knob: "log:1e-3..1e-2" if knob == "learning_rate" else "choice:1,2"}
    params = {k: v for k, v in small_params(name).items() if k != knob}
    result = tune(split, name, space, params=params, n_trials=1, features=features)
    assert [t.state for t in result.trials] == ["complete"]
    assert np.isfinite(result.best.value)
