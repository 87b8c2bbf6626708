"""Full-ranking evaluation sharded by users over Ray workers, merged into one result.

Each worker ranks a contiguous slice of the evaluated users with the same fitted
model through :func:`tastemaker.evaluation.evaluate` itself (same masking, same
metrics), so the merged result is the single-process one: a metric averaged over
users is the user-weighted mean of the shards' averages (equal up to float
rounding), ``n_users`` their sum. Coverage@K (the share of the catalog in any
evaluated user's top K) is a union, which no shard's share determines: each worker
also lists its users' top-K items with the model's own ``recommend`` (the same
scores and masks: train, plus valid when testing), and the lists are joined here.
That is a second scoring pass, skipped with ``coverage=False``; and where items tie
at a user's K-th score (e.g. ``most_popular``'s equal counts), which of them fill
the top K is ``torch.topk``'s choice on each path's tensor, so coverage can differ
from the single-process value by those tied items (the metrics cannot: they come
from the evaluator itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from tastemaker.data.dataset import Split
from tastemaker.data.interactions import USER_ID, Interactions
from tastemaker.distributed.cluster import check_workers, connect, shards
from tastemaker.errors import ConfigError
from tastemaker.evaluation.metrics import METRICS
from tastemaker.evaluation.ranking import PARTS_EXCLUDED, evaluate
from tastemaker.models.base import Recommender

ShardResult = tuple[dict[str, float], dict[int, np.ndarray]]


def evaluate_shard(
    model: Recommender,
    truth: Interactions,
    exclude: Sequence[Interactions],
    users: np.ndarray,
    options: dict[str, Any],
    coverage: bool,
) -> ShardResult:
    """One worker's part: metrics of ``users`` (indices) and, per K, the items in their top K."""
    import torch

    torch.set_num_threads(1)  # one CPU per worker: Ray schedules the parallelism
    ids = truth.users.decode(users)
    shard = truth.with_frame(truth.frame.filter(pl.col(USER_ID).is_in(ids)))
    result = evaluate(model, shard, exclude, **options)
    tops: dict[int, np.ndarray] = {}
    if coverage:
        context = Interactions.concat(exclude) if len(exclude) > 1 else exclude[0]
        ks = sorted(options["ks"])
        recs = model.recommend(ids, k=ks[-1], context=context)
        for k in ks:
            top = recs.filter(pl.col("rank") <= k)["item_id"].unique()
            tops[k] = truth.items.index(top.to_list())
    return result, tops


def merge_shards(results: Sequence[ShardResult], n_items: int, coverage: bool) -> dict[str, float]:
    """The shards' results as one: user-weighted means, summed users, joined top-K lists."""
    weights = np.array([r["n_users"] for r, _ in results])
    merged = {
        key: float(np.dot([r[key] for r, _ in results], weights) / weights.sum())
        for key in results[0][0]
        if key != "n_users" and not key.startswith("coverage@")
    }
    if coverage:
        for k in results[0][1]:
            seen = np.unique(np.concatenate([tops[k] for _, tops in results]))
            merged[f"coverage@{k}"] = len(seen) / n_items
    merged["n_users"] = float(weights.sum())
    return merged


def evaluate_split_on_ray(
    model: Recommender,
    split: Split,
    part: Literal["valid", "test"] = "valid",
    *,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = tuple(METRICS),
    batch_size: int = 1024,
    workers: int = 2,
    coverage: bool = True,
) -> dict[str, float]:
    """:func:`tastemaker.evaluation.evaluate_split` with the users spread over ``workers``
    Ray workers (one CPU each); the same keys and values (``coverage@K`` only with
    ``coverage``, which costs each worker a second scoring pass)."""
    check_workers(workers)
    if part not in PARTS_EXCLUDED:
        raise ConfigError(
            f"cannot evaluate on split part '{part}'", f"use one of {', '.join(PARTS_EXCLUDED)}"
        )
    truth = split.part(part)
    exclude = [split.part(name) for name in PARTS_EXCLUDED[part]]
    users = np.unique(truth.indices()[0])
    options = {"ks": list(ks), "metrics": list(metrics), "batch_size": batch_size}
    if not len(users):  # the single-process path says what is wrong
        return evaluate(model, truth, exclude, **options)
    ray = connect()
    task = ray.remote(num_cpus=1)(evaluate_shard)
    shared = [ray.put(x) for x in (model, truth, exclude)]
    futures = [task.remote(*shared, part, options, coverage) for part in shards(users, workers)]
    return merge_shards(ray.get(futures), len(truth.items), coverage)
