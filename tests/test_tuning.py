"""Hyper-parameter search: typed spaces, budgets, outputs, and selection on validation only.

Real data: the 100 most active users of ml-latest-small and the items at least ten
of them rated, random 8:1:1, where one trial takes well under a second.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tastemaker import Split, experiment
from tastemaker.config import FeaturesConfig
from tastemaker.data.dataset import split_info
from tastemaker.data.filters import k_core
from tastemaker.data.sources.movielens import load_movielens
from tastemaker.data.splits import leave_one_out, random_ratio
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.models import Recommender, create_model
from tastemaker.tuning import (
    BEST_JSON,
    BEST_MODEL,
    SYNTAX,
    TRIALS_CSV,
    TRIALS_MD,
    TRIALS_PNG,
    Choice,
    IntRange,
    LogUniform,
    Uniform,
    parse_space,
    tune,
)

from .conftest import most_active, shared_data
from .test_cli import assert_user_error, run
from .test_experiment_features import HashText, fake_text  # noqa: F401 (fixture)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: retraining is bit-identical, and on a loaded 2-core machine
    these small models train several times faster than with two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small() -> Split:
    dataset = most_active(load_movielens(shared_data("ml-latest-small")), 100)
    return random_ratio(k_core(dataset, 1, 10), seed=42)


@pytest.fixture(scope="module")
def small_loo() -> Split:
    """The same users and items, each user's last item held out (for sequential models)."""
    dataset = most_active(load_movielens(shared_data("ml-latest-small")), 100)
    return leave_one_out(k_core(dataset, 1, 10))


def random_features(split: Split, dim: int = 8, seed: int = 0) -> dict[str, ItemEmbeddings]:
    """Small random text vectors for every catalog item (a tenth of them missing)."""
    rng = np.random.default_rng(seed)
    ids = split.catalog.vocab.ids
    vectors = rng.normal(size=(len(ids), dim)).astype(np.float32)
    mask = rng.random(len(ids)) >= 0.1
    vectors[~mask] = 0
    return {"text": ItemEmbeddings(ids, vectors, mask, "random-text", "text")}


