"""UniSRec: contrastive losses, item dropout, pretraining, checkpoints and fine-tuning."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tastemaker import Interactions, Split
from tastemaker.data.splits import leave_one_out
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.models import MostPopular, Recommender, UniSRec
from tastemaker.models.unisrec import UniSRecCheckpoint
from tastemaker.pretrain.unisrec import (
    item_dropout,
    pretrain_unisrec,
    seq_item_contrastive,
    seq_seq_contrastive,
)

from .test_cli import assert_user_error, movielens, run  # noqa: F401
from .test_mm_sasrec import clustered

NETWORK = {
    "max_len": 20,
    "hidden_size": 16,
    "n_layers": 1,
    "n_heads": 2,
    "inner_size": 32,
    "n_experts": 3,
    "dropout": 0.1,
    "batch_size": 16,
    "learning_rate": 1e-2,
}
FROZEN = ("trunk.position_embedding.", "trunk.encoder.")


# ---------------------------------------------------------------------- losses
def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_seq_item_loss_matches_a_hand_computation() -> None:
    states = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    table = torch.tensor([[2.0, 0.0], [5.0, 5.0], [0.0, 3.0], [1.0, 1.0]])
    targets = torch.tensor([2, 0, 2])  # item 2 twice: candidates are the distinct {0, 2}
    loss = seq_item_contrastive(states, targets, lambda idx: table[idx], temperature=0.5)
    # unit candidates: item 0 → (1, 0), item 2 → (0, 1); cosine / 0.5
    logits = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]) / 0.5
    labels = [1, 0, 1]
    expected = -np.mean([_log_softmax(logits)[row, label] for row, label in enumerate(labels)])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # e.g. row 0: -log(e^0 / (e^2 + e^0)) = log(1 + e^2)
    assert _log_softmax(logits)[0, 1] == pytest.approx(-math.log(1 + math.e**2))


def test_seq_seq_loss_matches_a_hand_computation() -> None:
    first = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    second = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    loss = seq_seq_contrastive(first, second, temperature=0.1)
    c = 1 / math.sqrt(2)
    logits = np.array([[c, 0.0], [c, 1.0]]) / 0.1  # cosines of (first i, second j)
    expected = -(_log_softmax(logits)[0, 0] + _log_softmax(logits)[1, 1]) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_item_dropout_keeps_order_and_at_least_the_last_item() -> None:
    pad = 9
    sequences = torch.tensor([[1, 2, 3, 4, 5], [6, 7, pad, pad, pad], [8, pad, pad, pad, pad]])
    lengths = torch.tensor([5, 2, 1])
    same, same_lengths = item_dropout(sequences, lengths, 0.0, pad)
    assert torch.equal(same, sequences) and torch.equal(same_lengths, lengths)
    only_last, one = item_dropout(sequences, lengths, 0.999999, pad)
    assert one.tolist() == [1, 1, 1]
    assert only_last[:, 0].tolist() == [5, 7, 8] and (only_last[:, 1:] == pad).all()
    torch.manual_seed(0)
    for _ in range(20):
        view, kept = item_dropout(sequences, lengths, 0.5, pad)
        for row, n in zip(view.tolist(), kept.tolist(), strict=True):
            assert all(item == pad for item in row[n:]) and pad not in row[:n]
            assert row[:n] == sorted(row[:n])  # items keep their order (ascending here)
        assert (kept <= lengths).all() and (kept >= 1).all()


# ------------------------------------------------------------------ pretraining
@pytest.fixture(scope="module")
def source() -> tuple[Split, ItemEmbeddings]:
    ds, text = clustered(seed=1)
    return leave_one_out(ds), text


@pytest.fixture(scope="module")
def target() -> tuple[Split, ItemEmbeddings]:
    ds, text = clustered(seed=2, n_users=40)
    return leave_one_out(ds), text


@pytest.fixture(scope="module")
def checkpoint(
    source: tuple[Split, ItemEmbeddings], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    split, text = source
    pretrained = pretrain_unisrec(split, text, **NETWORK, epochs=6, patience=6)
    assert pretrained.encoders == {"text": "test:clusters"} and pretrained.dims == {"text": 14}
    assert pretrained.pretraining == {"item_drop": 0.2, "seq_seq_weight": 1e-3}
    return pretrained.save(tmp_path_factory.mktemp("unisrec") / "checkpoint")


def test_pretraining_learns(checkpoint: Path, source: tuple[Split, ItemEmbeddings]) -> None:
    loaded = UniSRecCheckpoint.load(checkpoint)
    log = loaded.training_log
    assert len(log) == 6 and log[-1]["loss"] < log[0]["loss"]
    assert loaded.best_epoch is not None
    best = max(row["ndcg@10"] for row in log)
    split, _ = source
    floor = evaluate_split(MostPopular().fit(split.train), split, "valid", ks=(10,))["ndcg@10"]
    assert best > 2 * floor, (best, floor)


class _Recording(UniSRec):
    """UniSRec that keeps a copy of its weights as they are before the first epoch."""

    def _prepare(self, train: Interactions) -> None:
        super()._prepare(train)
        assert self.network is not None
        self.initial = {k: v.clone() for k, v in self.network.state_dict().items()}


@pytest.mark.parametrize("finetune", ["adaptor", "full"])
def test_fine_tuning_starts_from_the_checkpoint(
    finetune: str, checkpoint: Path, target: tuple[Split, ItemEmbeddings], tmp_path: Path
) -> None:
    split, text = target
    pretrained = UniSRecCheckpoint.load(checkpoint).weights
    local = shutil.copytree(checkpoint, tmp_path / "checkpoint")
    # hidden_size differs from the checkpoint's: the checkpoint's shape wins
    model = _Recording(
        pretrained=local, finetune=finetune, hidden_size=64, epochs=3, learning_rate=1e-2
    ).fit(split.train, split.valid, features={"text": text})
    assert model.config.hidden_size == NETWORK["hidden_size"] and model.network is not None
    assert set(model.initial) == set(pretrained)
    assert all(torch.equal(model.initial[k], v) for k, v in pretrained.items())
    after = model.network.state_dict()
    frozen = [k for k in pretrained if k.startswith(FROZEN)]
    assert frozen and any(k.startswith("trunk.encoder.") for k in frozen)
    assert all(torch.equal(after[k], pretrained[k]) for k in frozen) == (finetune == "adaptor")
    assert not torch.equal(
        after["items.projections.text.weight"], pretrained["items.projections.text.weight"]
    )
    # a saved fine-tuned model no longer needs its checkpoint
    saved = model.save(tmp_path / "model")
    shutil.rmtree(local)
    users = np.arange(len(split.train.users))
    loaded = Recommender.load(saved)
    assert type(loaded) is UniSRec
    assert torch.equal(loaded.score_indices(users), model.score_indices(users))


def test_scores_are_cosines_over_the_temperature(target: tuple[Split, ItemEmbeddings]) -> None:
    split, text = target
    model = UniSRec(**NETWORK, epochs=1, temperature=0.5).fit(split.train, features={"text": text})
    scores = model.score_indices(np.arange(len(split.train.users)))
    assert scores.abs().max() <= 2.0 + 1e-5  # |cos| / 0.5
    states = model.user_states(np.arange(3))
    assert model.network is not None
    with torch.no_grad():
        items = model.network.items()
    expected = torch.nn.functional.cosine_similarity(states[:, None], items[None], dim=-1) / 0.5
    assert torch.allclose(scores[:3], expected, atol=1e-5)


def test_checkpoint_must_match_the_features(
    checkpoint: Path, target: tuple[Split, ItemEmbeddings], tmp_path: Path
) -> None:
    split, text = target
    other = dataclasses.replace(text, encoder_id="test:other")
    with pytest.raises(DataError, match="test:clusters"):
        UniSRec(pretrained=checkpoint).fit(split.train, features={"text": other})
    with pytest.raises(DataError, match=r"checkpoint\.json"):
        UniSRec(pretrained=tmp_path).fit(split.train, features={"text": text})
    with pytest.raises(ConfigError, match="use_id"):
        pretrain_unisrec(split, text, use_id=True)


def test_cli_pretrains_a_checkpoint(movielens: Path, tmp_path: Path) -> None:  # noqa: F811
    out, store = tmp_path / "checkpoint", tmp_path / "store"
    args = ("pretrain", "unisrec", "--data", movielens, "--store", store, "--out", out)
    small = [f"--param={k}={v}" for k, v in {**NETWORK, "epochs": 2}.items()]
    code, output = run(*args, *small)
    assert code == 0, output
    assert "written to" in output
    checkpoint = UniSRecCheckpoint.load(out)
    assert checkpoint.encoders == {"text": "sentence-transformers:all-MiniLM-L6-v2"}
    assert checkpoint.config.hidden_size == 16 and len(checkpoint.training_log) <= 2
    code, output = run(*args, "--param", "item_drop=1.5")
    assert_user_error(code, output, "item_drop")
