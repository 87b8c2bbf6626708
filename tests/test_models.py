"""The Recommender contract, the registry, the training loop and the three baselines.

Exact values come from hand-made data (toy fixture); quality bounds from the 200
most active users of ml-latest-small, where a broken model lands far below them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Dataset, Interactions, Split
from tastemaker.data.sources.movielens import load_movielens
from tastemaker.data.splits import random_ratio
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models import (
    BPR,
    ItemKNN,
    ItemKNNConfig,
    MostPopular,
    Recommender,
    available_models,
    create_model,
    get_model_class,
    register,
)

from .conftest import most_active, shared_data


# ----------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def small() -> Split:
    """ml-latest-small restricted to its 200 most active users, random 8:1:1."""
    dataset = most_active(load_movielens(shared_data("ml-latest-small")), 200)
    return random_ratio(dataset, seed=42)


@pytest.fixture(scope="module")
def fitted(small: Split) -> dict[str, Recommender]:
    return {
        "most_popular": MostPopular().fit(small.train),
        "itemknn": ItemKNN().fit(small.train),
        "bpr": BPR().fit(small.train, small.valid),
    }


def valid_ndcg(model: object, split: Split) -> float:
    return evaluate(model, split.valid, exclude=[split.train], ks=(10,))["ndcg@10"]


class RandomScores:
    """Uniform random scores: the floor every model must clear."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.generator = torch.Generator().manual_seed(0)

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return torch.rand(len(user_idx), self.n_items, generator=self.generator)


# -------------------------------------------------------------- exact values
def test_most_popular_scores_are_training_counts(toy: Dataset) -> None:
    model = MostPopular().fit(toy.interactions)
    # i0: u1,u2  i1: u1,u3  i2: u1,u2  i3: u1  i4: u1  i5: u2
    expected = [2, 2, 2, 1, 1, 1]
    assert model.score(["u1", "u3"]).tolist() == [expected, expected]
    assert model.score(["u2"], items=["i5", "i0"]).tolist() == [[1, 2]]


def test_itemknn_cosine_by_hand(toy: Dataset) -> None:
    # Item columns over (u1, u2, u3): i0=110 i1=101 i2=110 i3=100 i4=100 i5=010.
    # u3 has only seen i1, so its scores are row i1 of the similarity matrix.
    full = ItemKNN(k=100).fit(toy.interactions).score(["u3"])[0]
    half, root = 1 / 2, 1 / math.sqrt(2)
    np.testing.assert_allclose(full, [half, 0, half, root, root, 0], rtol=1e-6)
    # shrink adds to the denominator: 1 / (2 + 1) and 1 / (sqrt(2) + 1).
    shrunk = ItemKNN(k=100, shrink=1.0).fit(toy.interactions).score(["u3"])[0]
    third, other = 1 / 3, 1 / (math.sqrt(2) + 1)
    np.testing.assert_allclose(shrunk, [third, 0, third, other, other, 0], rtol=1e-6)
    # k=2 keeps i1's two nearest items (i3, i4) only.
    pruned = ItemKNN(k=2).fit(toy.interactions).score(["u3"])[0]
    np.testing.assert_allclose(pruned, [0, 0, 0, root, root, 0], rtol=1e-6)
    # u2 has seen i0, i2, i5: i1 gets sim(i0,i1) + sim(i2,i1) + sim(i5,i1) = 1/2 + 1/2 + 0.
    assert ItemKNN().fit(toy.interactions).score(["u2"], items=["i1"])[0, 0] == pytest.approx(1)


