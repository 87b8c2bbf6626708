"""Cold-start evaluation: the warm/cold split, hand-computed warm and cold metrics."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Catalog, Split
from tastemaker.config import EvalConfig, SplitConfig, validate
from tastemaker.data import splits
from tastemaker.data.dataset import split_info
from tastemaker.data.interactions import Interactions
from tastemaker.data.manifest import Manifest
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.cold_start import (
    chance_recall,
    cold_start_report,
    evaluate_cold_start,
    item_groups,
)
from tastemaker.evaluation.ranking import evaluate
from tastemaker.evaluation.report import leaderboard_markdown

from .conftest import make_dataset


class Fixed:
    """Scores from a fixed (users x items) table; records the contexts it was given."""

    name = "fixed"

    def __init__(self, table: list[list[float]]) -> None:
        self.table = torch.tensor(table)
        self.config = EvalConfig()  # any pydantic model: the report dumps it
        self.contexts: list[Interactions | None] = []

    def score_indices(self, user_idx: np.ndarray, context: Interactions | None = None):
        self.contexts.append(context)
        return self.table[torch.from_numpy(np.asarray(user_idx))].clone()


def hand_split() -> Split:
    """Items i0..i7. Train: u1 {i0, i1}, u2 {i1, i2}, u3 {i3}; valid: u2 {i0};
    test: u1 {i2, i5, i6}, u2 {i3, i4}. Warm: i0..i3; cold test items: i4, i5, i6;
    i7 has no interaction at all."""

    def frame(rows: list[tuple[str, str]]) -> pl.DataFrame:
        return pl.DataFrame(
            [(u, i, 1.0, 0) for u, i in rows],
            schema=["user_id", "item_id", "rating", "timestamp"],
            orient="row",
        )

    parts = {
        "train": frame([("u1", "i0"), ("u1", "i1"), ("u2", "i1"), ("u2", "i2"), ("u3", "i3")]),
        "valid": frame([("u2", "i0")]),
        "test": frame([("u1", "i2"), ("u1", "i5"), ("u1", "i6"), ("u2", "i3"), ("u2", "i4")]),
    }
    ids = [f"i{k}" for k in range(8)]
    catalog = Catalog(pl.DataFrame({"item_id": ids, "title": ids}))
    manifest = Manifest(name="hand").model_copy(
        update={"split": split_info("manual", None, {}, parts)}
    )
    return Split(catalog, parts["train"], parts["valid"], parts["test"], manifest)


#           i0   i1   i2   i3   i4   i5   i6   i7
SCORES = [[0.9, 0.8, 0.1, 0.3, 0.5, 0.7, 0.2, 1.0],  # u1
          [0.2, 0.9, 0.8, 0.4, 0.6, 0.1, 0.3, 1.0],  # u2
          [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]  # u3  # fmt: skip


def test_warm_and_cold_metrics_match_hand_computed_values() -> None:
    split = hand_split()
    groups = item_groups(split, "test")
    assert split.items.decode(groups.warm) == ["i0", "i1", "i2", "i3"]
    assert split.items.decode(groups.cold) == ["i4", "i5", "i6"]  # i7: in no part

    scorer = Fixed(SCORES)
    result = evaluate_cold_start(scorer, split, "test", ks=(1, 2), metrics=("recall", "ndcg"))
    # Warm, among i0..i3 (i7 and the cold items never compete), train + valid masked:
    # u1 ranks i3 > i2 with i2 relevant -> recall@1 0, recall@2 1, ndcg@2 1/log2(3);
    # u2 has only i3 left (i1, i2 train, i0 valid) and it is relevant -> all 1.
    warm = result["warm"]
    assert warm["recall@1"] == pytest.approx(0.5) and warm["recall@2"] == pytest.approx(1.0)
    assert warm["ndcg@1"] == pytest.approx(0.5)
    assert warm["ndcg@2"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert warm["coverage@1"] == pytest.approx(1 / 4)  # only i3 is anyone's top 1
    assert (warm["n_users"], warm["n_items"]) == (2, 4)
    # Cold, among i4..i6: u1 (relevant i5, i6) ranks i5 > i4 > i6 -> recall@1 = @2 = 1/2,
    # ndcg@2 = 1 / (1 + 1/log2(3)); u2 (relevant i4) ranks i4 first -> all 1.
    cold = result["cold"]
    assert cold["recall@1"] == pytest.approx(0.75) and cold["recall@2"] == pytest.approx(0.75)
    assert cold["ndcg@1"] == pytest.approx(1.0)
    assert cold["ndcg@2"] == pytest.approx((1 / (1 + 1 / np.log2(3)) + 1) / 2)
    assert cold["coverage@1"] == pytest.approx(2 / 3)  # i5 and i4 of three candidates
    assert (cold["n_users"], cold["n_items"]) == (2, 3)
    # The scorer was given train + valid as context, as in the usual test evaluation.
    assert all(c is not None and len(c) == 6 for c in scorer.contexts)


def test_report_names_each_group_and_tabulates() -> None:
    split = hand_split()
    cfg = EvalConfig(ks=[2], metrics=["recall", "ndcg"])
    report = cold_start_report(Fixed(SCORES), split, "test", cfg)
    assert report.metrics["warm/recall@2"] == pytest.approx(1.0)
    assert report.metrics["cold/recall@2"] == pytest.approx(0.75)
    assert report.metric_names() == ["warm/recall", "warm/ndcg", "warm/coverage",
                                     "cold/recall", "cold/ndcg", "cold/coverage"]  # fmt: skip
    assert "- cold/n_items: 3" in report.to_markdown()
    table = leaderboard_markdown([report], ["warm/recall@2", "cold/recall@2"])
    assert "| fixed | **1.0000** | **0.7500** |" in table


def test_a_random_ranker_finds_k_over_n_cold_items() -> None:
    rows = [(f"u{u}", f"i{i}", 1.0, 0) for u in range(300) for i in range(u % 50, 200, 7)]
    split = splits.cold_start(make_dataset(rows), seed=1, cold_items=0.5)
    n_cold = len(item_groups(split, "test").cold)
    rng = np.random.default_rng(0)
    scorer = Fixed(rng.random((len(split.users), len(split.items))).tolist())
    cold = evaluate_cold_start(scorer, split, "test", ks=(10,), metrics=("recall",))["cold"]
    assert n_cold == 50 and chance_recall(10, n_cold) == pytest.approx(0.2)
    assert cold["recall@10"] == pytest.approx(0.2, abs=0.03)


def test_candidates_must_cover_the_truth() -> None:
    split = hand_split()
    with pytest.raises(DataError, match="outside the candidates"):
        evaluate(Fixed(SCORES), split.test, [split.train], ks=(1,), candidates=np.array([4, 5]))
    with pytest.raises(ConfigError, match="candidates"):
        evaluate(Fixed(SCORES), split.test, [split.train], ks=(1,), candidates=np.array([9]))


# ---------------------------------------------------------------------------- the split
def dataset(n_users: int = 40, n_items: int = 50):
    rows = [(f"u{u}", f"i{i}", 1.0, i) for u in range(n_users) for i in range(u % 5, n_items)]
    return make_dataset(rows)


def test_cold_items_are_held_out_whole_and_warm_ones_split_per_user() -> None:
    ds = dataset()
    split = splits.cold_start(ds, seed=3, cold_items=0.2)
    train_items = set(split.train.frame["item_id"])
    valid_items, test_items = set(split.valid.frame["item_id"]), set(split.test.frame["item_id"])
    cold = set(ds.interactions.frame["item_id"]) - train_items
    assert len(cold) == 10  # 20% of 50 items; each warm item keeps training rows here
    # A cold item's interactions all lie in one of valid / test: 5 items each.
    cold_rows = pl.concat([split.valid.frame, split.test.frame]).filter(
        pl.col("item_id").is_in(list(cold))
    )
    assert (
        cold_rows.height == ds.interactions.frame.filter(pl.col("item_id").is_in(list(cold))).height
    )
    assert len(cold & valid_items) == 5 and len(cold & test_items) == 5
    assert not (cold & valid_items & test_items)
    # Warm interactions: each user's split 8:1:1 (u0 has 40 warm rows -> 32 / 4 / 4).
    warm = pl.col("item_id").is_in(list(cold)).not_()
    sizes = [split.part(p).frame.filter(warm, user_id="u0").height for p in splits.PARTS]
    assert sizes == [32, 4, 4]
    assert split.manifest.split is not None
    assert split.manifest.split.params == {"ratios": [0.8, 0.1, 0.1], "cold_items": 0.2}
    # Seeded; and the default cold_start split is the item split it always was.
    assert splits.cold_start(ds, seed=3, cold_items=0.2).content_hash == split.content_hash
    plain = splits.cold_start(ds, seed=3)
    assert set(plain.train.frame["item_id"]).isdisjoint(plain.test.frame["item_id"])
    assert plain.manifest.split is not None and plain.manifest.split.params == {
        "ratios": [0.8, 0.1, 0.1]
    }
    assert set(evaluate_cold_start(Fixed([[0.0] * 50] * 40), plain, "test")) == {"cold"}


def test_cold_items_option_is_validated() -> None:
    ds = dataset()
    made = splits.make_split(ds, "cold_start", seed=3, cold_items=0.2)
    assert made.content_hash == splits.cold_start(ds, seed=3, cold_items=0.2).content_hash
    with pytest.raises(ConfigError, match="cold_start"):
        splits.make_split(ds, "ratio", cold_items=0.2)
    with pytest.raises(ConfigError, match="share"):
        splits.cold_start(ds, cold_items=1.5)
    with pytest.raises(ConfigError, match="no valid or test"):
        splits.cold_start(ds, ratios=(1, 0, 0), cold_items=0.2)
    with pytest.raises(ConfigError, match="cold_items"):
        validate(SplitConfig, {"kind": "cold_start", "cold_items": 0})
    assert validate(SplitConfig, {"kind": "cold_start", "cold_items": 0.2}).cold_items == 0.2


# ------------------------------------------------------------------ the experiment runner
def _runner(name: str = "multimodal"):
    """benchmarks/NAME.py, loaded as a module (benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_the_experiment_config_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped config reads its folders from TASTEMAKER_DATA (set here: CI sets none)."""
    monkeypatch.setenv("TASTEMAKER_DATA", str(tmp_path))
    runner = _runner()
    root = Path(__file__).resolve().parents[1]
    exp = runner.load_experiment(root / "configs" / "multimodal-ml-latest-small.toml")
    assert exp.split.kind == "cold_start" and exp.split.cold_items == 0.2
    names = [run.name for run in exp.run]
    assert len(names) == len(set(names)) and {"bpr", "clcrec-text+image", "sasrec"} <= set(names)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[run]]\nmodel = "bpr"\nmodalitys = ["text"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="modalitys"):
        runner.load_experiment(bad)


def test_the_runner_scores_runs_merges_earlier_ones_and_notes_the_rest() -> None:
    runner = _runner()
    split = splits.cold_start(dataset(n_users=40, n_items=50), seed=3, cold_items=0.2)
    text = ItemEmbeddings(
        split.items.ids, np.eye(50, dtype=np.float32), np.ones(50, bool), "eye", "text"
    )
    fast = {"epochs": 2, "early_stopping_metric": "ndcg@5"}
    exp = runner.Experiment(
        eval={"ks": [5], "metrics": ["recall"]},
        run=[
            {"model": "bpr", "params": fast},
            {"model": "clcrec", "modalities": ["text"], "params": fast},
            {"model": "no_such_model"},
            {"model": "most_popular"},
        ],
    )
    bpr, clcrec = (runner.run_one(run, split, exp, {"text": text}) for run in exp.run[:2])
    assert clcrec["run"] == "clcrec-text" and clcrec["epochs"] == 2
    with pytest.raises(ConfigError, match="reads no item content"):
        runner.run_one(runner.Run(model="bpr", modalities=["text"]), split, exp, {})

    # A first invocation ran clcrec; a second bpr and met an unregistered model.
    skip = {"run": "no_such_model", "skipped": "model 'no_such_model' is not registered yet"}
    first = runner.merge([clcrec], None, exp, split)
    assert [r["run"] for r in first if "report" in r] == ["clcrec-text"]
    previous = {
        "protocol": runner.protocol(split, exp.eval),
        "experiment": exp.model_dump(mode="json"),
        "runs": first,
    }
    records = runner.merge([bpr, skip], previous, exp, split)
    assert [r["run"] for r in records] == ["bpr", "clcrec-text", "no_such_model", "most_popular"]
    assert records[1] is clcrec and records[2] is skip
    assert records[3]["skipped"] == "not run yet (`--only most_popular`)"
    # Other settings: earlier results are not mixed in.
    other = runner.Experiment(eval={"ks": [10], "metrics": ["recall"]}, run=exp.run)
    assert "skipped" in runner.merge([bpr], previous, other, split)[1]

    result = {
        **previous,
        "date": "today",
        "config": "x.toml",
        "machine": {"platform": "p", "cpu_count": 2, "torch": "t", "torch_threads": 1,
                    "python": "3", "load_average_1min": [1.0, 1.0]},
        "runs": records,
    }  # fmt: skip
    assert result["protocol"]["cold_items"] == 5  # half of the 10 cold items
    report = _runner("multimodal_report")
    page = report.to_markdown(result, report.metric_columns(exp.eval), chart=False)
    cold = clcrec["report"]["metrics"]["cold/recall@5"]
    assert "| clcrec-text | text | " in page and f"{cold:.4f}" in page
    assert "- `no_such_model`: model 'no_such_model' is not registered yet." in page
    assert "chance (a random ranking): warm recall@5 0.1250, cold recall@5 1.0000" in page
