"""Model selection: hyper-parameter search on validation data, and training curves.

Every trial trains on ``split.train``, early-stops and is scored on ``split.valid``;
``split.test`` is never read, so the test score of the chosen configuration stays
an unbiased estimate. Optuna proposes the values (TPE, seeded) or a full grid is
walked; tastemaker runs each trial itself (Optuna's ask/tell), so an invalid
proposed value fails that trial, with its message, and the search goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from tqdm.auto import tqdm

from tastemaker.atomic import ensure_writable_dir, write_bytes, write_text
from tastemaker.config import FeaturesConfig
from tastemaker.data.dataset import Split
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError, TastemakerError
from tastemaker.evaluation import html
from tastemaker.evaluation.metrics import METRICS
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.experiment import model_features
from tastemaker.models.base import Recommender
from tastemaker.models.registry import get_model_class
from tastemaker.models.training import IterativeRecommender

SYNTAX = (
    "write NAME=SPEC, e.g. learning_rate=log:1e-4..1e-2, factors=choice:32,64,128, "
    "reg=1e-3..1e-1 or n_layers=int:1..3"
)
TRIALS_CSV, TRIALS_MD, TRIALS_PNG, BEST_JSON, BEST_MODEL = (
    "trials.csv",
    "trials.md",
    "trials.png",
    "best.json",
    "best-model",
)
Value = bool | int | float | str


# ------------------------------------------------------------------ search space
class _Param(BaseModel):
    """One searched hyper-parameter; a bad bound is a ConfigError, as everywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "bounds"
            raise ConfigError(
                f"{type(self).__name__} {where}: "
                f"{err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})",
                SYNTAX,
            ) from None

    def distribution(self) -> Any:
        """The Optuna distribution that samples this parameter."""
        raise NotImplementedError

    def grid(self, name: str) -> list[Value]:
        """Every value, for the grid sampler; continuous ranges have no grid."""
        raise ConfigError(
            f"the grid sampler cannot enumerate the continuous range {name}={self}",
            f"write {name} as choice:V1,V2,... or int:LOW..HIGH, or use the tpe sampler",
        )


class _Range(_Param):
    low: float
    high: float

    def __init__(self, low: float, high: float) -> None:
        super().__init__(low=low, high=high)

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        return self


class Uniform(_Range):
    """A float drawn uniformly from [low, high]: ``reg=1e-3..1e-1``."""

    def __str__(self) -> str:
        return f"{self.low!r}..{self.high!r}"

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high)


class LogUniform(_Range):
    """A positive float drawn uniformly in log space: ``learning_rate=log:1e-4..1e-2``."""

    low: PositiveFloat
    high: PositiveFloat

    def __str__(self) -> str:
        return f"log:{self.low!r}..{self.high!r}"

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)


