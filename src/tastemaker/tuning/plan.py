"""A search checked before any trial trains: what every way of running trials shares.

:func:`plan_search` turns the user's request (model, space, fixed parameters,
metric, sampler, budget, output folder) into a :class:`SearchPlan`, failing with
one clear error on anything that would otherwise fail once per trial or only at
the end. :func:`tastemaker.tuning.tune` runs a plan in this process and
:func:`tastemaker.distributed.trials.tune_on_ray` on Ray workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastemaker.atomic import ensure_writable_dir
from tastemaker.data.dataset import Split
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.metrics import METRICS
from tastemaker.models.base import Recommender
from tastemaker.models.registry import get_model_class
from tastemaker.tuning.space import SYNTAX, Param, SpaceSpec, Value, grid_points, parse_space


@dataclass(frozen=True)
class SearchPlan:
    """The checked search: metric, space, model, the fixed parameters, a probe model
    built from them, the grid points to enqueue and the trial cap (None: by time)."""

    metric: str
    cutoff: int
    space: dict[str, Param]
    model_cls: type[Recommender]
    fixed: dict[str, Any]
    probe: Recommender
    grid: list[dict[str, Value]]
    n_trials: int | None

    @property
    def label(self) -> str:
        """``ndcg@10``: the metric as trials record it."""
        return f"{self.metric}@{self.cutoff}"

    def distributions(self) -> dict[str, Any]:
        """Optuna's distribution for each searched parameter."""
        return {n: p.distribution() for n, p in self.space.items()}


def plan_search(
    split: Split,
    model_name: str,
    space: SpaceSpec,
    params: Mapping[str, Any] | None,
    metric: str,
    sampler: str,
    seed: int,
    n_trials: int | None,
    timeout_s: float | None,
    out: Path | None,
    save_best: bool,
) -> SearchPlan:
    """Check everything a search can check before training (see the module docstring)."""
    name, cutoff = parse_metric(metric)
    parsed = parse_space(space)
    if not parsed:
        raise ConfigError("the search space is empty", SYNTAX)
    model_cls = get_model_class(model_name)
    fixed = fixed_params(model_cls, parsed, params or {}, f"{name}@{cutoff}")
    probe = model_cls(**fixed)  # a bad fixed value fails now, not once per trial
    grid, cap = search_budget(parsed, sampler, seed, n_trials, timeout_s)
    if len(split.valid) == 0:
        raise DataError(
            "the split has no validation part to select on",
            "make a split with one, e.g. a ratio split 8:1:1",
        )
    if save_best and out is None:
        raise ConfigError("save_best needs an output folder", "pass out=FOLDER (--out)")
    if out is not None:
        ensure_writable_dir(out)
    return SearchPlan(name, cutoff, parsed, model_cls, fixed, probe, grid, cap)


def parse_metric(metric: str) -> tuple[str, int]:
    name, _, cutoff = metric.strip().lower().partition("@")
    if name not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(
            f"metric '{metric}' is not a ranking metric with a cut-off",
            f"use one of {', '.join(METRICS)} with a cut-off, e.g. ndcg@10",
        )
    return name, int(cutoff)


def fixed_params(
    model_cls: type[Recommender],
    space: Mapping[str, Param],
    params: Mapping[str, Any],
    metric: str,
) -> dict[str, Any]:
    """The parameters every trial shares, checked against the model before any training."""
    fields = model_cls.config_class.model_fields
    unknown = sorted(set(space) - set(fields))
    if unknown:
        raise ConfigError(
            f"model '{model_cls.name}' has no hyper-parameter {', '.join(unknown)}",
            f"search over {', '.join(fields)}",
        )
    both = sorted(set(space) & set(params))
    if both:
        raise ConfigError(
            f"{', '.join(both)} is both fixed and searched", "drop it from the fixed parameters"
        )
    fixed = dict(params)
    if "early_stopping_metric" in fields and "early_stopping_metric" not in space:
        fixed.setdefault("early_stopping_metric", metric)
    return fixed


def search_budget(
    space: Mapping[str, Param],
    sampler: str,
    seed: int,
    n_trials: int | None,
    timeout_s: float | None,
) -> tuple[list[dict[str, Value]], int | None]:
    """The grid (empty for tpe) and the trial cap; a search must be able to end."""
    if sampler not in ("tpe", "grid"):
        raise ConfigError(f"unknown sampler '{sampler}'", "use tpe or grid")
    if (n_trials is not None and n_trials < 1) or (timeout_s is not None and timeout_s <= 0):
        raise ConfigError(
            f"the budget n_trials={n_trials}, timeout_s={timeout_s} is empty",
            "give a positive number of trials and/or seconds",
        )
    if sampler == "grid":
        grid = grid_points(space, seed)
        return grid, min(n_trials or len(grid), len(grid))
    if n_trials is None and timeout_s is None:
        raise ConfigError(
            "a tpe search needs a budget", "pass n_trials and/or timeout_s (--trials/--timeout)"
        )
    return [], n_trials


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; tastemaker shows its own progress."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
