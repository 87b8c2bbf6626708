"""Scale-out on Ray: every distributed job against its single-process path, same seeds.

A local cluster is started inside the test (``ray.cluster_utils.Cluster``: a head
and a second node, each its own raylet with one CPU, on this machine) and shut down
at the end. On Linux Ray binds the machine's own address, not 127.0.0.1 (it maps
loopback to the node's IP); nothing leaves the machine. The data are the bundled
ml-latest-small cut to a few users, so every job runs in seconds.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from tastemaker import Dataset, Split
from tastemaker.config import ModelSpec
from tastemaker.data.sources import load_bundled
from tastemaker.data.splits import make_split
from tastemaker.encoders import EmbeddingStore, TextEncoder
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation import evaluate_split
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.scenario import PipelineConfig
from tastemaker.models.registry import create_model
from tastemaker.tuning import tune

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tastemaker[ray]')")

from tastemaker import distributed  # noqa: E402 - after the skip: it needs Ray at call time

USERS = 25  # the first users of ml-latest-small by ID (as strings): ~4,000 ratings


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head and a second node (one CPU each) joined by this process; shut down after.

    Ray's session folder holds Unix sockets, whose paths may not exceed 107 bytes: it
    lives in a short folder of its own under the system's temp dir, not in pytest's
    (``/tmp/pytest-of-root/pytest-N/popen-gw0/...`` is too long under xdist)."""
    from ray.cluster_utils import Cluster

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tm-ray-") as temp:
        head = {"num_cpus": 1, "include_dashboard": False, "temp_dir": temp}
        nodes = Cluster(initialize_head=True, head_node_args=head)
        try:
            nodes.add_node(num_cpus=1)
            distributed.connect(nodes.address)
            nodes.wait_for_nodes()
            yield nodes
        finally:
            ray.shutdown()
            nodes.shutdown()


@pytest.fixture(scope="module")
def movies() -> Dataset:
    ds = load_bundled()
    ratings = ds.interactions.frame
    users = ratings["user_id"].unique().sort().head(USERS)
    return ds.replace(interactions=ratings.filter(pl.col("user_id").is_in(users.implode())))


@pytest.fixture(scope="module")
def split(movies: Dataset) -> Split:
    return make_split(movies, "ratio", ratios=(0.8, 0.1, 0.1), seed=3)


def test_two_nodes_share_the_work(cluster: Any) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2


def test_extraction_on_ray_data_writes_the_stores_own_shards(
    cluster: Any, movies: Dataset, tmp_path: Path
) -> None:
    catalog = movies.catalog.subset(movies.catalog.frame["item_id"].head(48).to_list())
    alone = EmbeddingStore(tmp_path / "single")
    single = alone.get_or_encode(catalog, TextEncoder(), progress=False)
    store = EmbeddingStore(tmp_path / "ray", commit_every=16)
    spread = distributed.encode_catalog_on_ray(
        catalog, TextEncoder(), store, workers=2, batch_size=16
    )
    assert spread.item_ids == single.item_ids and (spread.mask == single.mask).all()
    np.testing.assert_allclose(spread.vectors, single.vectors, atol=2e-6)
    # The same folder (encoder signature) and several committed shards: a second run of
    # the single-process path finds every vector there and encodes nothing.
    folders = [p.name for p in (tmp_path / "ray").iterdir()]
    assert folders == [p.name for p in (tmp_path / "single").iterdir()]
    assert len(list((tmp_path / "ray" / folders[0]).glob("shard-*.parquet"))) >= 3
    again = store.get_or_encode(catalog, TextEncoder(), progress=False)
    assert store.last_stats is not None and store.last_stats.encoded == 0
    np.testing.assert_array_equal(again.vectors, spread.vectors)


@pytest.mark.parametrize("part", ["valid", "test"])
def test_evaluation_sharded_by_users_equals_one_process(
    cluster: Any, split: Split, part: str
) -> None:
    model = create_model("bpr", epochs=3, seed=1).fit(split.train, split.valid)
    single = evaluate_split(model, split, part, ks=(5, 20))
    spread = distributed.evaluate_split_on_ray(model, split, part, ks=(5, 20), workers=2)
    assert spread.keys() == single.keys() and spread["n_users"] == single["n_users"] == USERS
    assert spread == pytest.approx(single, rel=1e-12, abs=1e-15)
    assert 0 < spread["coverage@5"] < spread["coverage@20"]  # a union, not a mean
    # 25 users in shards of 12 and 13: an unweighted mean of the shards would differ.


