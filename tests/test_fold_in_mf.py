"""Fold-in for the models with one vector per training user (ALS, BPR, LightGCN, VBPR).

The data has planted taste groups: each user interacts with items of one group only,
and a few items are popular with every group, so popularity ranks a user's held-out
items poorly while any vector that captures the group ranks them well.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.data.dataset import Split
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import random_ratio
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.models.base import Recommender
from tastemaker.models.fold_in import FoldsIn, UserSystem, recommend_for_items, solve_user
from tastemaker.models.registry import get_model_class

GROUPS, ITEMS_PER_GROUP, USERS_PER_GROUP, POPULAR = 4, 25, 25, 6


def group_of(item: str) -> int:
    return int(item[1:]) // ITEMS_PER_GROUP if int(item[1:]) < GROUPS * ITEMS_PER_GROUP else -1


@pytest.fixture(scope="module")
def grouped() -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    popular = [f"i{GROUPS * ITEMS_PER_GROUP + p}" for p in range(POPULAR)]
    for g in range(GROUPS):
        for u in range(USERS_PER_GROUP):
            own = rng.choice(ITEMS_PER_GROUP, size=12, replace=False) + g * ITEMS_PER_GROUP
            items = [f"i{i}" for i in own] + list(rng.choice(popular, size=2, replace=False))
            rows += [(f"u{g}_{u}", item, 1.0, t) for t, item in enumerate(items)]
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    ids = [f"i{k}" for k in range(GROUPS * ITEMS_PER_GROUP + POPULAR)]
    catalog = Catalog(pl.DataFrame({"item_id": ids, "title": ids}))
    return Dataset(catalog, Interactions(frame), Manifest(name="groups"))


def fitted(name: str, grouped: Dataset) -> tuple[Recommender, Split]:
    torch.set_num_threads(1)
    split = random_ratio(grouped, ratios=(0.7, 0.15, 0.15), seed=1)
    params = {
        "bpr": {"epochs": 60, "learning_rate": 1e-2, "factors": 16, "batch_size": 256},
        "lightgcn": {"epochs": 60, "learning_rate": 1e-2, "factors": 16, "batch_size": 256},
        "als": {"epochs": 10, "factors": 16, "reg": 1.0},
        "vbpr": {
            "modalities": ["text"],
            "epochs": 40,
            "learning_rate": 1e-2,
            "factors": 8,
            "content_factors": 8,
        },
    }[name]
    model = get_model_class(name)(**params, seed=0)
    if name == "vbpr":
        rng = np.random.default_rng(1)
        ids = grouped.catalog.vocab.ids
        vectors = np.stack([np.eye(GROUPS + 1)[group_of(i)] for i in ids]).astype(np.float32)
        vectors += rng.normal(0, 0.1, vectors.shape).astype(np.float32)
        mask = np.ones(len(ids), dtype=bool)
        features = {"text": ItemEmbeddings(ids, vectors, mask, "planted", "text")}
        model.fit(split.train, features=features)
    else:
        model.fit(split.train)
    return model, split


def recall_at_10(scores: torch.Tensor, seen: np.ndarray, held_out: np.ndarray) -> float:
    scores = scores.clone()
    scores[torch.from_numpy(seen)] = -torch.inf
    top = torch.topk(scores, 10).indices.numpy()
    return len(set(top) & set(held_out)) / min(10, len(held_out))


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "als", "vbpr"])
def test_folded_in_training_users_rank_their_held_out_items_far_above_popularity(
    name: str, grouped: Dataset
) -> None:
    model, split = fitted(name, grouped)
    assert isinstance(model, FoldsIn)
    popularity = torch.from_numpy(np.bincount(split.train.indices()[1], minlength=model.n_items))
    train, test = split.train.frame, split.test.frame
    folded, trained, popular = [], [], []
    for user in test["user_id"].unique().sort().to_list():
        history = model.items.index(train.filter(user_id=user)["item_id"].to_list())
        held_out = model.items.index(test.filter(user_id=user)["item_id"].to_list())
        known = model.score_indices(model.users.index([user]))[0]
        folded.append(recall_at_10(model.fold_in_scores(history), history, held_out))
        trained.append(recall_at_10(known, history, held_out))
        popular.append(recall_at_10(popularity.float(), history, held_out))
    # Popularity finds the shared popular items only; a group-aware vector finds the rest.
    assert np.mean(folded) >= 1.5 * np.mean(popular), (np.mean(folded), np.mean(popular))
    assert np.mean(folded) >= 0.8 * np.mean(trained), (np.mean(folded), np.mean(trained))


@pytest.mark.parametrize("name", ["bpr", "als"])
def test_a_new_users_recommendations_come_from_the_group_of_their_history(
    name: str, grouped: Dataset
) -> None:
    model, _ = fitted(name, grouped)
    for group in range(GROUPS):
        history = [f"i{group * ITEMS_PER_GROUP + k}" for k in range(5)]
        recs = recommend_for_items(model, history, k=10)["item_id"].to_list()
        in_group = sum(group_of(i) == group for i in recs)
        assert in_group >= 7, (group, recs)
        assert not set(recs) & set(history)


def test_the_ridge_vector_solves_its_normal_equations_by_hand() -> None:
    """Two items, one in the history: x = y / (|y|² + λ) for a positives-only ridge."""
    items = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    scores = solve_user(UserSystem(items, reg=1.0), np.array([0]))
    assert torch.allclose(scores, torch.tensor([4.0 / 5.0, 0.0]))
    # ALS: (YᵀY + αy yᵀ + λI) x = (1 + α) y with Y = I, y = e0, α = 1, λ = 1: x0 = 2/3.
    als = UserSystem(torch.eye(2), reg=1.0, alpha=1.0, gram=torch.eye(2, dtype=torch.float64))
    assert torch.allclose(solve_user(als, np.array([0])), torch.tensor([2.0 / 3.0, 0.0]))
    # An offset is a fixed per-item term: the target is 1 − b, and b is added back.
    shifted = UserSystem(items, reg=1.0, offset=torch.tensor([0.5, 3.0]))
    assert torch.allclose(solve_user(shifted, np.array([0])), torch.tensor([0.5 + 2 / 5, 3.0]))
