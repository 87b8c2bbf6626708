"""The Recommender contract, checked for every registered model (after scikit-learn's
``check_estimator``): a model added to the registry is covered without editing this file.

Data: 40 users in 4 taste clusters over 60 items with timestamps, features for every
item (text) and most items (image) that follow the clusters; small settings so that
each model trains in about a second. What a model needs is read from its class:
sequential models (a :class:`SequentialRecommender`) get a leave-one-out split, the
protocol they are evaluated with; the others a random 80/10/10 one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Split
from tastemaker.data.splits import leave_one_out, random_ratio
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.models import Recommender
from tastemaker.models.fold_in import (
    FoldsIn,
    SolvesUserVector,
    fold_in_models,
    recommend_for_items,
)
from tastemaker.models.registry import available_models, get_model_class
from tastemaker.models.sequential import SequentialRecommender

from .conftest import make_dataset

N_USERS, N_ITEMS, CLUSTERS = 40, 60, 4
# Small settings, applied to the fields a model's config has (others are left alone).
SMALL = {
    "epochs": 2, "patience": 2, "factors": 8, "hidden_size": 16, "embedding_size": 16,
    "hidden": 16, "inner_size": 32, "n_layers": 1, "num_layers": 1, "mm_layers": 1,
    "n_heads": 1, "max_len": 10, "batch_size": 64, "n_negatives": 4, "k": 5, "knn_k": 5,
}  # fmt: skip
MODELS = available_models()


def small_params(name: str) -> dict[str, Any]:
    fields = get_model_class(name).config_class.model_fields
    return {key: value for key, value in SMALL.items() if key in fields}


@pytest.fixture(scope="module")
def splits() -> dict[str, Split]:
    rng = np.random.default_rng(7)
    rows = []
    for user in range(N_USERS):
        liked = [i for i in range(N_ITEMS) if i % CLUSTERS == user % CLUSTERS]
        picks = rng.choice(liked, size=8, replace=False)
        rows += [(f"u{user}", f"i{i}", 5.0, int(t)) for t, i in enumerate(picks)]
    ds = make_dataset(rows, n_items=N_ITEMS)
    return {"sequential": leave_one_out(ds), "other": random_ratio(ds, seed=1)}


def split_for(name: str, splits: dict[str, Split]) -> Split:
    """The split a model is checked on, chosen from its class (not from its name)."""
    sequential = issubclass(get_model_class(name), SequentialRecommender)
    return splits["sequential" if sequential else "other"]


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


@dataclass
class Case:
    model: Recommender
    split: Split
    features: dict[str, ItemEmbeddings]

    def refit(self, model: Recommender) -> Recommender:
        return model.fit(self.split.train, self.split.valid, features=self.features)

    def all_scores(self, model: Recommender) -> torch.Tensor:
        return model.score_indices(np.arange(len(self.split.users)))


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, splits: dict[str, Split], features: dict[str, ItemEmbeddings]) -> Case:
    """Every model fitted the one way, fit(train, valid, features=...): ID models too."""
    name = request.param
    case = Case(get_model_class(name)(**small_params(name)), split_for(name, splits), features)
    case.refit(case.model)
    return case


def test_the_registry_is_what_is_checked() -> None:
    assert {"bpr", "sasrec", "vbpr", "unisrec"} <= set(MODELS)


def test_fit_works_with_features_for_every_model(fitted: Case) -> None:
    assert fitted.model.is_fitted
    assert fitted.model.users == fitted.split.users and fitted.model.items == fitted.split.items


def test_scores_are_finite_float32_for_every_user_and_item(fitted: Case) -> None:
    scores = fitted.all_scores(fitted.model)
    assert scores.dtype == torch.float32
    assert tuple(scores.shape) == (len(fitted.split.users), len(fitted.split.items))
    assert torch.isfinite(scores).all()


def test_recommend_never_returns_seen_items(fitted: Case) -> None:
    train = fitted.split.train.frame
    users = fitted.split.users.ids[:10]
    recs = fitted.model.recommend(users, k=5)
    seen = set(zip(train["user_id"], train["item_id"], strict=True))
    assert recs.height == 50
    assert not [pair for pair in zip(recs["user_id"], recs["item_id"], strict=True) if pair in seen]


def test_save_and_load_give_identical_scores(fitted: Case, tmp_path: Path) -> None:
    loaded = Recommender.load(fitted.model.save(tmp_path / "model"))
    assert type(loaded) is type(fitted.model) and loaded.config == fitted.model.config
    assert torch.equal(fitted.all_scores(loaded), fitted.all_scores(fitted.model))


def test_fitting_again_reproduces_the_model_and_leaves_global_rng_alone(fitted: Case) -> None:
    before = fitted.all_scores(fitted.model)
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    again = fitted.refit(type(fitted.model)(fitted.model.config))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.allclose(fitted.all_scores(again), before, atol=1e-5)


def test_a_loaded_model_refits_to_the_same_model(fitted: Case, tmp_path: Path) -> None:
    """A loaded model has its own generator too, re-seeded at fit: same seed, same scores."""
    loaded = Recommender.load(fitted.model.save(tmp_path / "model"))
    assert isinstance(loaded.generator, torch.Generator)
    before = fitted.all_scores(fitted.model)
    assert torch.allclose(fitted.all_scores(fitted.refit(loaded)), before, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_an_unknown_parameter_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"model '{name}': unknown parameter 'no_such_knob'"):
        get_model_class(name)(no_such_knob=1)
    config_class = get_model_class(name).config_class  # built directly: the same one line
    with pytest.raises(ConfigError, match=r"seed='x' is invalid"):
        config_class(seed="x")


@pytest.mark.parametrize("name", MODELS)
def test_features_are_required_exactly_by_content_models(
    name: str, splits: dict[str, Split]
) -> None:
    model, split = get_model_class(name)(**small_params(name)), split_for(name, splits)
    if model.requires_features:
        with pytest.raises(ConfigError, match="got no features"):
            model.fit(split.train, split.valid)
        assert not model.is_fitted
    else:
        assert model.fit(split.train, split.valid).is_fitted


@pytest.mark.parametrize("name", MODELS)
def test_one_tuning_trial_succeeds(
    name: str, splits: dict[str, Split], features: dict[str, ItemEmbeddings]
) -> None:
    from tastemaker.tuning import tune  # imported here: the rest of the contract needs no tuning

    fields = get_model_class(name).config_class.model_fields
    knob = "learning_rate" if "learning_rate" in fields else "seed"
    space = {knob: "log:1e-3..1e-2" if knob == "learning_rate" else "choice:1,2"}
    params = {k: v for k, v in small_params(name).items() if k != knob}
    result = tune(
        split_for(name, splits), name, space, params=params, n_trials=1, features=features
    )
    assert [t.state for t in result.trials] == ["complete"]
    assert result.best.value is not None and np.isfinite(result.best.value)


def test_fold_in_reproduces_a_known_users_scores_or_says_it_cannot(fitted: Case) -> None:
    """A model that folds in new users scores a user known only by a list of items as
    it scores a training user with those items (their training history, oldest first)."""
    model, train = fitted.model, fitted.split.train
    if not isinstance(model, FoldsIn):
        with pytest.raises(ConfigError, match="cannot score a user known only by"):
            recommend_for_items(model, ["i0"])
        return
    frame = train.frame.filter(pl.col("user_id") == "u3").sort("timestamp")
    history = frame["item_id"].to_list()
    known = model.score_indices(model.users.index(["u3"]))[0]
    if not isinstance(model, SolvesUserVector):  # a solved user vector estimates (test_fold_in_mf)
        assert torch.allclose(model.fold_in_scores(model.items.index(history)), known, atol=1e-5)
    recs = recommend_for_items(model, history, k=5)
    assert recs.height == 5 and not set(recs["item_id"]) & set(history)
    assert recs["score"].is_sorted(descending=True)


def test_fold_in_refuses_what_it_cannot_use(splits: dict[str, Split]) -> None:
    model = get_model_class("itemknn")(k=5).fit(splits["other"].train)
    with pytest.raises(ConfigError, match="no items were given"):
        recommend_for_items(model, [])
    with pytest.raises(ConfigError, match="one string"):
        recommend_for_items(model, "i0")
    with pytest.raises(DataError, match="nope"):
        recommend_for_items(model, ["i0", "nope"])
    assert {"itemknn", "ease", "most_popular", "sasrec"} <= set(fold_in_models())
