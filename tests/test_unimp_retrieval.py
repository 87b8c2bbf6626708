"""The retrieval head's recipe options on a tiny random Llama: the sampled softmax over
in-batch and uniform negatives, history pooling, and the item table started from BPR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tastemaker.errors import ConfigError, DataError
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.examples import training_pool
from tastemaker.unimp.item_table import id_item_table
from tastemaker.unimp.loss import sampled_scores
from tastemaker.unimp.model import UniMP, build_model
from tastemaker.unimp.pipeline import UniMPData, prepare
from tastemaker.unimp.training import train
from tastemaker.unimp.visual import VisualBank

from .unimp_data import tiny_dataset


def config(**changes: object) -> UniMPConfig:
    base = {"lm": "tiny", "cross_every": 1, "lora_rank": 4, "steps": 2, "batch_size": 4,
            "history": 3, "retrieval_dim": 8}  # fmt: skip
    return UniMPConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def data() -> UniMPData:
    data = prepare(tiny_dataset(12), config(fusion="none"), progress=False)
    vocab = data.split.items
    features = np.random.default_rng(0).normal(size=(len(vocab), 4, 16)).astype(np.float32)
    data.bank = VisualBank(vocab, np.arange(len(vocab)), features)
    return data


def noisy(model: UniMP) -> UniMP:
    """Every trainable weight random, so no term of a score is zero by construction."""
    with torch.no_grad():
        for parameter in model.trainable().values():
            parameter.normal_(std=0.3)
    return model


def test_sampled_scores_are_full_scores_at_their_columns_with_other_positives_masked(
    data: UniMPData,
) -> None:
    model = noisy(build_model(config(), data.bank, data.titles))
    hidden = torch.randn(2, 5, model.user_head.in_features)
    last, slots = torch.tensor([4, 2]), torch.tensor([[0, 1], [2, -1]])
    targets, negatives = torch.tensor([3, 5]), torch.tensor([5, 7, 3])
    full = model.retrieval_scores(hidden, last, slots)
    scores, own = sampled_scores(model, hidden, last, slots, targets, negatives)
    columns = [3, 5, 5, 7, 3]
    expected = full[:, columns].clone()
    expected[0, 4] = float("-inf")  # row 0's own target (item 3) again, as a negative
    expected[1, 2] = float("-inf")  # row 1's own target (item 5) again
    torch.testing.assert_close(scores, expected)
    assert own.tolist() == [0, 1]


def test_history_pooling_adds_the_mean_table_row_of_the_history_items(data: UniMPData) -> None:
    model = noisy(build_model(config(pool_history=True), data.bank, data.titles))
    hidden = torch.randn(2, 4, model.user_head.in_features)
    last, slots = torch.tensor([3, 1]), torch.tensor([[1, 2, -1], [4, -1, -1]])
    plain = model.user_head(hidden[torch.arange(2), last])
    table = model.item_ids.weight
    expected = plain + torch.stack([(table[1] + table[2]) / 2, table[4]])
    torch.testing.assert_close(model.user_vectors(hidden, last, slots), expected)
    unpooled = build_model(config(pool_history=False), data.bank, data.titles)
    unpooled.load_state_dict(model.state_dict())
    torch.testing.assert_close(unpooled.user_vectors(hidden, last, slots), plain)


def test_item_table_starts_from_the_given_rows_and_refuses_a_wrong_shape(
    data: UniMPData,
) -> None:
    n = len(data.split.items)
    table = torch.arange(n * 8, dtype=torch.float32).view(n, 8)
    model = build_model(config(), data.bank, data.titles, item_table=table)
    assert torch.equal(model.item_ids.weight.detach(), table)
    with pytest.raises(ConfigError, match="does not fit"):
        build_model(config(), data.bank, data.titles, item_table=table[:, :4])


def test_id_item_table_reads_only_the_given_users(data: UniMPData) -> None:
    train = data.split.part("train")
    users = {"u0", "u1", "u2"}
    table = id_item_table(train, users, data.split.items, 8, seed=0)
    assert table.shape == (len(data.split.items), 8)
    # the same table from those users' rows alone: nothing of the other users is read
    keep = train.frame["user_id"].is_in(sorted(users)).to_numpy()
    assert torch.equal(id_item_table(train.subset(keep), users, train.items, 8, seed=0), table)
    assert not torch.equal(id_item_table(train, {"u3", "u4"}, train.items, 8, seed=0), table)
    other = prepare(tiny_dataset(7, prefix="m"), config(fusion="none"), progress=False)
    with pytest.raises(DataError, match="item vocabulary"):
        id_item_table(train, users, other.split.items, 8)


def test_sampled_softmax_training_resumes_exactly(data: UniMPData, tmp_path: Path) -> None:
    cfg = config(steps=4, save_every=2, retrieval_negatives=3, tasks=("recommend",))
    pool = training_pool(data.builder(cfg), data.train, cfg.tasks, seed=0)
    straight = build_model(cfg, data.bank, data.titles)
    log = train(straight, pool, tmp_path / "a", progress=False).log
    assert all(np.isfinite(e["retrieval"]) for e in log)
    half = build_model(cfg.model_copy(update={"steps": 2}), data.bank, data.titles)
    train(half, pool, tmp_path / "b", progress=False)
    resumed = build_model(cfg, data.bank, data.titles)
    train(resumed, pool, tmp_path / "b", resume=True, progress=False)
    for name, value in straight.trainable().items():
        assert torch.equal(value, resumed.trainable()[name]), name
    assert not torch.equal(straight.item_ids.weight, half.item_ids.weight)
