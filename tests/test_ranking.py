"""Batched full-ranking evaluation: hand-worked rankings, masking, and a per-user reference."""

from __future__ import annotations

import importlib.util
import sys
from math import log2
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Split, split_info
from tastemaker.data.interactions import Interactions
from tastemaker.data.manifest import Manifest
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation import evaluate, evaluate_split

from .conftest import shared_data

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_benchmark():
    """The throughput benchmark holds the per-user reference loop: one reference, used twice."""
    path = BENCHMARKS / "evaluation_throughput.py"
    if str(BENCHMARKS) not in sys.path:  # it imports data_root, as a script run from there
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("evaluation_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()
evaluate_per_user = bench.evaluate_per_user


class FixedScorer:
    """Scores read from a fixed users x items matrix."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.scores[torch.from_numpy(np.asarray(user_idx))]


def _frame(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs]},
        schema={"user_id": pl.Utf8, "item_id": pl.Utf8},
    )


# Users a, b, c, d (indices 0..3) and items i0..i5 (indices 0..5).
# Rankings by score: a: i0 i1 i2 i3 i4 i5    b: i5 i4 i3 i2 i1 i0
#                    c: i1 i3 i5 i0 i4 i2    d: i2 i5 i1 i4 i0 i3
SCORES = np.array(
    [
        [6, 5, 4, 3, 2, 1],
        [1, 2, 3, 4, 5, 6],
        [3, 6, 1, 5, 2, 4],
        [2, 4, 6, 1, 3, 5],
    ]
)
TRAIN = [("a", "i0"), ("b", "i5"), ("c", "i1"), ("d", "i2")]
VALID = [("a", "i1"), ("b", "i3"), ("c", "i0"), ("d", "i3")]
TEST = [("a", "i2"), ("a", "i4"), ("b", "i4"), ("c", "i3")]  # d has no test item


@pytest.fixture()
def tiny_split() -> Split:
    catalog = Catalog(pl.DataFrame({"item_id": [f"i{i}" for i in range(6)]}))
    parts = {"train": _frame(TRAIN), "valid": _frame(VALID), "test": _frame(TEST)}
    manifest = Manifest(name="tiny", split=split_info("random", 0, {}, parts))
    return Split(catalog, parts["train"], parts["valid"], parts["test"], manifest)


def test_valid_masks_train(tiny_split: Split) -> None:
    # Train masked → a: i1 i2 …  b: i4 i3 …  c: i3 i5 i0 …  d: i5 i1 …
    # Valid truth a:{i1} b:{i3} c:{i0} d:{i3} → hits@2: a [1,0], b [0,1], c [0,0], d [0,0]
    result = evaluate_split(FixedScorer(SCORES), tiny_split, "valid", ks=(1, 2))
    assert result["n_users"] == 4
    assert result["recall@1"] == pytest.approx(1 / 4)
    assert result["recall@2"] == pytest.approx(2 / 4)
    assert result["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 4)
    assert result["mrr@2"] == pytest.approx((1 + 1 / 2) / 4)
    assert result["ndcg@2"] == pytest.approx((1 + 1 / log2(3)) / 4)
    # top-1: a i1, b i4, c i3, d i5 → 4/6; top-2 adds i2, i3, i5, i1 → {1,2,3,4,5} = 5/6
    assert result["coverage@1"] == pytest.approx(4 / 6)
    assert result["coverage@2"] == pytest.approx(5 / 6)


def test_test_masks_train_and_valid(tiny_split: Split) -> None:
    # Train and valid masked → a: i2 i3 i4 i5   b: i4 i2 i1 i0   c: i3 i5 i4 i2
    # Test truth a:{i2,i4} b:{i4} c:{i3}; d has none and is left out.
    # hits@3: a [1,0,1], b [1,0,0], c [1,0,0]
    result = evaluate_split(FixedScorer(SCORES), tiny_split, "test", ks=(1, 3))
    assert result["n_users"] == 3
    assert result["recall@1"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert result["recall@3"] == pytest.approx(1.0)
    assert result["hit@1"] == pytest.approx(1.0)
    assert result["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    # a: (1 + 1/log2(4)) / (1 + 1/log2(3)); b, c: 1
    assert result["ndcg@3"] == pytest.approx(((1 + 1 / log2(4)) / (1 + 1 / log2(3)) + 2) / 3)
    # a: (1/1 + 2/3) / min(2, 3) = 5/6; b, c: 1
    assert result["map@3"] == pytest.approx((5 / 6 + 2) / 3)
    # top-1 {i2, i4, i3} = 3/6; top-3 {i1..i5} = 5/6
    assert result["coverage@1"] == pytest.approx(3 / 6)
    assert result["coverage@3"] == pytest.approx(5 / 6)


def test_unmasked_valid_changes_test_result(tiny_split: Split) -> None:
    # Masking only train, a's top-1 is i1 (a valid item), so a misses at K=1.
    result = evaluate(FixedScorer(SCORES), tiny_split.test, [tiny_split.train], ks=(1,))
    assert result["recall@1"] == pytest.approx((0 + 1 + 1) / 3)


def test_masked_items_are_never_recommended() -> None:
    # One user, items i0 i1 i2; train i0 i1 is masked, truth {i0, i2}: only i2 can be
    # recommended, so at K = 2: hits [1, 0] → recall 1/2, precision 1/2, coverage 1/3.
    users, items = Vocab(["a"], kind="user"), Vocab(["i0", "i1", "i2"], kind="item")
    train = Interactions(_frame([("a", "i0"), ("a", "i1")]), users, items)
    truth = Interactions(_frame([("a", "i0"), ("a", "i2")]), users, items)
    result = evaluate(FixedScorer(np.array([[3.0, 2.0, 1.0]])), truth, [train], ks=(2,))
    assert result["recall@2"] == pytest.approx(1 / 2)
    assert result["precision@2"] == pytest.approx(1 / 2)
    assert result["coverage@2"] == pytest.approx(1 / 3)


def test_infinite_scores_still_rank_and_gradients_are_off(tiny_split: Split) -> None:
    # a's test truth i2 forced to +inf ranks first once train and valid are masked:
    # a: i2 i3 … (hit at 1); b: i4 …; c: i3 … → recall@1 = (1/2 + 1 + 1) / 3, as without it.
    scores = torch.as_tensor(SCORES, dtype=torch.float32).requires_grad_()
    forced = scores.detach().clone()
    forced[0, 2] = float("inf")

    class GradScorer:
        def score_indices(
            self, user_idx: np.ndarray, context: Interactions | None = None
        ) -> torch.Tensor:
            assert not torch.is_grad_enabled()
            return (forced + 0 * scores)[torch.from_numpy(user_idx)]

    result = evaluate_split(GradScorer(), tiny_split, "test", ks=(1,))
    assert result["recall@1"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert result["coverage@1"] == pytest.approx(3 / 6)


def test_metric_selection_and_keys(tiny_split: Split) -> None:
    result = evaluate(FixedScorer(SCORES), tiny_split.test, ks=(2,), metrics=("ndcg",))
    assert set(result) == {"ndcg@2", "coverage@2", "n_users"}


def test_scorer_tensor_is_not_modified(tiny_split: Split) -> None:
    scorer = FixedScorer(SCORES)

    class ViewScorer:  # returns a view of its own state, which masking must not write into
        def score_indices(
            self, user_idx: np.ndarray, context: Interactions | None = None
        ) -> torch.Tensor:
            return scorer.scores[int(user_idx[0]) : int(user_idx[-1]) + 1]

    evaluate_split(ViewScorer(), tiny_split, "valid", ks=(2,))
    assert torch.equal(scorer.scores, torch.as_tensor(SCORES, dtype=torch.float32))


def _random_case(seed: int) -> tuple[FixedScorer, Interactions, list[Interactions]]:
    """40 users x 50 items: random train/valid/truth, 3 users without truth, and one user
    (u05) with fewer unmasked items than K whose truth overlaps train."""
    rng = np.random.default_rng(seed)
    users = Vocab([f"u{i:02d}" for i in range(40)], kind="user")
    items = Vocab([f"i{i:02d}" for i in range(50)], kind="item")

    def part(density: float, no_rows_for: range) -> Interactions:
        mask = rng.random((40, 50)) < density
        mask[no_rows_for] = False
        u, i = np.nonzero(mask)
        frame = pl.DataFrame({"user_id": users.decode(u), "item_id": items.decode(i)})
        return Interactions(frame, users, items)

    train = part(0.2, range(0))
    busy = train.frame.filter(pl.col("user_id") != "u05")
    heavy = pl.DataFrame({"user_id": ["u05"] * 45, "item_id": items.ids[:45]})
    train = train.with_frame(pl.concat([busy.select("user_id", "item_id"), heavy]))
    valid = part(0.05, range(0))
    truth = part(0.1, range(37, 40))
    # u05's truth repeats all its train items: none of them may count, even when top-K
    # has to fill up with masked (-inf) items.
    truth = truth.with_frame(pl.concat([truth.frame, heavy], how="diagonal_relaxed"))
    return FixedScorer(rng.random((40, 50))), truth, [train, valid]


@pytest.mark.parametrize("batch_size", [1, 7, 16, 1024])
def test_batched_equals_per_user_reference(batch_size: int) -> None:
    scorer, truth, exclude = _random_case(seed=batch_size)
    ks = (1, 5, 10)
    batched = evaluate(scorer, truth, exclude, ks=ks, batch_size=batch_size)
    reference = evaluate_per_user(scorer, truth, exclude, ks=ks)
    assert batched["n_users"] == 37
    assert batched.keys() == reference.keys()
    for key, value in reference.items():
        assert batched[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_batch_size_does_not_change_results() -> None:
    scorer, truth, exclude = _random_case(seed=3)
    one = evaluate(scorer, truth, exclude, ks=(3, 10), batch_size=37)
    other = evaluate(scorer, truth, exclude, ks=(3, 10), batch_size=5)
    assert one == pytest.approx(other, rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("recall", "auc")}, "choose from recall, precision, hit, mrr, ndcg, map"),
        ({"metrics": ()}, "choose from"),
        ({"ks": (0, 10)}, "K must be >= 1"),
        ({"ks": ()}, "K must be >= 1"),
        ({"ks": (7,)}, "larger than the catalog"),
        ({"ks": (2,), "batch_size": 0}, "batch size"),
    ],
)
def test_bad_options_are_config_errors(tiny_split: Split, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        evaluate(FixedScorer(SCORES), tiny_split.test, **kwargs)


def test_bad_part_is_config_error(tiny_split: Split) -> None:
    with pytest.raises(ConfigError, match="use one of valid, test"):
        evaluate_split(FixedScorer(SCORES), tiny_split, "train")  # type: ignore[arg-type]


def test_empty_truth_is_data_error(tiny_split: Split) -> None:
    empty = tiny_split.test.with_frame(tiny_split.test.frame.head(0))
    with pytest.raises(DataError, match="empty"):
        evaluate(FixedScorer(SCORES), empty, ks=(2,))


def test_foreign_vocabulary_is_data_error(tiny_split: Split) -> None:
    foreign = Interactions(_frame(TRAIN))  # its own, smaller item vocabulary
    with pytest.raises(DataError, match="different user or item vocabularies"):
        evaluate(FixedScorer(SCORES), tiny_split.test, [foreign], ks=(2,))


def test_wrong_score_shape_is_data_error(tiny_split: Split) -> None:
    with pytest.raises(DataError, match="shape"):
        evaluate(FixedScorer(SCORES[:, :5]), tiny_split.test, ks=(2,))


def test_nan_scores_are_data_error(tiny_split: Split) -> None:
    scores = SCORES.astype(float)
    scores[2, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate(FixedScorer(scores), tiny_split.test, ks=(2,))


def test_batched_equals_reference_on_ml100k() -> None:
    train, test = bench.random_split(bench.load_ratings(shared_data("ml-100k")))
    scorer = bench.PureSVD(train, factors=16)
    batched = evaluate(scorer, test, [train], ks=(5, 20), batch_size=300)
    reference = evaluate_per_user(scorer, test, [train], ks=(5, 20))
    assert batched["n_users"] == test.n_active_users
    for key, value in reference.items():
        assert batched[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
