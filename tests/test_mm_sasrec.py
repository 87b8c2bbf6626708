"""Multimodal SASRec: items from content, inductive scores, masks, fusion, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tastemaker import Dataset, Split
from tastemaker.data.splits import leave_one_out
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.models import MMSASRec, MostPopular, Recommender
from tastemaker.models.mm_sasrec import ContentItems, MMSASRecConfig, MoEAdaptor

from .conftest import make_dataset

N_CLUSTERS, PER_CLUSTER = 10, 6
COLD = "icold"  # only ever some user's test item: absent from training
SMALL = {
    "max_len": 20,
    "hidden_size": 32,
    "n_layers": 1,
    "n_heads": 2,
    "inner_size": 64,
    "dropout": 0.1,
    "batch_size": 16,
    "learning_rate": 1e-2,
    "modalities": ["text"],
}


def clustered(seed: int = 0, n_users: int = 80, length: int = 12) -> tuple[Dataset, ItemEmbeddings]:
    """Users walk through clusters of items in a fixed cycle (cluster c → c + 1), picking
    an unseen item of each cluster at random, so only an item's cluster (its content: a
    one-hot "text" vector plus noise) predicts the next one; popularity is flat. User u0
    ends with :data:`COLD`, whose content equals item i0's."""
    rng = np.random.default_rng(seed)
    n_items = N_CLUSTERS * PER_CLUSTER
    rows = []
    for user in range(n_users):
        cluster = int(rng.integers(N_CLUSTERS))
        picks = {c: list(rng.permutation(PER_CLUSTER)) for c in range(N_CLUSTERS)}
        for step in range(length):
            item = cluster * PER_CLUSTER + picks[cluster].pop()
            rows.append((f"u{user}", f"i{item}", 1.0, step))
            cluster = (cluster + 1) % N_CLUSTERS
    rows.append(("u0", COLD, 1.0, length))
    ds = make_dataset(rows)
    vectors = np.zeros((n_items, N_CLUSTERS + 4), dtype=np.float32)
    vectors[np.arange(n_items), np.arange(n_items) // PER_CLUSTER] = 1.0
    vectors[:, N_CLUSTERS:] = rng.normal(0, 0.05, (n_items, 4))
    ids = [f"i{k}" for k in range(n_items)] + [COLD]
    vectors = np.vstack([vectors, vectors[:1]])
    return ds, ItemEmbeddings(ids, vectors, np.ones(len(ids), bool), "test:clusters", "text")


@pytest.fixture(scope="module")
def data() -> tuple[Split, ItemEmbeddings]:
    ds, text = clustered()
    return leave_one_out(ds), text


@pytest.fixture(scope="module")
def content_only(data: tuple[Split, ItemEmbeddings]) -> MMSASRec:
    split, text = data
    return MMSASRec(**SMALL, use_id=False, epochs=8, patience=8).fit(
        split.train, split.valid, features={"text": text}
    )


def test_learns_the_next_item_from_content(
    content_only: MMSASRec, data: tuple[Split, ItemEmbeddings]
) -> None:
    split, _ = data
    floor = evaluate_split(MostPopular().fit(split.train), split, "valid", ks=(10,))["ndcg@10"]
    ndcg = evaluate_split(content_only, split, "valid", ks=(10,))["ndcg@10"]
    # The next cluster leaves ~5 candidates: a model that learned it ranks them on top.
    assert ndcg > max(2 * floor, 0.4), (ndcg, floor)


def test_unseen_item_is_scored_by_its_content(
    content_only: MMSASRec, data: tuple[Split, ItemEmbeddings]
) -> None:
    split, _ = data
    assert content_only.items is not None and content_only.seen is not None
    cold, twin = content_only.items.index([COLD, "i0"])
    assert content_only.seen[:, cold].nnz == 0  # never in training
    scores = content_only.score_indices(np.arange(len(split.train.users)))
    assert torch.equal(scores[:, cold], scores[:, twin])  # same content, same score
    assert scores[:, cold].std() > 0  # and it depends on the user


def test_cold_items_get_content_only_and_ids_drop_out(data: tuple[Split, ItemEmbeddings]) -> None:
    split, text = data
    model = MMSASRec(**SMALL, epochs=2, id_dropout=1.0).fit(split.train, features={"text": text})
    assert model.items is not None and model.network is not None
    cold, twin = model.items.index([COLD, "i0"])
    items = model.network.items
    assert isinstance(items, ContentItems) and items.id_embedding is not None
    index = torch.tensor([cold, twin])
    items.eval()
    with torch.no_grad():
        vectors = items(index)
        id_vector = items.id_embedding.weight[twin]
        assert torch.allclose(vectors[1] - vectors[0], id_vector, atol=1e-6)
        assert id_vector.abs().sum() > 0
        items.train()  # id_dropout=1: every ID dropped, so seen items look cold too
        items.dropout.p = 0.0
        dropped = items(index)
    assert torch.allclose(dropped[1], vectors[0], atol=1e-6)


def _items(fusion: str, image_mask: torch.Tensor) -> ContentItems:
    torch.manual_seed(0)
    content = {"text": torch.randn(4, 6), "image": torch.randn(4, 5)}
    masks = {"text": torch.tensor([True, True, False, False]), "image": image_mask}
    config = MMSASRecConfig(hidden_size=8, n_heads=2, fusion=fusion, content_dropout=0.0)
    return ContentItems(content, masks, None, config).eval()


@pytest.mark.parametrize("fusion", ["mean", "concat"])
def test_missing_modalities_contribute_nothing(fusion: str) -> None:
    # item 0: text + image; 1: text only; 2: image only; 3: nothing; 4: padding
    items = _items(fusion, torch.tensor([True, False, True, False]))
    with torch.no_grad():
        before = items(torch.arange(5))
        items.content_image[1] = 100.0  # a masked row's values must not matter
        items.content_text[2] = 100.0
        after = items(torch.arange(5))
        text = items.projections["text"](items.content_text[:2])
        image = items.projections["image"](items.content_image[[0, 2]])
        if fusion == "mean":
            expected = [(text[0] + image[0]) / 2, text[1], image[1]]
        else:  # concatenation rescaled by 2 modalities / n present
            assert items.fuse is not None
            zero = torch.zeros(8)
            expected = [
                items.fuse(torch.cat([text[0], image[0]])),
                items.fuse(torch.cat([2 * text[1], zero])),
                items.fuse(torch.cat([zero, 2 * image[1]])),
            ]
    assert torch.equal(before, after)
    assert torch.allclose(after[:3], torch.stack(expected), atol=1e-6)
    assert torch.equal(after[3:], torch.zeros(2, 8))  # no content, no ID; padding


def test_moe_adaptor_matches_a_hand_computation() -> None:
    generator = np.random.default_rng(0)
    x = generator.normal(size=(3, 4)).astype(np.float32)
    bias = generator.normal(size=(2, 4)).astype(np.float32)
    weight = generator.normal(size=(2, 4, 5)).astype(np.float32)
    gate = generator.normal(size=(4, 2)).astype(np.float32)
    adaptor = MoEAdaptor(4, 5, n_experts=2).eval()  # eval: no gate noise
    with torch.no_grad():
        for param, value in ((adaptor.bias, bias), (adaptor.weight, weight), (adaptor.gate, gate)):
            param.copy_(torch.from_numpy(value))
        out = adaptor(torch.from_numpy(x)).numpy()
    expected = np.zeros((3, 5))
    for row in range(3):
        logits = x[row] @ gate
        g = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        for k in range(2):  # expert k whitens: (x - b_k) W_k
            expected[row] += g[k] * ((x[row] - bias[k]) @ weight[k])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # training adds gate noise: the gates change, but stay a distribution
    adaptor.train()
    gates = adaptor.gates(torch.from_numpy(x))
    assert torch.allclose(gates.sum(dim=1), torch.ones(3))


def test_save_load_round_trips(
    content_only: MMSASRec, data: tuple[Split, ItemEmbeddings], tmp_path: Path
) -> None:
    split, _ = data
    users = np.arange(len(split.train.users))
    loaded = Recommender.load(content_only.save(tmp_path / "m"))
    assert type(loaded) is MMSASRec and loaded.config == content_only.config
    assert torch.equal(loaded.score_indices(users), content_only.score_indices(users))
    assert torch.equal(
        loaded.score_indices(users, split.valid), content_only.score_indices(users, split.valid)
    )


def test_with_ids_and_two_modalities_round_trips(
    data: tuple[Split, ItemEmbeddings], tmp_path: Path
) -> None:
    split, text = data
    rng = np.random.default_rng(1)
    image_mask = rng.random(len(text)) < 0.7
    image_vectors = rng.normal(size=(len(text), 3)).astype(np.float32) * image_mask[:, None]
    image = ItemEmbeddings(text.item_ids, image_vectors, image_mask, "test:random", "image")
    model = MMSASRec(
        **{**SMALL, "modalities": ["text", "image"]}, projection="mlp", fusion="concat", epochs=2
    ).fit(split.train, features={"text": text, "image": image})
    users = np.arange(len(split.train.users))
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert torch.equal(loaded.score_indices(users), model.score_indices(users))


def test_needs_the_features_of_its_modalities(data: tuple[Split, ItemEmbeddings]) -> None:
    split, text = data
    with pytest.raises(ConfigError, match="image"):
        MMSASRec(**{**SMALL, "modalities": ["text", "image"]}).fit(
            split.train, features={"text": text}
        )
    with pytest.raises(ConfigError, match="fusion"):
        MMSASRec(fusion="sum")