def test_cli_evaluates_a_saved_model_on_ray(cluster: Any, split: Split, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tastemaker.cli.app import app

    model = create_model("bpr", epochs=2, seed=2).fit(split.train, split.valid)
    split.save(tmp_path / "split")
    model.save(tmp_path / "model")
    args = ["ray", "evaluate", "--data", tmp_path / "split", "--model-dir", tmp_path / "model"]
    args = [str(a) for a in args]
    result = CliRunner().invoke(app, [*args, "-k", "5", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert written == pytest.approx(evaluate_split(model, split, "test", ks=(5,)), rel=1e-12)
    bad = CliRunner().invoke(app, [*args, "--workers", "0"])
    assert bad.exit_code == 2 and "workers=0" in bad.output


def test_trials_in_parallel_equal_the_single_process_grid(cluster: Any, split: Split) -> None:
    space = {"factors": "choice:4,8", "reg": "choice:0.0,0.1"}
    fixed = {"epochs": 2, "seed": 5}
    single = tune(split, "bpr", space, params=fixed, sampler="grid", metric="ndcg@10")
    spread = distributed.tune_on_ray(
        split, "bpr", space, params=fixed, sampler="grid", metric="ndcg@10", workers=2
    )
    by_number = {t.number: (t.params, t.value) for t in single.trials}
    assert {t.number: (t.params, t.value) for t in spread.trials} == by_number
    assert spread.best.number == single.best.number and len(spread.trials) == 4


def test_batch_generation_equals_one_pipeline(cluster: Any, movies: Dataset) -> None:
    config = PipelineConfig.model_validate(
        {
            "keywords": {"extractor": "statistical", "statistical": {"mmr_lambda": 1.0}},
            "generator": {"model": "tiny", "num_inference_steps": 2, "num_images": 2},
            "scorer": {"kind": "none"},
            "weights": ["1:1"],
        }
    )
    users = movies.interactions.frame["user_id"].unique().sort().head(3).to_list()
    pairs = list(zip(users, ["3", "50", "260"], strict=True))  # batches of 2 and 1
    spread = distributed.generate_on_ray(config, movies, pairs, workers=2)
    pipe = PersonalizedGenerationPipeline(config)
    for (user, item), result in zip(pairs, spread, strict=True):
        alone = pipe(movies, user, item)
        assert (result.user_id, result.item_id) == (user, item)
        assert result.prepared.preference.keywords == alone.prepared.preference.keywords
        for ours, theirs in zip(result.candidates, alone.candidates, strict=True):
            assert ours.prompt == theirs.prompt and ours.seed == theirs.seed
            np.testing.assert_array_equal(np.asarray(ours.image), np.asarray(theirs.image))
    with pytest.raises(DataError, match="unknown user"):  # checked before any worker starts
        distributed.generate_on_ray(config, movies, [("no-such-user", "3")], workers=2)


def test_ddp_training_through_ray_train_equals_one_process(cluster: Any, movies: Dataset) -> None:
    loo = make_split(movies, "loo")
    params = {"hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32, "max_len": 20,
              "dropout": 0.0, "epochs": 3, "batch_size": 8, "seed": 7}  # fmt: skip
    single = create_model("sasrec", **params).fit(loo.train, loo.valid)
    spread = distributed.train_on_ray(loo, ModelSpec(name="sasrec", params=params), workers=2)
    assert type(spread) is type(single) and spread.name == "sasrec"
    ours, theirs = spread.network.state_dict(), single.network.state_dict()
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, atol=2e-5, rtol=1e-4)
    # The weights moved (an untrained network would fail above), and both validated the same.
    assert [row["ndcg@10"] for row in spread.training_log] == pytest.approx(
        [row["ndcg@10"] for row in single.training_log], abs=1e-6
    )


def test_only_sequential_models_train_data_parallel(cluster: Any, split: Split) -> None:
    with pytest.raises(ConfigError, match="sequential model"):
        distributed.train_on_ray(split, ModelSpec(name="bpr"), workers=2)
    with pytest.raises(ConfigError, match="workers=0"):
        distributed.evaluate_split_on_ray(None, split, workers=0)  # type: ignore[arg-type]
