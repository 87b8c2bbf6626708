"""Sequential recommenders (SASRec, GRU4Rec) and the history context of scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Dataset, Interactions, Split
from tastemaker.data.sources.recbole import load_atomic
from tastemaker.data.splits import leave_one_out
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.ranking import evaluate, evaluate_split
from tastemaker.models import GRU4Rec, MostPopular, Recommender, SASRec
from tastemaker.models.sequential import (
    SequentialRecommender,
    last_items,
    time_ordered,
    training_windows,
)

from .conftest import shared_data

PAD = 6  # the toy catalog has items i0..i5, so padding is index 6
# Small, fast settings: what the tests check is learning and plumbing, not accuracy.
FAST = {"max_len": 20, "epochs": 8, "patience": 8, "batch_size": 32, "learning_rate": 1e-2}
SMALL = {
    SASRec: {"hidden_size": 32, "n_layers": 1, "n_heads": 2, "inner_size": 64, "dropout": 0.2},
    GRU4Rec: {"embedding_size": 32, "hidden_size": 32, "dropout": 0.2},
}


# ----------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def loo() -> Split:
    """ml-100k's first 300 users (by ID), leave-one-out by time."""
    dataset = load_atomic(shared_data("ml-100k"))
    ratings = dataset.interactions.frame
    users = ratings["user_id"].unique().sort().head(300)
    kept = ratings.filter(pl.col("user_id").is_in(users.implode()))
    return leave_one_out(dataset.replace(interactions=kept))


@pytest.fixture(scope="module")
def fitted(loo: Split) -> dict[type[SequentialRecommender], SequentialRecommender]:
    # Models this small train several times faster on one thread than on two contended ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {cls: cls(**FAST, **SMALL[cls]).fit(loo.train, loo.valid) for cls in SMALL}
    finally:
        torch.set_num_threads(threads)


def _toy_split(toy: Dataset) -> Split:
    return leave_one_out(toy)


# ------------------------------------------------------------ sequence layout
def test_sequences_follow_time_order_and_keep_the_last_max_len(toy: Dataset) -> None:
    # Rows shuffled, so only the timestamps give the order.
    shuffled = toy.interactions.with_frame(toy.interactions.frame.reverse())
    users, items = time_ordered(shuffled)
    sequences, lengths = last_items(users, items, n_users=3, n_items=PAD, max_len=3)
    assert sequences.tolist() == [[2, 3, 4], [0, 2, 5], [1, PAD, PAD]]
    assert lengths.tolist() == [3, 3, 1]


def test_equal_timestamps_keep_row_order(toy: Dataset) -> None:
    frame = toy.interactions.frame.with_columns(timestamp=pl.lit(7, dtype=pl.Int64))
    users, items = time_ordered(toy.interactions.with_frame(frame))
    sequences, _ = last_items(users, items, n_users=3, n_items=PAD, max_len=5)
    assert sequences[0].tolist() == [0, 1, 2, 3, 4]


def test_training_windows_hold_every_next_item_once(toy: Dataset) -> None:
    users, items = time_ordered(toy.interactions)
    inputs, targets = training_windows(users, items, n_users=3, n_items=PAD, max_len=2)
    # u1: 0 1 2 3 4 → windows (from the newest) [2 3]→[3 4] and [0 1]→[1 2];
    # u2: 0 2 5 → [0 2]→[2 5]; u3 has one item, so no pair.
    windows = sorted(zip(inputs.tolist(), targets.tolist(), strict=True))
    assert windows == [([0, 1], [1, 2]), ([0, 2], [2, 5]), ([2, 3], [3, 4])]
    inputs, targets = training_windows(users, items, n_users=3, n_items=PAD, max_len=3)
    windows = sorted(zip(inputs.tolist(), targets.tolist(), strict=True))
    assert windows == [([0, 2, PAD], [2, 5, PAD]), ([0, PAD, PAD], [1, PAD, PAD]),
                       ([1, 2, 3], [2, 3, 4])]  # fmt: skip


