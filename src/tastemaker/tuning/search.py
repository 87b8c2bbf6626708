"""The search: trials trained on train, scored on valid, proposed by Optuna.

Every trial trains on ``split.train``, early-stops and is scored on ``split.valid``;
``split.test`` is never read, so the test score of the chosen configuration stays
an unbiased estimate. Optuna proposes the values (TPE, seeded) or a full grid is
walked; tastemaker runs each trial itself (Optuna's ask/tell), so an invalid
proposed value fails that trial, with its message, and the search goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tastemaker.config import FeaturesConfig
from tastemaker.data.dataset import Split
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, TastemakerError
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.experiment import model_features
from tastemaker.models.base import Recommender
from tastemaker.models.training import IterativeRecommender
from tastemaker.tuning.outputs import (
    BEST_MODEL,
    TRIALS_CSV,
    format_params,
    write_best,
    write_trials,
)
from tastemaker.tuning.plan import SearchPlan, plan_search, quiet_optuna
from tastemaker.tuning.space import SpaceSpec, Value

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)  # one INFO line per finished trial


class TuneConfig(BaseModel):
    """The ``[tune]`` table of a TOML config (CLI flags win over it)."""

    model_config = ConfigDict(extra="forbid")

    trials: PositiveInt | None = None
    timeout: PositiveFloat | None = None
    metric: str = "ndcg@10"
    sampler: Literal["tpe", "grid"] = "tpe"
    seed: int = 42
    save_best: bool = False
    space: dict[str, str | list[Value]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Trial:
    """One trained configuration and its validation score (None when it failed)."""

    number: int
    params: dict[str, Any]
    value: float | None
    epochs: int | None
    best_epoch: int | None
    seconds: float
    state: Literal["complete", "failed"]
    error: str | None = None

    @classmethod
    def from_optuna(cls, frozen: optuna.trial.FrozenTrial) -> Trial:
        """A finished trial as the study recorded it (what tastemaker ran is in user_attrs)."""
        from optuna.trial import TrialState

        done = frozen.state == TrialState.COMPLETE
        attrs = frozen.user_attrs
        seconds = frozen.duration.total_seconds() if frozen.duration is not None else 0.0
        return cls(
            number=frozen.number,
            params=dict(frozen.params),
            value=frozen.value if done else None,
            epochs=attrs.get("epochs"),
            best_epoch=attrs.get("best_epoch"),
            seconds=seconds,
            state="complete" if done else "failed",
            error=attrs.get("error"),
        )


@dataclass(frozen=True)
class TuneResult:
    """Every trial of a search, the best one and its fitted model."""

    model: str
    metric: str
    trials: list[Trial]
    best: Trial
    best_model: Recommender = field(repr=False)
    content_hash: str
    out: Path | None = None

    @property
    def best_params(self) -> dict[str, Any]:
        return self.best.params

    def top(self, n: int = 5) -> list[Trial]:
        """The ``n`` best completed trials, best first (earlier trials win ties)."""
        done = [t for t in self.trials if t.value is not None]
        return sorted(done, key=lambda t: t.value, reverse=True)[:n]  # stable: ties keep order


def _run_trial(
    asked: optuna.Trial,
    model_cls: type[Recommender],
    fixed: Mapping[str, Any],
    split: Split,
    features: Mapping[str, ItemEmbeddings] | None,
    metric: str,
    cutoff: int,
) -> tuple[float, Recommender] | None:
    """Train one configuration on train (early-stopped on valid); score it on valid.

    What the study does not measure itself (epochs, best epoch, the error of a failed
    trial) goes into the trial's user attributes; None when the trial failed.
    """
    try:
        value, model, attrs = fit_and_score(
            model_cls, {**fixed, **asked.params}, split, features, metric, cutoff
        )
    except TastemakerError as exc:
        asked.set_user_attr("error", str(exc))
        return None
    for key, attr in attrs.items():
        asked.set_user_attr(key, attr)
    return value, model


def fit_and_score(
    model_cls: type[Recommender],
    params: Mapping[str, Any],
    split: Split,
    features: Mapping[str, ItemEmbeddings] | None,
    metric: str,
    cutoff: int,
) -> tuple[float, Recommender, dict[str, Any]]:
    """One trial's work wherever it runs (here, or a Ray worker): the model fitted on
    train (early-stopped on valid), its valid ``metric@cutoff``, and what the trial
    records beside the value (epochs, best epoch)."""
    model = model_cls(**params).fit(split.train, split.valid, features=features)
    scores = evaluate_split(model, split, "valid", ks=(cutoff,), metrics=(metric,))
    attrs: dict[str, Any] = {}
    if model.training_log:
        attrs["epochs"] = len(model.training_log)
    if isinstance(model, IterativeRecommender):
        attrs["best_epoch"] = model.best_epoch
    return float(scores[f"{metric}@{cutoff}"]), model, attrs


def _trial_line(
    asked: optuna.Trial,
    count: str,
    outcome: tuple[float, Recommender] | None,
    metric: str,
    seconds: float,
    best: tuple[int, float, Recommender] | None,
) -> str:
    """``trial 3 (4/20): factors=64, reg=0.01: valid ndcg@10 0.2345, 45 epochs, 12.3 s;
    best 0.2456 (trial 1)``: what a search shows as each trial ends."""
    head = f"trial {asked.number} ({count}): {format_params(asked.params)}"
    if outcome is None:
        return f"{head}: failed ({asked.user_attrs.get('error')}), {seconds:.1f} s"
    epochs = asked.user_attrs.get("epochs")
    trained = f", {epochs} epochs" if epochs else ""
    tail = "" if best is None else f"; best {best[1]:.4f} (trial {best[0]})"
    return f"{head}: valid {metric} {outcome[0]:.4f}{trained}, {seconds:.1f} s{tail}"


def finished_trials(study: optuna.Study) -> list[Trial]:
    """The trials that ran to an end (not the grid points still waiting, nor one cut off)."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.FAIL)
    return [Trial.from_optuna(t) for t in study.get_trials(deepcopy=False, states=states)]


