"""UniMP's added measures on a tiny random Llama: held-out explanation pairs and their
metrics, the search set and Recall@k, and the transfer of a trained model to a new
catalog."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tastemaker.unimp import explanation as ex
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.model import build_model
from tastemaker.unimp.pipeline import UniMPData, prepare
from tastemaker.unimp.report import eval_plan
from tastemaker.unimp.search import recall_at, search_set
from tastemaker.unimp.transfer import ITEM_TABLE, transfer
from tastemaker.unimp.visual import VisualBank

from .unimp_data import tiny_dataset


def config(**changes: object) -> UniMPConfig:
    base = {"lm": "tiny", "cross_every": 1, "lora_rank": 4, "steps": 2, "batch_size": 2,
            "history": 3, "retrieval_dim": 8}  # fmt: skip
    return UniMPConfig(**{**base, **changes})


@pytest.fixture
def data() -> UniMPData:
    data = prepare(tiny_dataset(12), config(fusion="none"), progress=False)
    vocab = data.split.items
    features = np.random.default_rng(0).normal(size=(len(vocab), 4, 16)).astype(np.float32)
    data.bank = VisualBank(vocab, np.arange(len(vocab)), features)
    train = data.train["u0"]  # i0 i3 i6 i9 i0 i3 (train part)
    data.tags = {("u0", train[1][0]): ["funny"], ("u0", train[3][0]): ["dark", "twist"],
                 ("u1", "i5"): ["slow"]}  # fmt: skip
    return data


def test_explanation_pairs_hold_out_each_users_last_tagged_train_item(data: UniMPData) -> None:
    pairs = ex.held_out_tag_pairs(data)
    u0 = [p for p in pairs if p.user == "u0"]
    assert len(u0) == 1 and u0[0].item == data.train["u0"][3][0]
    assert u0[0].history == data.train["u0"][:3]  # the history stops before the item
    kept = ex.without_pairs(data.tags, pairs)
    assert ("u0", data.train["u0"][1][0]) in kept
    assert all((p.user, p.item) not in kept for p in pairs)


def test_explanation_measures_match_hand_counts(data: UniMPData) -> None:
    pairs = [ex.TagPair("u0", data.train["u0"][:3], data.train["u0"][3][0])]
    pairs.append(ex.TagPair("u0", data.train["u0"][:1], data.train["u0"][1][0]))
    measures = ex.explanation_measures(data, pairs, ["twist", "dark"])
    assert measures["FMR"] == 0.5  # "twist" is a gold tag of pair 1; "dark" is not pair 2's
    assert measures["FCR"] == pytest.approx(2 / 4)  # 2 named of {dark, funny, slow, twist}
    assert measures["DIV"] == 0.0 and measures["USR"] == 1.0
    # "dark" is a tag of pair 1's item, not of pair 2's: one of two assertions is true
    assert measures["faithfulness"] == 0.5
    assert measures["ROUGE-1"] == pytest.approx(0.5)


def test_popular_tag_peer_names_the_items_most_frequent_tag(data: UniMPData) -> None:
    item = data.train["u0"][3][0]
    tags = {("u1", item): ["dark"], ("u2", item): ["dark", "odd"], ("u3", "other"): ["x", "x"]}
    pairs = [ex.TagPair("u0", [], item), ex.TagPair("u0", [], "never tagged")]
    assert ex.popular_tag_explanations(tags, pairs) == ["dark", "dark"]


def test_search_set_queries_name_the_wanted_item_and_recall_counts_top_k(data: UniMPData) -> None:
    plan = eval_plan(data, None, seed=0, negatives=3)  # 4 items stay unseen per user
    searches = search_set(data, plan, data.builder(config()), seed=0)
    assert len(searches.rows) == len(plan.users)
    for row, query, example in zip(searches.rows, searches.queries, searches.examples, strict=True):
        target = data.test[plan.users[row]][0][0]
        assert example.item == target and query in example.sentence.text
        assert query.casefold() in data.describer.fields(target)["genres"].casefold()
    assert recall_at(np.array([0, 9, 10, 50]), 10) == 0.5


def test_transfer_keeps_trained_weights_and_zeroes_the_new_item_table(data: UniMPData) -> None:
    model = build_model(config(), data.bank, data.titles)
    with torch.no_grad():
        for parameter in model.trainable().values():
            parameter.add_(0.5)
    other = prepare(tiny_dataset(7, prefix="m"), config(fusion="none"), progress=False)
    moved, moved_data = transfer(model, other)
    assert moved_data.bank.dim == data.bank.dim and not len(moved_data.bank.features)
    before, after = model.trainable(), moved.trainable()
    assert after[ITEM_TABLE].shape[0] == 7 and not after[ITEM_TABLE].any()
    shared = [k for k in before if k != ITEM_TABLE]
    assert shared and all(torch.equal(before[k], after[k]) for k in shared)
    scores = moved.retrieval_scores(torch.randn(1, 3, moved.user_head.in_features),
                                    torch.tensor([2]))  # fmt: skip
    assert scores.shape == (1, 7) and torch.isfinite(scores).all()
    assert replace(moved_data, tags={}).split.items.ids == other.split.items.ids


def test_reassociated_retrieval_scores_equal_user_times_item_vectors(data: UniMPData) -> None:
    model = build_model(config(), data.bank, data.titles)
    with torch.no_grad():
        for parameter in model.trainable().values():
            parameter.normal_(std=0.3)
    hidden = torch.randn(2, 5, model.user_head.in_features)
    last = torch.tensor([4, 1])
    expected = model.user_vectors(hidden, last) @ model.item_vectors().T
    assert model.poster_means.shape == (len(data.split.items), data.bank.dim)
    torch.testing.assert_close(model.retrieval_scores(hidden, last), expected)