def test_concat_appends_rows_on_shared_vocabularies(toy: Dataset) -> None:
    split = _toy_split(toy)
    both = Interactions.concat([split.train, split.valid])
    assert len(both) == len(split.train) + len(split.valid)
    assert both.users is split.train.users and both.items is split.train.items
    fresh = split.train.with_frame(both.frame)  # indices encoded from the raw IDs
    for reused, encoded in zip(both.indices(), fresh.indices(), strict=True):
        assert np.array_equal(reused, encoded)
    with pytest.raises(DataError, match="vocabularies"):
        Interactions.concat([split.train, Interactions(split.valid.frame)])


# ------------------------------------------------------------------- context
class RecordingScorer:
    """Scores nothing useful; remembers the context of every call."""

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.contexts: list[Interactions | None] = []

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        self.contexts.append(context)
        return torch.zeros(len(user_idx), self.n_items)


def test_evaluator_passes_what_is_known_as_context(loo: Split) -> None:
    scorer = RecordingScorer(len(loo.train.items))
    evaluate_split(scorer, loo, "test", ks=(10,), batch_size=100)
    assert len(scorer.contexts) == 3  # 300 users in chunks of 100, one context for all
    context = scorer.contexts[0]
    assert context is not None and all(c is context for c in scorer.contexts)
    expected = pl.concat([loo.train.frame, loo.valid.frame])
    assert context.frame.equals(expected)

    scorer.contexts.clear()
    evaluate_split(scorer, loo, "valid", ks=(10,))
    assert scorer.contexts == [loo.train]
    scorer.contexts.clear()
    evaluate(scorer, loo.valid, ks=(10,))
    assert scorer.contexts == [None]


def test_scores_follow_the_context(
    fitted: dict[type[SequentialRecommender], SequentialRecommender], loo: Split
) -> None:
    model = fitted[SASRec]
    users = np.arange(20)
    known = Interactions.concat([loo.train, loo.valid])
    from_train = model.score_indices(users, loo.train)
    assert torch.equal(from_train, model.score_indices(users))  # None = stored train sequences
    from_known = model.score_indices(users, known)
    # Every one of these users has a validation item, the last in its history now.
    assert not torch.allclose(from_train, from_known)
    assert all(not torch.allclose(a, b) for a, b in zip(from_train, from_known, strict=True))
    with pytest.raises(DataError, match="vocabularies"):
        model.score_indices(users, Interactions(loo.valid.frame))


def test_recommend_with_context_excludes_what_it_knows(
    fitted: dict[type[SequentialRecommender], SequentialRecommender], loo: Split
) -> None:
    model = fitted[GRU4Rec]
    known = Interactions.concat([loo.train, loo.valid])
    users = loo.valid.frame["user_id"].head(30).to_list()
    recs = model.recommend(users, k=50, context=known)
    pairs = recs.select("user_id", "item_id")
    assert pairs.join(known.frame, on=["user_id", "item_id"], how="semi").is_empty()
    plain = model.recommend(users, k=50).select("user_id", "item_id")
    # Without the context the validation items may be recommended (they are good guesses).
    assert not plain.join(loo.valid.frame, on=["user_id", "item_id"], how="semi").is_empty()