class IntRange(_Range):
    """An integer in [low, high], both included: ``n_layers=int:1..3``."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"int:{self.low}..{self.high}"

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high)

    def grid(self, name: str) -> list[Value]:
        return list(range(self.low, self.high + 1))


class Choice(_Param):
    """One of a list of values: ``factors=choice:32,64,128``."""

    values: list[Value] = Field(min_length=1)

    def __init__(self, values: Sequence[Value]) -> None:
        super().__init__(values=list(values))

    def __str__(self) -> str:
        return "choice:" + ",".join(str(v) for v in self.values)

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def grid(self, name: str) -> list[Value]:
        return list(self.values)


Param = Uniform | LogUniform | IntRange | Choice
SpaceSpec = Mapping[str, Param | str | Sequence[Value]] | Iterable[str]
_RANGES: dict[str, tuple[type[_Range], type]] = {
    "uniform": (Uniform, float),
    "log": (LogUniform, float),
    "int": (IntRange, int),
}


def _literal(raw: str) -> Value:
    """``"32"`` -> 32, ``"0.1"`` -> 0.1, ``"true"`` -> True; anything else stays a string."""
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return cast(raw)
    return {"true": True, "false": False}.get(raw.lower(), raw)


def parse_param(name: str, spec: str) -> Param:
    """``log:1e-4..1e-2``, ``choice:32,64``, ``int:1..3`` or ``1e-3..1e-1`` as a typed range."""
    kind, sep, body = spec.strip().partition(":")
    if not sep:
        kind, body = "uniform", spec.strip()
    bad = ConfigError(f"search space entry {name}={spec!r} is not understood", SYNTAX)
    if kind == "choice":
        values = [v.strip() for v in body.split(",")]
        if not all(values):
            raise bad
        return Choice([_literal(v) for v in values])
    low, sep, high = body.partition("..")
    if kind not in _RANGES or not sep:
        raise bad
    cls, cast = _RANGES[kind]
    try:
        bounds = cast(low), cast(high)
    except ValueError:
        raise bad from None
    try:
        return cls(*bounds)
    except ConfigError as exc:  # name the entry, not just the range class
        raise ConfigError(f"search space entry {name}={spec!r}: {exc.problem}", SYNTAX) from None


def parse_space(space: SpaceSpec) -> dict[str, Param]:
    """Typed search space from ``NAME=SPEC`` strings (CLI) or a mapping (TOML, Python).

    A mapping's values may be typed params, spec strings, or lists (a choice).
    """
    if isinstance(space, Mapping):
        entries = dict(space)
    else:
        entries = {}
        for entry in [space] if isinstance(space, str) else space:
            name, sep, spec = str(entry).partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"search space entry {entry!r} is not NAME=SPEC", SYNTAX)
            entries[name.strip()] = spec
    parsed: dict[str, Param] = {}
    for name, spec in entries.items():
        if isinstance(spec, _Param):
            parsed[name] = spec
        elif isinstance(spec, str):
            parsed[name] = parse_param(name, spec)
        elif isinstance(spec, Sequence):
            parsed[name] = Choice(spec)
        else:
            raise ConfigError(f"search space entry {name}={spec!r} is not understood", SYNTAX)
    return parsed


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


# ------------------------------------------------------------------ results
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


def format_params(params: Mapping[str, Any]) -> str:
    """``k=20, reg=0.0123457``: short enough for a table cell."""
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


# ------------------------------------------------------------------ the search
def _parse_metric(metric: str) -> tuple[str, int]:
    name, _, cutoff = metric.strip().lower().partition("@")
    if name not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(
            f"metric '{metric}' is not a ranking metric with a cut-off",
            f"use one of {', '.join(METRICS)} with a cut-off, e.g. ndcg@10",
        )
    return name, int(cutoff)


def _grid_points(space: Mapping[str, Param], seed: int) -> list[dict[str, Value]]:
    """Every combination, in a seeded random order (a cut-short grid still spreads out)."""
    names = list(space)
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n].grid(n) for n in names))
    ]
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; tastemaker shows its own progress."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _run_trial(
    number: int,
    model_cls: type[Recommender],
    fixed: Mapping[str, Any],
    params: dict[str, Any],
    split: Split,
    features: Mapping[str, ItemEmbeddings] | None,
    metric: str,
    cutoff: int,
) -> tuple[Trial, Recommender | None]:
    """Train one configuration on train (early-stopped on valid); score it on valid."""
    start = time.perf_counter()
    try:
        model = model_cls(**fixed, **params).fit(split.train, split.valid, features=features)
        scores = evaluate_split(model, split, "valid", ks=(cutoff,), metrics=(metric,))
        value = float(scores[f"{metric}@{cutoff}"])
    except TastemakerError as exc:
        seconds = time.perf_counter() - start
        return Trial(number, params, None, None, None, seconds, "failed", str(exc)), None
    log = model.training_log
    best_epoch = model.best_epoch if isinstance(model, IterativeRecommender) else None
    epochs = len(log) if log else None
    seconds = time.perf_counter() - start
    return Trial(number, params, value, epochs, best_epoch, seconds, "complete"), model


def _fixed_params(
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
    model_cls(**fixed)  # a bad fixed value fails now, not once per trial
    return fixed


def _budget(
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
        grid = _grid_points(space, seed)
        return grid, min(n_trials or len(grid), len(grid))
    if n_trials is None and timeout_s is None:
        raise ConfigError(
            "a tpe search needs a budget", "pass n_trials and/or timeout_s (--trials/--timeout)"
        )
    return [], n_trials


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
    name, cutoff = _parse_metric(metric)
    metric = f"{name}@{cutoff}"
    parsed = parse_space(space)
    if not parsed:
        raise ConfigError("the search space is empty", SYNTAX)
    model_cls = get_model_class(model_name)
    fixed = _fixed_params(model_cls, parsed, params or {}, metric)
    grid, n_trials = _budget(parsed, sampler, seed, n_trials, timeout_s)
    if len(split.valid) == 0:
        raise DataError(
            "the split has no validation part to select on",
            "make a split with one, e.g. a ratio split 8:1:1",
        )
    if save_best and out is None:
        raise ConfigError("save_best needs an output folder", "pass out=FOLDER (--out)")
    if out is not None:
        ensure_writable_dir(out)
    encoded = model_features(model_cls(**fixed), split, features)

    import optuna

    distributions = {n: p.distribution() for n, p in parsed.items()}
    trials: list[Trial] = []
    best: tuple[Trial, Recommender] | None = None
    start = time.perf_counter()
    bar = tqdm(total=n_trials, desc=f"tune {model_cls.name}", unit="trial", disable=None)
    try:
        with bar, _quiet_optuna():
            tpe = optuna.samplers.TPESampler(seed=seed)
            study = optuna.create_study(direction="maximize", sampler=tpe)
            for point in grid:  # enqueued trials take these values instead of sampling
                study.enqueue_trial(point)
            while n_trials is None or len(trials) < n_trials:
                asked = study.ask(distributions)
                trial, model = _run_trial(
                    asked.number, model_cls, fixed, dict(asked.params), split, encoded, name, cutoff
                )
                if trial.value is None:
                    study.tell(asked, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(asked, trial.value)
                trials.append(trial)
                if model is not None and (best is None or trial.value > best[0].value):
                    best = trial, model
                bar.update()
                if best is not None:
                    bar.set_postfix({metric: f"{best[0].value:.4f}"})
                if timeout_s is not None and time.perf_counter() - start >= timeout_s:
                    break
    finally:  # even when interrupted, the finished trials are written
        if out is not None and trials:
            _write_trials(out, trials, metric, model_cls.name, split)
    if best is None:
        raise ConfigError(
            f"all {len(trials)} trials of '{model_cls.name}' failed (first: {trials[0].error})",
            "fix the search space or the fixed parameters"
            + (f"; {out / TRIALS_CSV} lists every error" if out is not None else ""),
        )
    result = TuneResult(model_cls.name, metric, trials, best[0], best[1], split.content_hash, out)
    if out is not None:
        _write_best(out, result, parsed, split, sampler, seed)
        if save_best:
            result.best_model.save(out / BEST_MODEL)
    return result


# ------------------------------------------------------------------ outputs
def _write_trials(out: Path, trials: list[Trial], metric: str, model: str, split: Split) -> None:
    names = list(dict.fromkeys(n for t in trials for n in t.params))
    header = ["number", "state", metric, "epochs", "best_epoch", "seconds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*header, *(f"param_{n}" for n in names), "error"])
    for t in trials:
        row = [t.number, t.state, t.value, t.epochs, t.best_epoch, round(t.seconds, 3)]
        writer.writerow([*row, *(t.params.get(n) for n in names), t.error])
    write_text(out / TRIALS_CSV, buffer.getvalue())

    best = max((t.value for t in trials if t.value is not None), default=None)
    lines = [
        f"# Hyper-parameter search: {model}",
        "",
        f"- selected on: validation {metric} (the test part is never read)",
        f"- data: {split.manifest.name}, split hash `{split.content_hash}`",
        "",
        f"| trial | state | {metric} | epochs | best epoch | seconds | params |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        value = "" if t.value is None else f"{t.value:.4f}"
        value = f"**{value}**" if t.value is not None and t.value == best else value
        note = format_params(t.params) + (f" — {t.error}" if t.error else "")
        cells = [t.number, t.state, value, t.epochs, t.best_epoch, f"{t.seconds:.1f}", note]
        row = ("" if c is None else str(c).replace("|", "\\|").replace("\n", " ") for c in cells)
        lines.append("| " + " | ".join(row) + " |")
    write_text(out / TRIALS_MD, "\n".join(lines) + "\n")
    write_bytes(out / TRIALS_PNG, html.trials_chart([t.value for t in trials], metric))


def _write_best(
    out: Path,
    result: TuneResult,
    space: Mapping[str, Param],
    split: Split,
    sampler: str,
    seed: int,
) -> None:
    from tastemaker import __version__

    info = split.manifest.split
    assert info is not None  # a Split always has split information
    best = result.best
    record = {
        "model": result.model,
        "metric": result.metric,
        "value": best.value,
        "params": best.params,
        "config": result.best_model.config.model_dump(mode="json"),
        "trial": best.number,
        "epochs": best.epochs,
        "best_epoch": best.best_epoch,
        "dataset": split.manifest.name,
        "split_kind": info.kind,
        "split_seed": info.seed,
        "content_hash": result.content_hash,
        "space": {n: str(p) for n, p in space.items()},
        "sampler": sampler,
        "seed": seed,
        "n_trials": len(result.trials),
        "n_failed": sum(t.value is None for t in result.trials),
        "tastemaker_version": __version__,
    }
    write_text(out / BEST_JSON, json.dumps(record, indent=2) + "\n")


# ------------------------------------------------------------------ training curves
@dataclass(frozen=True)
class TrainingSummary:
    """What a saved model's training log says: length, best epoch and speed."""

    label: str
    model: str
    metric: str
    epochs: int
    best_epoch: int | None
    best_value: float | None
    mean_seconds: float


