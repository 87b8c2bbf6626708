"""Personalized generation for many (user, item) pairs over Ray workers.

The pairs are cut into one contiguous batch per worker; each Ray task builds the
PMG pipeline (:class:`~tastemaker.generation.pipeline.PersonalizedGenerationPipeline`)
from the same config, loads its models once and renders its pairs. Every pair is
independent (its history, keywords and the generator's seeds come from the data
and the config alone), so each result equals the single-process one for that pair.
Files the config or the catalog names (posters, a soft-token checkpoint, local
model folders) must exist at the same path on every machine of the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from tastemaker.distributed.cluster import check_workers, connect, shards
from tastemaker.generation.data import Data
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.result import GenerationResult
from tastemaker.generation.scenario import PipelineConfig


def generate_pairs(
    config: PipelineConfig,
    data: Data,
    pairs: Sequence[tuple[str, str]],
    method: str | None,
    n_candidates: int | None,
) -> list[GenerationResult]:
    """One worker's batch: the pipeline built and loaded once, then every pair rendered."""
    import torch

    torch.set_num_threads(1)  # one CPU per task: Ray schedules the parallelism
    pipe = PersonalizedGenerationPipeline(config).load()
    return [pipe(data, u, i, method=method, n_candidates=n_candidates) for u, i in pairs]


def generate_on_ray(
    config: PipelineConfig,
    data: Data,
    pairs: Sequence[tuple[str, str]],
    *,
    workers: int = 2,
    method: str | None = None,
    n_candidates: int | None = None,
) -> list[GenerationResult]:
    """A :class:`GenerationResult` per (user, item) pair, in the order given, rendered by
    ``workers`` Ray tasks (one CPU each). Every pair is checked here first (unknown user or
    item, a user without liked items), so bad input fails before any model loads."""
    check_workers(workers)
    pairs = [(str(u), str(i)) for u, i in pairs]
    checker = PersonalizedGenerationPipeline(config)
    for u, i in pairs:
        checker.describe(data, u, i)
    if not pairs:
        return []
    ray = connect()
    task = ray.remote(num_cpus=1)(generate_pairs)
    shared = ray.put(config), ray.put(data)
    batches = shards(pairs, workers)
    futures = [task.remote(*shared, batch, method, n_candidates) for batch in batches]
    return [result for batch in ray.get(futures) for result in batch]
