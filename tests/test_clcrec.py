"""CLCRec on synthetic tastes: content that predicts taste makes cold items rankable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tastemaker import Dataset, Split
from tastemaker.data import splits
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.evaluation.cold_start import chance_recall, evaluate_cold_start, item_groups
from tastemaker.models import BPR, CLCRec, Recommender

from .conftest import make_dataset

N_GROUPS, PER_GROUP, N_USERS = 4, 40, 120
FAST = dict(epochs=30, patience=30, batch_size=128, learning_rate=3e-3)  # ~1,000 pairs


def taste_data() -> tuple[Dataset, dict[str, ItemEmbeddings]]:
    """Users like the items of their own group (one of 4); an item's text vector is its
    group one-hot plus noise, and only the even items have an (equally telling) image."""
    rng = np.random.default_rng(0)
    n_items = N_GROUPS * PER_GROUP
    group = np.arange(n_items) % N_GROUPS
    rows = []
    for u in range(N_USERS):
        mine = np.flatnonzero(group == u % N_GROUPS)
        for i in rng.choice(mine, size=12, replace=False):
            rows.append((f"u{u}", f"i{i}", 1.0, int(i)))
    ds = make_dataset(rows, n_items=n_items)
    ids = [f"i{i}" for i in range(n_items)]
    text = np.hstack([np.eye(N_GROUPS)[group], rng.normal(0, 0.3, (n_items, 8))])
    image = np.hstack([np.eye(N_GROUPS)[group], rng.normal(0, 0.3, (n_items, 4))])
    has_image = np.arange(n_items) % 2 == 0
    image[~has_image] = 0.0
    features = {
        "text": ItemEmbeddings(ids, text.astype(np.float32), np.ones(n_items, bool), "t", "text"),
        "image": ItemEmbeddings(ids, image.astype(np.float32), has_image, "v", "image"),
    }
    return ds, features


@pytest.fixture(scope="module")
def data() -> tuple[Split, dict[str, ItemEmbeddings]]:
    ds, features = taste_data()
    return splits.cold_start(ds, seed=0, cold_items=0.25), features


@pytest.fixture(scope="module")
def fitted(data: tuple[Split, dict[str, ItemEmbeddings]]) -> CLCRec:
    split, features = data
    return CLCRec(**FAST, modalities=["text", "image"]).fit(
        split.train, split.valid, features=features
    )


def test_clcrec_ranks_cold_items_where_bpr_is_at_chance(
    data: tuple[Split, dict[str, ItemEmbeddings]], fitted: CLCRec
) -> None:
    split, _ = data
    kw = dict(ks=(5,), metrics=("recall",))
    ours = evaluate_cold_start(fitted, split, "test", **kw)
    bpr = BPR(**FAST).fit(split.train, split.valid)
    theirs = evaluate_cold_start(bpr, split, "test", **kw)
    chance = chance_recall(5, ours["cold"]["n_items"])
    assert chance == pytest.approx(0.25)  # 20 cold test items (a quarter of 160, halved)
    # A user's relevant cold items are among the ~5 cold test items of the user's group:
    # content puts those on top (ranking by the true group scores 0.815).
    assert ours["cold"]["recall@5"] > 0.65
    assert theirs["cold"]["recall@5"] < 1.5 * chance  # BPR knows nothing of cold items
    # Warm items are ranked by the ID embeddings, which learn the groups too.
    assert ours["warm"]["recall@5"] > 3 * chance_recall(5, ours["warm"]["n_items"])
    losses = [row["loss"] for row in fitted.training_log or []]
    assert losses[-1] < 0.8 * losses[0]


def test_missing_modalities_are_masked_not_averaged(fitted: CLCRec) -> None:
    network = fitted._network
    assert network is not None
    odd = torch.tensor([1, 3])  # no image: their content vector is the text encoder's alone
    text = F.normalize(network.encoder["text"](F.normalize(fitted.content["text"][odd], dim=1)))
    both, has = fitted._encode(odd)
    assert has.all() and torch.allclose(both, text, atol=1e-6)
    even = torch.tensor([0, 2])  # with an image the vector differs from text alone
    text_even = F.normalize(
        network.encoder["text"](F.normalize(fitted.content["text"][even], dim=1))
    )
    assert not torch.allclose(fitted._encode(even)[0], text_even, atol=1e-3)


def test_warm_items_use_id_embeddings_or_a_mix_with_content(
    data: tuple[Split, dict[str, ItemEmbeddings]],
) -> None:
    split, features = data
    text = {"text": features["text"]}
    warm = item_groups(split, "test").warm
    cold = item_groups(split, "test").cold
    for weight in (0.0, 0.5, 1.0):
        model = CLCRec(epochs=1, modalities=["text"], warm_content_weight=weight)
        model.fit(split.train, features=text)
        assert model._network is not None
        ids = F.normalize(model._network.item_embedding.detach(), dim=1)
        content = model._encode(torch.arange(model.n_items))[0]
        expected = F.normalize((1 - weight) * ids + weight * content, dim=1)
        vectors = model.item_vectors()
        assert torch.allclose(vectors[warm], expected[warm], atol=1e-6)
        assert torch.allclose(vectors[cold], content[cold], atol=1e-6)  # cold: content only


def test_items_with_neither_interactions_nor_content_cannot_be_recommended(
    data: tuple[Split, dict[str, ItemEmbeddings]],
) -> None:
    split, features = data
    cold = item_groups(split, "test").cold[:1]
    text = features["text"]
    mask = text.mask.copy()
    mask[cold] = False
    vectors = text.vectors.copy()
    vectors[cold] = 0.0
    blind = {"text": ItemEmbeddings(text.item_ids, vectors, mask, "t", "text")}
    model = CLCRec(epochs=2, modalities=["text"]).fit(split.train, features=blind)
    scores = model.score_indices(np.arange(len(split.users)))
    assert torch.isneginf(scores[:, cold]).all()
    assert torch.isfinite(scores[:, np.flatnonzero(mask)]).all()


def test_save_load_scores_identically(fitted: CLCRec, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert isinstance(loaded, CLCRec) and loaded.config == fitted.config
    users = np.arange(len(fitted.users or []))
    assert torch.equal(loaded.score_indices(users), fitted.score_indices(users))
    assert fitted.best_epoch is not None


@pytest.mark.parametrize(
    "params, match",
    [
        ({"ui_weight": 1.5}, "ui_weight"),
        ({"modalities": []}, "modalities"),
        ({"modalities": ["audio"]}, "modalities"),
        ({"temperature": 0}, "temperature"),
        ({"factor": 8}, "unknown parameter 'factor'"),
    ],
)
def test_bad_config_is_a_config_error(params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CLCRec(**params)


def test_fit_needs_the_features_it_uses(data: tuple[Split, dict[str, ItemEmbeddings]]) -> None:
    split, features = data
    with pytest.raises(ConfigError, match="no features"):
        CLCRec(epochs=1).fit(split.train)
    with pytest.raises(ConfigError, match="no image features"):
        CLCRec(epochs=1).fit(split.train, features={"text": features["text"]})
