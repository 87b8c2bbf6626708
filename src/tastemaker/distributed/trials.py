"""Hyper-parameter trials run in parallel on Ray, proposed by Optuna as in one process.

:func:`tune_on_ray` is :func:`tastemaker.tuning.tune` with each trial trained on
a Ray worker: Optuna still proposes every value (ask/tell, TPE seeded, or the grid
enqueued), up to ``workers`` trials run at once, and the study, the trial records
and the output files are the same kind. A trial trains on ``split.train``,
early-stops and is scored on ``split.valid``; the test part is never read.

What equals the single-process search: a grid (every point is fixed before the
search) gives the same trials and values for any number of workers, and
``workers=1`` with TPE the same proposals too. With more workers TPE proposes a
trial before the ones still running have a value, so it samples from fewer results
(``constant_liar``: running trials count as bad, which keeps simultaneous trials
apart, Optuna's remedy for parallel TPE); the proposals then differ, as in any
parallel Optuna search.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from tastemaker.atomic import ensure_writable_dir
from tastemaker.data.dataset import Split
from tastemaker.distributed.cluster import check_workers, connect
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError, TastemakerError
from tastemaker.experiment import model_features
from tastemaker.models.registry import get_model_class
from tastemaker.tuning.outputs import BEST_MODEL, format_params, write_best, write_trials
from tastemaker.tuning.search import (
    TuneResult,
    finished_trials,
    fit_and_score,
    fixed_params,
    parse_metric,
    quiet_optuna,
    search_budget,
)
from tastemaker.tuning.space import SYNTAX, SpaceSpec, parse_space

log = logging.getLogger("tastemaker.distributed")


def run_trial(
    split: Split,
    model_name: str,
    params: dict[str, Any],
    features: Mapping[str, ItemEmbeddings] | None,
    metric: str,
    cutoff: int,
) -> dict[str, Any]:
    """One configuration on a worker (:func:`tastemaker.tuning.search.fit_and_score`):
    the model, its score and what the trial records, or the error that failed it."""
    import torch

    torch.set_num_threads(1)  # one CPU per trial: Ray schedules the parallelism
    try:
        value, model, attrs = fit_and_score(
            get_model_class(model_name), params, split, features, metric, cutoff
        )
    except TastemakerError as exc:
        return {"error": str(exc)}
    return {"value": value, "attrs": attrs, "model": model}


def tune_on_ray(
    split: Split,
    model_name: str,
    space: SpaceSpec,
    *,
    params: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
    metric: str = "ndcg@10",
    sampler: Literal["tpe", "grid"] = "tpe",
    seed: int = 42,
    workers: int = 2,
    out: Path | None = None,
    save_best: bool = False,
) -> TuneResult:
    """Search ``space`` for the configuration of ``model_name`` best on ``split.valid``,
    ``workers`` trials at a time on Ray (see the module docstring for what equals
    :func:`tastemaker.tuning.tune`). ``n_trials`` bounds a TPE search (a grid defaults
    to its size); ``out`` and ``save_best`` write what ``tune`` writes."""
    check_workers(workers)
    name, cutoff = parse_metric(metric)
    parsed = parse_space(space)
    if not parsed:
        raise ConfigError("the search space is empty", SYNTAX)
    model_cls = get_model_class(model_name)
    fixed = fixed_params(model_cls, parsed, params or {}, f"{name}@{cutoff}")
    probe = model_cls(**fixed)  # a bad fixed value fails now, not once per trial
    if sampler == "tpe" and n_trials is None:
        raise ConfigError("a tpe search on Ray needs a budget", "pass n_trials (--trials)")
    grid, budget = search_budget(parsed, sampler, seed, n_trials, None)
    total = budget or 0  # set: a tpe search without n_trials was refused above
    if len(split.valid) == 0:
        raise DataError(
            "the split has no validation part to select on",
            "make a split with one, e.g. a ratio split 8:1:1",
        )
    if save_best and out is None:
        raise ConfigError("save_best needs an output folder", "pass out=FOLDER")
    if out is not None:
        ensure_writable_dir(out)

    import optuna

    ray = connect()
    task = ray.remote(num_cpus=1)(run_trial)
    shared = ray.put(split), ray.put(model_features(probe, split))  # encoded once
    distributions = {n: p.distribution() for n, p in parsed.items()}
    with quiet_optuna():
        sampler_ = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        study = optuna.create_study(direction="maximize", sampler=sampler_)
        for point in grid:
            study.enqueue_trial(point)
        best = _run(study, task, shared, model_cls.name, fixed, distributions, total, workers,
                    name, cutoff)  # fmt: skip
    trials = finished_trials(study)
    if out is not None:
        write_trials(out, trials, f"{name}@{cutoff}", model_cls.name, split)
    if best is None:
        raise ConfigError(
            f"all {len(trials)} trials of '{model_cls.name}' failed (first: {trials[0].error})",
            "fix the search space or the fixed parameters",
        )
    chosen = next(t for t in trials if t.number == best[0])
    result = TuneResult(
        model_cls.name, f"{name}@{cutoff}", trials, chosen, best[2], split.content_hash, out
    )
    if out is not None:
        write_best(out, result, parsed, split, sampler, seed)
        if save_best:
            result.best_model.save(out / BEST_MODEL)
    return result


def _run(
    study: Any,
    task: Any,
    shared: tuple[Any, Any],
    model_name: str,
    fixed: dict[str, Any],
    distributions: dict[str, Any],
    total: int,
    workers: int,
    metric: str,
    cutoff: int,
) -> tuple[int, float, Any] | None:
    """Keep ``workers`` trials running until ``total`` have ended; the best (number,
    value, model), earlier trials winning ties as in the single-process search."""
    import optuna
    import ray

    running: dict[Any, Any] = {}
    asked = done = 0
    best: tuple[int, float, Any] | None = None
    while done < total:
        while asked < total and len(running) < workers:
            trial = study.ask(distributions)
            config = {**fixed, **trial.params}
            running[task.remote(shared[0], model_name, config, shared[1], metric, cutoff)] = trial
            asked += 1
        finished, _ = ray.wait(list(running), num_returns=1)
        trial = running.pop(finished[0])
        outcome = ray.get(finished[0])
        done += 1
        for key, value in {**outcome.get("attrs", {}), "error": outcome.get("error")}.items():
            if value is not None:
                trial.set_user_attr(key, value)
        if "error" in outcome:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.info("trial %d (%d/%d): failed (%s)", trial.number, done, total, outcome["error"])
            continue
        study.tell(trial, outcome["value"])
        if best is None or (outcome["value"], -trial.number) > (best[1], -best[0]):
            best = (trial.number, outcome["value"], outcome["model"])
        log.info(
            "trial %d (%d/%d): %s: valid %s@%d %.4f",
            trial.number, done, total, format_params(trial.params), metric, cutoff,
            outcome["value"],
        )  # fmt: skip
    return best
