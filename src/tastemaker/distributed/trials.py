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

from tastemaker.data.dataset import Split
from tastemaker.distributed.cluster import check_workers, connect
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, TastemakerError
from tastemaker.experiment import model_features
from tastemaker.models.registry import get_model_class
from tastemaker.tuning.outputs import format_params, write_trials
from tastemaker.tuning.plan import SearchPlan, plan_search, quiet_optuna
from tastemaker.tuning.search import TuneResult, conclude, finished_trials, fit_and_score
from tastemaker.tuning.space import SpaceSpec

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
    if sampler == "tpe" and n_trials is None:
        raise ConfigError("a tpe search on Ray needs a budget", "pass n_trials (--trials)")
    plan = plan_search(
        split, model_name, space, params, metric, sampler, seed, n_trials, None, out, save_best
    )
    total = plan.n_trials or 0  # set: a tpe search without n_trials was refused above

    import optuna

    ray = connect()
    task = ray.remote(num_cpus=1)(run_trial)
    shared = ray.put(split), ray.put(model_features(plan.probe, split))  # encoded once
    with quiet_optuna():
        sampler_ = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        study = optuna.create_study(direction="maximize", sampler=sampler_)
        for point in plan.grid:
            study.enqueue_trial(point)
        best = _run(study, task, shared, plan, total, workers)
    trials = finished_trials(study)
    if out is not None:
        write_trials(out, trials, plan.label, plan.model_cls.name, split)
    return conclude(plan, trials, best, split, out, sampler, seed, save_best)


def _run(
    study: Any, task: Any, shared: tuple[Any, Any], plan: SearchPlan, total: int, workers: int
) -> tuple[int, float, Any] | None:
    """Keep ``workers`` trials running until ``total`` have ended; the best (number,
    value, model), earlier trials winning ties as in the single-process search."""
    import optuna
    import ray

    distributions = plan.distributions()
    running: dict[Any, Any] = {}
    asked = done = 0
    best: tuple[int, float, Any] | None = None
    while done < total:
        while asked < total and len(running) < workers:
            trial = study.ask(distributions)
            config = {**plan.fixed, **trial.params}
            args = (shared[0], plan.model_cls.name, config, shared[1], plan.metric, plan.cutoff)
            running[task.remote(*args)] = trial
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
            "trial %d (%d/%d): %s: valid %s %.4f",
            trial.number, done, total, format_params(trial.params), plan.label,
            outcome["value"],
        )  # fmt: skip
    return best