def _training_log(model_dir: Path) -> tuple[IterativeRecommender, list[dict[str, Any]]]:
    model = Recommender.load(model_dir)
    if not isinstance(model, IterativeRecommender) or not model.training_log:
        raise ConfigError(
            f"model folder {model_dir} holds a '{model.name}' model without a training log "
            "(it is not trained epoch by epoch)",
            "report on an iteratively trained model, e.g. one trained with --model bpr",
        )
    return model, model.training_log


def training_report(model_dirs: Sequence[Path], out: Path) -> list[TrainingSummary]:
    """Write the training curves of saved models (overlaid) as ``out`` (HTML) and its PNG.

    The PNG sits next to ``out`` with the suffix ``.png``; returns one summary per model.
    """
    if not model_dirs:
        raise ConfigError("no model folder given", "pass at least one --model-dir")
    paths = [Path(d) for d in model_dirs]
    names = [p.name for p in paths]
    labels = names if len(set(names)) == len(names) else [str(p) for p in paths]
    logs: dict[str, list[dict[str, Any]]] = {}
    summaries = []
    for label, path in zip(labels, paths, strict=True):
        model, log = _training_log(path)
        metric = model.config.early_stopping_metric
        best_epoch = model.best_epoch
        best_value = next((r.get(metric) for r in log if r["epoch"] == best_epoch), None)
        seconds = math.fsum(r["seconds"] for r in log) / len(log)
        summaries.append(
            TrainingSummary(label, model.name, metric, len(log), best_epoch, best_value, seconds)
        )
        logs[label] = log
    metrics = sorted({s.metric for s in summaries})
    if len(metrics) > 1:
        raise ConfigError(
            f"the models were early-stopped on different metrics ({', '.join(metrics)})",
            "overlay only models validated on the same metric",
        )
    chart = html.training_chart(logs, metrics[0])
    assert chart is not None  # every log is non-empty
    header = ["model folder", "model", "epochs", "best epoch", f"best {metrics[0]}", "s/epoch"]
    rows = [
        [
            s.label,
            s.model,
            s.epochs,
            *("-" if v is None else v for v in (s.best_epoch, s.best_value)),
            s.mean_seconds,
        ]
        for s in summaries
    ]
    write_bytes(Path(out).with_suffix(".png"), chart)
    write_text(Path(out), html.training_page("Training curves", header, rows, chart))
    return summaries