def tune(
    split: Split,
    model_name: str,
    space: SpaceSpec,
    *,
    params: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
    timeout_s: float | None = None,
    metric: str = "ndcg@10",
    sampler: Literal["tpe", "grid"] = "tpe",
    seed: int = 42,
    out: Path | None = None,
    save_best: bool = False,
    features: Mapping[str, ItemEmbeddings] | FeaturesConfig | None = None,
) -> TuneResult:
    """Search ``space`` for the configuration of ``model_name`` best on ``split.valid``.

    ``params`` are fixed hyper-parameters for every trial. The search stops after
    ``n_trials`` or once ``timeout_s`` seconds have passed (checked between trials:
    a started trial runs to its end), whichever comes first; the grid sampler stops
    at the end of its grid. Iterative models early-stop on ``metric`` unless
    ``params`` name another ``early_stopping_metric``. With ``out``, writes
    ``trials.csv``, ``trials.md``, ``trials.png`` and ``best.json`` there (and
    ``best-model/`` with ``save_best``): the best trial's model, trained once.
    Content models read item ``features`` (given, or encoded once through the
    embedding store as a :class:`FeaturesConfig` says), shared by every trial.
    """
    plan = plan_search(
        split, model_name, space, params, metric, sampler, seed, n_trials, timeout_s, out,
        save_best,
    )  # fmt: skip
    encoded = model_features(plan.probe, split, features)  # once, for every trial

    import optuna

    distributions = plan.distributions()
    best: tuple[int, float, Recommender] | None = None
    ran = 0
    start = time.perf_counter()
    with quiet_optuna():
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
    try:
        with quiet_optuna():
            for point in plan.grid:  # enqueued trials take these values instead of sampling
                study.enqueue_trial(point)
            while plan.n_trials is None or ran < plan.n_trials:
                asked = study.ask(distributions)
                began = time.perf_counter()
                outcome = _run_trial(
                    asked, plan.model_cls, plan.fixed, split, encoded, plan.metric, plan.cutoff
                )
                if outcome is None:
                    study.tell(asked, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(asked, outcome[0])
                    if best is None or outcome[0] > best[1]:  # earlier trials win ties
                        best = (asked.number, *outcome)
                ran += 1
                count = f"{ran}" if plan.n_trials is None else f"{ran}/{plan.n_trials}"
                seconds = time.perf_counter() - began
                logger.info(_trial_line(asked, count, outcome, plan.label, seconds, best))
                if timeout_s is not None and time.perf_counter() - start >= timeout_s:
                    break
    finally:  # even when interrupted, the finished trials are written
        trials = finished_trials(study)
        if out is not None and trials:
            write_trials(out, trials, plan.label, plan.model_cls.name, split)
    return conclude(plan, trials, best, split, out, sampler, seed, save_best)


def conclude(
    plan: SearchPlan,
    trials: list[Trial],
    best: tuple[int, float, Recommender] | None,
    split: Split,
    out: Path | None,
    sampler: str,
    seed: int,
    save_best: bool,
) -> TuneResult:
    """The result of a finished search, with ``best.json`` (and the best model) written
    to ``out``; an error naming the first failure when every trial failed."""
    if best is None:
        raise ConfigError(
            f"all {len(trials)} trials of '{plan.model_cls.name}' failed "
            f"(first: {trials[0].error})",
            "fix the search space or the fixed parameters"
            + (f"; {out / TRIALS_CSV} lists every error" if out is not None else ""),
        )
    chosen = next(t for t in trials if t.number == best[0])
    result = TuneResult(
        plan.model_cls.name, plan.label, trials, chosen, best[2], split.content_hash, out
    )
    if out is not None:
        write_best(out, result, plan.space, split, sampler, seed)
        if save_best:
            result.best_model.save(out / BEST_MODEL)
    return result