# ------------------------------------------------------------------ learning
def test_sequential_models_beat_most_popular(
    fitted: dict[type[SequentialRecommender], SequentialRecommender], loo: Split
) -> None:
    floor = evaluate_split(MostPopular().fit(loo.train), loo, "valid", ks=(10,))["ndcg@10"]
    for model in fitted.values():
        ndcg = evaluate_split(model, loo, "valid", ks=(10,))["ndcg@10"]
        assert ndcg > max(2 * floor, floor + 0.03), (model.name, ndcg, floor)
        assert model.training_log is not None and len(model.training_log) >= 2


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_outputs_are_causal(cls: type[SequentialRecommender], toy: Dataset) -> None:
    model = cls(max_len=6, epochs=1, **SMALL[cls]).fit(toy.interactions)
    assert model.network is not None
    model.network.eval()
    original = torch.tensor([[0, 1, 2, 3, 4, 5]])
    changed = original.clone()
    changed[0, 3] = 0
    with torch.no_grad():
        before, after = model.network(original), model.network(changed)
    assert torch.allclose(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_sasrec_scoring_path_equals_the_full_forward_pass(toy: Dataset) -> None:
    """Scoring runs the last layer for the last position only, in chunks of users: it must
    give the states of the plain forward pass, for every history length."""
    model = SASRec(max_len=6, epochs=1, n_layers=2, hidden_size=32, n_heads=2).fit(toy.interactions)
    assert model.network is not None
    model.network.eval()
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6, 1, 3, 5, 2, 4] * 50)  # 300 rows: more than one scoring chunk
    sequences = torch.randint(model.n_items, (len(lengths), 6), generator=generator)
    sequences[torch.arange(6) >= lengths[:, None]] = model.n_items  # right padding
    model.sequences, model.lengths = sequences, lengths
    with torch.no_grad():
        full = model.network(sequences)[torch.arange(len(lengths)), lengths - 1]
    fast = model.user_states(np.arange(len(lengths)))
    assert torch.allclose(fast, full, atol=1e-5)
    assert not torch.allclose(fast[0], fast[1])


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec])
def test_bpr_loss_trains(cls: type[SequentialRecommender], toy: Dataset) -> None:
    state = torch.get_rng_state()
    model = cls(loss_type="bpr", n_negatives=3, epochs=2, **SMALL[cls]).fit(toy.interactions)
    again = cls(loss_type="bpr", n_negatives=3, epochs=2, **SMALL[cls]).fit(toy.interactions)
    assert torch.equal(torch.get_rng_state(), state)  # private randomness only
    assert torch.equal(model.score_indices(np.arange(3)), again.score_indices(np.arange(3)))
    assert model.training_log is not None
    assert all(np.isfinite(row["loss"]) for row in model.training_log)


# --------------------------------------------------------------- persistence
def test_save_load_round_trips(
    fitted: dict[type[SequentialRecommender], SequentialRecommender],
    loo: Split,
    tmp_path: Path,
) -> None:
    known = Interactions.concat([loo.train, loo.valid])
    users = np.arange(len(loo.train.users))
    for model in fitted.values():
        loaded = Recommender.load(model.save(tmp_path / model.name))
        assert type(loaded) is type(model) and loaded.config == model.config
        assert torch.equal(loaded.score_indices(users), model.score_indices(users))
        assert torch.equal(loaded.score_indices(users, known), model.score_indices(users, known))


def test_load_rejects_weights_of_another_config(toy: Dataset, tmp_path: Path) -> None:
    path = SASRec(epochs=1, **SMALL[SASRec]).fit(toy.interactions).save(tmp_path / "m")
    config = path / "config.json"
    config.write_text(config.read_text().replace('"hidden_size": 32', '"hidden_size": 16'))
    with pytest.raises(
        DataError, match=r"says hidden_size=16 but the weights were trained with hidden_size=32"
    ):
        Recommender.load(path)


# -------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("cls", "params", "field"),
    [
        (SASRec, {"hidden_size": 64, "n_heads": 3}, "n_heads"),
        (SASRec, {"max_len": 0}, "max_len"),
        (SASRec, {"dropout": 1.0}, "dropout"),
        (GRU4Rec, {"loss_type": "bce"}, "loss_type"),
        (GRU4Rec, {"n_negatives": 0}, "n_negatives"),
    ],
)
def test_bad_config_names_the_field(
    cls: type[SequentialRecommender], params: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        cls(**params)


def test_needs_timestamps_and_a_next_item(toy: Dataset) -> None:
    untimed = toy.interactions.frame.with_columns(timestamp=pl.lit(None, dtype=pl.Int64))
    with pytest.raises(DataError, match="timestamp"):
        GRU4Rec(epochs=1).fit(toy.interactions.with_frame(untimed))
    single = toy.interactions.frame.unique("user_id", keep="first")
    with pytest.raises(DataError, match="two training interactions"):
        GRU4Rec(epochs=1).fit(toy.interactions.with_frame(single))