def valid_ndcg(model: Recommender, split: Split) -> float:
    return evaluate_split(model, split, "valid", ks=(10,), metrics=("ndcg",))["ndcg@10"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ search space
def test_space_strings_parse_to_typed_ranges() -> None:
    space = parse_space(
        [
            "learning_rate=log:1e-4..1e-2",
            "factors=choice:32,64,128",
            "reg=1e-3..1e-1",
            "n_layers=int:1..3",
            "kind = choice:dot,cos",
        ]
    )
    assert space == {
        "learning_rate": LogUniform(1e-4, 1e-2),
        "factors": Choice([32, 64, 128]),
        "reg": Uniform(1e-3, 1e-1),
        "n_layers": IntRange(1, 3),
        "kind": Choice(["dot", "cos"]),
    }
    assert [type(v) for v in space["factors"].values] == [int, int, int]
    # The written form parses back to the same range (best.json records it).
    assert parse_space({name: str(p) for name, p in space.items()}) == space
    # A TOML list is a choice; typed params pass through.
    assert parse_space({"factors": [8, 16], "reg": Uniform(0, 1)}) == {
        "factors": Choice([8, 16]),
        "reg": Uniform(0, 1),
    }


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("learning_rate", "learning_rate"),  # no '='
        ("learning_rate=1e-3", "learning_rate"),  # no range
        ("learning_rate=log:1e-4..", "learning_rate"),
        ("learning_rate=log:-1..1e-2", "greater than 0"),
        ("learning_rate=log:1e-2..1e-4", "below"),
        ("factors=choice:", "factors"),
        ("factors=choice:32,,64", "factors"),
        ("n_layers=int:1.5..3", "n_layers"),
        ("reg=normal:0..1", "reg"),
    ],
)
def test_bad_space_string_shows_the_syntax(entry: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_space([entry])
    assert needle in info.value.problem
    assert info.value.fix == SYNTAX.rstrip(".")
    assert "learning_rate=log:1e-4..1e-2" in str(info.value)


def test_bad_setup_fails_before_training(small: Split, tmp_path: Path) -> None:
    cases = [
        (dict(model_name="bpr", space=["depth=int:1..3"], n_trials=2), "depth"),
        (dict(model_name="bpr", space=["reg=0..0.1"], sampler="grid"), "reg"),
        (dict(model_name="bpr", space=["reg=0..0.1"]), "budget"),
        (dict(model_name="bpr", space=["reg=0..0.1"], n_trials=2, metric="auc@10"), "auc@10"),
        (dict(model_name="bpr", space=[], n_trials=2), "empty"),
        (
            dict(model_name="bpr", space=["reg=0..0.1"], n_trials=2, params={"factors": 0}),
            "factors",
        ),
        (dict(model_name="bpr", space=["reg=0..1"], n_trials=2, params={"reg": 0.1}), "reg"),
        (dict(model_name="nope", space=["reg=0..0.1"], n_trials=2), "nope"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            tune(small, out=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the search
def test_tiny_search_scores_each_trial_on_validation(small: Split, tmp_path: Path) -> None:
    fixed = {"epochs": 3, "batch_size": 4096}
    result = tune(
        small,
        "bpr",
        ["learning_rate=log:3e-3..3e-2", "factors=choice:8,16"],
        params=fixed,
        n_trials=3,
        seed=7,
        out=tmp_path,
        save_best=True,
    )
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert all(t.state == "complete" and t.epochs == 3 for t in result.trials)
    # Each recorded value is what that configuration scores on valid when trained anew.
    for trial in result.trials:
        model = create_model("bpr", **fixed, **trial.params).fit(small.train, small.valid)
        assert trial.best_epoch == model.best_epoch
        assert trial.value == pytest.approx(valid_ndcg(model, small), abs=1e-9)
    assert result.best.value == max(t.value for t in result.trials)

    rows = read_csv(tmp_path / TRIALS_CSV)
    assert [float(r["ndcg@10"]) for r in rows] == [t.value for t in result.trials]
    assert [int(r["param_factors"]) for r in rows] == [t.params["factors"] for t in result.trials]
    assert {r["state"] for r in rows} == {"complete"} and {r["epochs"] for r in rows} == {"3"}
    markdown = (tmp_path / TRIALS_MD).read_text()
    assert markdown.count("| complete |") == 3 and f"**{result.best.value:.4f}**" in markdown
    assert (tmp_path / TRIALS_PNG).read_bytes().startswith(PNG_MAGIC)
    best = json.loads((tmp_path / BEST_JSON).read_text())
    assert best["params"] == result.best_params and best["value"] == result.best.value
    assert best["trial"] == result.best.number and best["content_hash"] == small.content_hash
    assert best["config"]["factors"] == result.best_params["factors"]
    # --save-best: the saved model is the best trial's, scoring the same on valid.
    saved = Recommender.load(tmp_path / BEST_MODEL)
    assert valid_ndcg(saved, small) == pytest.approx(result.best.value, abs=1e-9)


def test_grid_visits_exactly_the_grid_and_records_failures(small: Split, tmp_path: Path) -> None:
    result = tune(
        small, "itemknn", ["k=choice:0,5,20", "shrink=choice:0,10"], sampler="grid", out=tmp_path
    )
    visited = [(t.params["k"], t.params["shrink"]) for t in result.trials]
    assert sorted(visited) == sorted(itertools.product([0, 5, 20], [0, 10]))
    # k=0 is invalid for ItemKNN: those trials fail with the model's message, the rest run.
    failed = [t for t in result.trials if t.state == "failed"]
    assert sorted(t.params["shrink"] for t in failed) == [0, 10]
    assert all(t.params["k"] == 0 and t.value is None and "k=0" in t.error for t in failed)
    done = [t for t in result.trials if t.state == "complete"]
    assert len(done) == 4 and result.best.value == max(t.value for t in done)
    for trial in done:  # ItemKNN is deterministic: re-scoring gives the same number
        model = create_model("itemknn", **trial.params).fit(small.train)
        assert trial.value == pytest.approx(valid_ndcg(model, small), abs=1e-12)
    rows = read_csv(tmp_path / TRIALS_CSV)
    assert [r["state"] for r in rows] == [t.state for t in result.trials]
    assert all("k=0" in r["error"] for r in rows if r["state"] == "failed")
    assert json.loads((tmp_path / BEST_JSON).read_text())["n_failed"] == 2


def test_all_trials_failing_is_an_error_with_the_trials_written(
    small: Split, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="all 2 trials") as info:
        tune(small, "itemknn", ["k=int:-1..0"], sampler="grid", out=tmp_path)
    assert "k=" in info.value.problem
    assert len(read_csv(tmp_path / TRIALS_CSV)) == 2 and not (tmp_path / BEST_JSON).exists()


def test_timeout_stops_the_search(small: Split, tmp_path: Path) -> None:
    result = tune(small, "itemknn", ["k=int:1..200"], n_trials=50, timeout_s=1e-6, out=tmp_path)
    assert len(result.trials) == 1
    assert len(read_csv(tmp_path / TRIALS_CSV)) == 1
    # The trial budget alone stops it too.
    assert len(tune(small, "itemknn", ["k=int:1..200"], n_trials=2).trials) == 2


def test_selection_ignores_the_test_part(small: Split) -> None:
    space = ["k=choice:2,50"]
    first = tune(small, "itemknn", space, sampler="grid")
    winner = first.best_model
    loser_params = next(t.params for t in first.trials if t is not first.best)
    loser = create_model("itemknn", **loser_params).fit(small.train)
    # A test part made of the loser's top items that the winner does not rank in its
    # top 10 (minus validation items): on it, the test ranking of the two flips.
    users = small.users.ids
    picks = loser.recommend(users, k=10).join(
        winner.recommend(users, k=10), on=["user_id", "item_id"], how="anti"
    )
    test = picks.join(small.valid.frame, on=["user_id", "item_id"], how="anti").select(
        "user_id", "item_id"
    )
    parts = {"train": small.train.frame, "valid": small.valid.frame, "test": test}
    manifest = small.manifest.model_copy(update={"split": split_info("ratio", 42, {}, parts)})
    rigged = Split(small.catalog, *parts.values(), manifest=manifest)
    assert rigged.content_hash != small.content_hash

    def test_ndcg(model: Recommender) -> float:
        return evaluate_split(model, rigged, "test", ks=(10,), metrics=("ndcg",))["ndcg@10"]

    assert test_ndcg(loser) > test_ndcg(winner) + 0.1
    second = tune(rigged, "itemknn", space, sampler="grid")
    assert second.best_params == first.best_params
    assert [t.value for t in second.trials] == [t.value for t in first.trials]


# ------------------------------------------------------------------ content models
CONTENT_CASES = {
    "vbpr": {
        "modalities": ["text"],
        "epochs": 3,
        "factors": 8,
        "content_factors": 8,
        "batch_size": 4096,
    },
    "mm_sasrec": {
        "modalities": ["text"],
        "epochs": 2,
        "hidden_size": 16,
        "n_layers": 1,
        "n_heads": 1,
        "max_len": 20,
    },
}


@pytest.mark.parametrize("name", list(CONTENT_CASES))
def test_content_models_tune_with_features(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    split: Split = request.getfixturevalue("small_loo" if name == "mm_sasrec" else "small")
    features = random_features(split)
    result = tune(
        split,
        name,
        ["learning_rate=log:1e-3..1e-2"],
        params=CONTENT_CASES[name],
        n_trials=2,
        features=features,
        out=tmp_path,
    )
    assert [t.state for t in result.trials] == ["complete", "complete"], result.trials
    assert all(np.isfinite(t.value) for t in result.trials)
    assert result.best.value == max(t.value for t in result.trials)
    # The best model holds the given features, aligned to its item vocabulary.
    aligned = features["text"].align(result.best_model.items)
    assert np.array_equal(result.best_model.content["text"].numpy(), aligned.vectors)
    assert {r["state"] for r in read_csv(tmp_path / TRIALS_CSV)} == {"complete"}


def test_features_are_encoded_once_for_every_trial(
    small: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []

    def encode(catalog, modalities, cfg=None, **_):
        calls.append(tuple(modalities))
        return random_features(small)

    monkeypatch.setattr(experiment, "item_features", encode)
    params = {**CONTENT_CASES["vbpr"], "epochs": 2}
    result = tune(small, "vbpr", ["reg=choice:0.0,0.01,0.1"], sampler="grid", params=params,
                  features=FeaturesConfig())  # fmt: skip
    assert len(result.trials) == 3 and {t.state for t in result.trials} == {"complete"}
    assert calls == [("text",)]
    # A model that reads no content encodes nothing.
    tune(small, "itemknn", ["k=choice:5,20"], sampler="grid", features=FeaturesConfig())
    assert calls == [("text",)]


@pytest.mark.usefixtures("fake_text")
def test_tune_command_gives_content_models_the_features_table(small: Split, tmp_path: Path) -> None:
    small.save(tmp_path / "split")
    cfg = tmp_path / "tune.toml"
    cfg.write_text(f'[features]\nstore = "{tmp_path / "store"}"\ntemplate = "{{title}}"\n')
    out = tmp_path / "search"
    code, output = run(
        "tune", "--data", tmp_path / "split", "--config", cfg, "--model", "vbpr",
        "--space", "learning_rate=log:1e-3..1e-2", "--trials", "2",
        "--param", 'modalities=["text"]', "--param", "epochs=2", "--param", "factors=8",
        "--out", out,
    )  # fmt: skip
    assert code == 0, output
    rows = read_csv(out / TRIALS_CSV)
    assert [r["state"] for r in rows] == ["complete", "complete"] and not any(
        r["error"] for r in rows
    )
    assert json.loads((out / BEST_JSON).read_text())["n_failed"] == 0
    assert "2 trials (0 failed)" in output
    # Encoded once through the store the [features] table names, with its template.
    titles = small.catalog.frame["title"].to_list()
    assert sorted(HashText.calls) == sorted(set(titles))
    assert any((tmp_path / "store").iterdir())


# ------------------------------------------------------------------ the CLI
def test_tune_command_merges_config_and_flags(small: Split, tmp_path: Path) -> None:
    small.save(tmp_path / "split")
    cfg = tmp_path / "tune.toml"
    cfg.write_text(
        '[model]\nname = "itemknn"\n[tune]\nsampler = "grid"\ntrials = 9\n'
        "[tune.space]\nshrink = [0, 10]\n"
    )
    out = tmp_path / "search"
    code, output = run(
        "tune", "--data", tmp_path / "split", "--config", cfg, "--space", "k=choice:5,20",
        "--trials", "3", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    rows = read_csv(out / TRIALS_CSV)
    assert len(rows) == 3  # the flag (3) wins over the file (9); the grid has 4 points
    assert {r["param_shrink"] for r in rows} <= {"0", "10"} and {r["param_k"] for r in rows} <= {
        "5",
        "20",
    }
    best = json.loads((out / BEST_JSON).read_text())
    assert best["model"] == "itemknn" and best["sampler"] == "grid"
    assert "3 trials (0 failed)" in output and f"{best['value']:.4f}" in output

    code, output = run(
        "tune", "--data", tmp_path / "split", "--model", "itemknn", "--space", "k=5..",
        "--trials", "1", "--out", tmp_path / "bad",
    )  # fmt: skip
    assert_user_error(code, output, "k=", "learning_rate=log:1e-4..1e-2")
    assert not (tmp_path / "bad").exists()