def test_itemknn_chunks_match_one_block(toy: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    from tastemaker.models import itemknn

    whole = ItemKNN(k=3).fit(toy.interactions).similarity.toarray()
    monkeypatch.setattr(itemknn, "_CHUNK_CELLS", 7)  # one item per chunk
    chunked = ItemKNN(k=3).fit(toy.interactions).similarity.toarray()
    np.testing.assert_array_equal(whole, chunked)
    assert (np.count_nonzero(whole, axis=1) <= 3).all() and not whole.diagonal().any()


def test_bpr_negatives_never_hit_a_positive(toy: Dataset) -> None:
    model = BPR(epochs=1).fit(toy.interactions)
    users = torch.tensor([0, 1, 2] * 2000)
    negatives = model._sample_negatives(users)
    seen = toy.interactions.to_csr().toarray().astype(bool)
    assert not seen[users.numpy(), negatives.numpy()].any()
    # Uniform over each user's unseen items: u2 (index 1) has three, each drawn ~1/3.
    drawn = np.bincount(negatives[users == 1].numpy(), minlength=6)
    assert set(np.flatnonzero(drawn)) == {1, 3, 4}
    assert drawn[[1, 3, 4]].min() > 2000 / 3 * 0.8


# ------------------------------------------------------------- quality bounds
def test_models_beat_their_floors(small: Split, fitted: dict[str, Recommender]) -> None:
    random = valid_ndcg(RandomScores(len(small.items)), small)
    popular = valid_ndcg(fitted["most_popular"], small)
    # Measured: random 0.001, MostPopular 0.173, ItemKNN 0.213, BPR 0.222.
    assert random < 0.01
    assert popular > 0.15
    assert valid_ndcg(fitted["itemknn"], small) > popular + 0.02
    assert valid_ndcg(fitted["bpr"], small) > popular + 0.02


def test_early_stopping_stops_and_restores_best(small: Split) -> None:
    model = BPR(patience=2, epochs=40).fit(small.train, small.valid)
    log = model.training_log
    assert log is not None and 2 < len(log) < 40
    values = [row["ndcg@10"] for row in log]
    best = int(np.argmax(values))
    # It stopped exactly `patience` evaluations after the best one...
    assert len(log) == best + 1 + 2 and model.best_epoch == log[best]["epoch"]
    # ...and holds the best epoch's weights, not the last epoch's.
    assert values[-1] < values[best]
    assert valid_ndcg(model, small) == pytest.approx(values[best], abs=1e-9)
    assert set(log[0]) == {"epoch", "loss", "ndcg@10", "seconds"}


def test_without_validation_all_epochs_run(toy: Dataset) -> None:
    model = BPR(epochs=3).fit(toy.interactions)
    assert model.training_log is not None
    assert [row["epoch"] for row in model.training_log] == [1, 2, 3]
    assert all(row["ndcg@10"] is None for row in model.training_log)
    assert model.best_epoch == 3


def test_bpr_is_seeded(toy: Dataset) -> None:
    a, b, c = (BPR(epochs=2, seed=s).fit(toy.interactions) for s in (1, 1, 2))
    assert np.array_equal(a.score(["u1"]), b.score(["u1"]))
    assert not np.array_equal(a.score(["u1"]), c.score(["u1"]))


# ------------------------------------------------------------------ recommend
def test_recommend_excludes_seen_and_returns_raw_ids(
    small: Split, fitted: dict[str, Recommender]
) -> None:
    users = small.train.frame["user_id"].unique().sort().head(5).to_list()
    seen = set(zip(small.train.frame["user_id"], small.train.frame["item_id"], strict=True))
    for name, model in fitted.items():
        recs = model.recommend(users, k=10)
        assert recs.columns == ["user_id", "rank", "item_id", "score"], name
        assert recs.height == 50 and set(recs["user_id"]) == set(users)
        assert not {(u, i) for u, i in recs.select("user_id", "item_id").rows()} & seen
        for user in users:
            mine = recs.filter(pl.col("user_id") == user)
            assert mine["rank"].to_list() == list(range(1, 11))
            assert mine["score"].to_list() == sorted(mine["score"].to_list(), reverse=True)
        titles = small.catalog.titles(recs["item_id"].to_list())
        assert all(t and not t.isdigit() for t in titles)  # real titles, e.g. "Heat (1995)"


def test_most_popular_recommends_the_top_unseen_counts(
    small: Split, fitted: dict[str, Recommender]
) -> None:
    user = small.train.frame["user_id"][0]
    train = small.train.frame
    counts = train.group_by("item_id").len()
    unseen = counts.join(train.filter(pl.col("user_id") == user), on="item_id", how="anti")
    expected = sorted(unseen["len"].to_list(), reverse=True)[:5]
    recs = fitted["most_popular"].recommend([user], k=5)
    assert recs["score"].to_list() == expected
    by_id = dict(counts.rows())
    assert [by_id[i] for i in recs["item_id"]] == expected


def test_recommend_returns_fewer_rows_when_few_items_are_unseen(toy: Dataset) -> None:
    recs = MostPopular().fit(toy.interactions).recommend(["u1", "u3"], k=4)
    assert recs.filter(pl.col("user_id") == "u1")["item_id"].to_list() == ["i5"]
    u3 = recs.filter(pl.col("user_id") == "u3")
    assert set(u3["item_id"].head(2)) == {"i0", "i2"} and u3["score"].to_list() == [2, 2, 1, 1]
    # Without exclusion u1 gets three of its own items, tied at count 2.
    with_seen = MostPopular().fit(toy.interactions).recommend(["u1"], k=3, exclude_seen=False)
    assert set(with_seen["item_id"]) == {"i0", "i1", "i2"}


# --------------------------------------------------------------- persistence
@pytest.mark.parametrize("name", ["most_popular", "itemknn", "bpr"])
def test_save_load_round_trip(
    name: str, small: Split, fitted: dict[str, Recommender], tmp_path: Path
) -> None:
    model = fitted[name]
    folder = model.save(tmp_path / name)
    assert {p.name for p in folder.iterdir()} >= {"config.json", "weights.safetensors", "ids.json"}
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"] == name and meta["config"] == model.config.model_dump(mode="json")
    loaded = Recommender.load(folder)
    assert type(loaded) is type(model) and loaded.config == model.config
    users = small.valid.frame["user_id"].unique().sort().head(20).to_list()
    assert np.array_equal(loaded.score(users), model.score(users))
    assert loaded.recommend(users, k=5).equals(model.recommend(users, k=5))
    assert loaded.training_log == model.training_log
    assert (folder / "training_log.json").is_file() == (name == "bpr")
    assert not list(tmp_path.glob(".*tmp-*"))  # no temporary leftovers


def test_load_rejects_bad_folders(fitted: dict[str, Recommender], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Recommender.load(tmp_path / "nowhere")
    folder = fitted["most_popular"].save(tmp_path / "pop")
    with pytest.raises(DataError, match="'most_popular' model, not a 'bpr' model"):
        BPR.load(folder)
    (folder / "weights.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(DataError, match=r"weights\.safetensors is missing or unreadable"):
        Recommender.load(folder)
    (folder / "config.json").write_text('{"model": "most_pop')
    with pytest.raises(DataError, match="not valid JSON"):
        Recommender.load(folder)
    (folder / "config.json").write_text('{"model": "gpt", "config": {}}')
    with pytest.raises(DataError, match="unknown to this tastemaker"):
        Recommender.load(folder)


# ------------------------------------------------------------ errors & registry
def test_bad_config_values_name_field_value_and_range() -> None:
    with pytest.raises(ConfigError) as info:
        BPR(learning_rate=-0.1)
    message = str(info.value)
    assert "learning_rate=-0.1" in message and "greater than 0" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"unknown parameter 'neighbours'.*use only"):
        create_model("itemknn", neighbours=5)
    with pytest.raises(ConfigError, match="k=0"):
        ItemKNN(config=ItemKNNConfig(), k=0)
    with pytest.raises(ConfigError, match="got a ItemKNNConfig"):
        BPR(config=ItemKNNConfig())
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        BPR(early_stopping_metric="ndcg")


def test_unknown_metric_fails_before_training(toy: Dataset) -> None:
    model = BPR(early_stopping_metric="auc@10")
    with pytest.raises(ConfigError, match="'auc@10' names an unknown metric"):
        model.fit(toy.interactions, toy.interactions)
    assert not model.is_fitted  # a failed fit leaves no half-trained model behind


def test_registry() -> None:
    assert {"most_popular", "itemknn", "bpr"} <= set(available_models())
    assert get_model_class("BPR") is BPR
    assert create_model("itemknn", k=5).config == ItemKNNConfig(k=5)
    with pytest.raises(ConfigError, match=r"unknown model 'svd'.*bpr, .*itemknn, .*most_popular"):
        create_model("svd")

    class Impostor(MostPopular):
        name = "bpr"

    with pytest.raises(ValueError, match="used by both"):
        register(Impostor)
    assert get_model_class("bpr") is BPR


def test_unfitted_and_unknown_user_errors(
    toy: Dataset, fitted: dict[str, Recommender], tmp_path: Path
) -> None:
    model = ItemKNN()
    for call in (
        lambda: model.score(["u1"]),
        lambda: model.recommend(["u1"]),
        lambda: model.save(tmp_path / "m"),
    ):
        with pytest.raises(ConfigError, match="not fitted yet"):
            call()
    assert not (tmp_path / "m").exists()
    with pytest.raises(DataError, match="unknown user ID"):
        fitted["bpr"].recommend(["no-such-user"])
    with pytest.raises(DataError, match="unknown item ID"):
        fitted["bpr"].score([fitted["bpr"].users.ids[0]], items=["no-such-item"])


def test_fit_rejects_mismatched_validation(toy: Dataset) -> None:
    other = Interactions(toy.interactions.frame.filter(pl.col("user_id") != "u3"))
    with pytest.raises(DataError, match="other user/item vocabularies"):
        BPR().fit(toy.interactions, other)
