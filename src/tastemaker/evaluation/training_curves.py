"""Training curves of iteratively trained models: one chart, one page, one summary each.

Evaluation sees models through a protocol, never by importing them: anything with
a per-epoch ``training_log``, a ``best_epoch`` and an early-stopping metric in its
config is a :class:`TrainedModel` (every ``IterativeRecommender`` is, fresh or loaded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tastemaker.atomic import write_bytes, write_text
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.html import training_chart, training_page


@runtime_checkable
class TrainedModel(Protocol):
    """A model trained epoch by epoch, as the training loop leaves it."""

    name: str
    config: Any  # has ``early_stopping_metric``
    training_log: list[dict[str, Any]] | None

    @property
    def best_epoch(self) -> int | None: ...


@dataclass(frozen=True)
class TrainingSummary:
    """What a model's training log says: length, best epoch and speed."""

    label: str
    model: str
    metric: str
    epochs: int
    best_epoch: int | None
    best_value: float | None
    mean_seconds: float


def summarize(label: str, model: object) -> TrainingSummary:
    """The summary of one model's log; a model without one is a ConfigError."""
    if not isinstance(model, TrainedModel) or not model.training_log:
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(
            f"{label} is a '{name}' model without a training log "
            "(it is not trained epoch by epoch)",
            "report on an iteratively trained model, e.g. one trained with --model bpr",
        )
    log = model.training_log
    metric = model.config.early_stopping_metric
    best_epoch = model.best_epoch
    best_value = next((r.get(metric) for r in log if r["epoch"] == best_epoch), None)
    seconds = math.fsum(r["seconds"] for r in log) / len(log)
    return TrainingSummary(label, model.name, metric, len(log), best_epoch, best_value, seconds)


def training_report(models: Mapping[str, object], out: Path) -> list[TrainingSummary]:
    """Write the training curves of ``models`` (label -> model, overlaid) as the HTML page
    ``out`` and its PNG next to it (suffix ``.png``); returns one summary per model."""
    if not models:
        raise ConfigError("no model given", "pass at least one trained model (--model-dir)")
    summaries = [summarize(label, model) for label, model in models.items()]
    metrics = sorted({s.metric for s in summaries})
    if len(metrics) > 1:
        raise ConfigError(
            f"the models were early-stopped on different metrics ({', '.join(metrics)})",
            "overlay only models validated on the same metric",
        )
    logs = {k: m.training_log for k, m in models.items() if isinstance(m, TrainedModel)}
    chart = training_chart(logs, metrics[0])
    if chart is None:
        raise DataError("the training logs have no epochs to plot", "re-train the models")
    header = ["run", "model", "epochs", "best epoch", f"best {metrics[0]}", "s/epoch"]
    rows = [
        [s.label, s.model, s.epochs, s.best_epoch, s.best_value, s.mean_seconds] for s in summaries
    ]
    out = Path(out)
    write_bytes(out.with_suffix(".png"), chart)
    page = training_page("Training curves", header, rows, chart, settings_table(models))
    write_text(out, page)
    return summaries


def settings_table(models: Mapping[str, object]) -> tuple[list[str], list[list[Any]]]:
    """What each run was: its hyper-parameters, how it stopped and the data it saw (the
    train and valid content hashes, when the model keeps its training state), one row per
    setting and one column per run, so two runs' differences read across a row."""
    columns: dict[str, dict[str, Any]] = {}
    for label, model in models.items():
        config = getattr(model, "config", None)
        values = dict(config.model_dump(mode="json")) if hasattr(config, "model_dump") else {}
        state = getattr(model, "training_state", None)
        if state is not None:
            values["stopped"] = state.stopped
            for part, digest in state.hashes.items():
                values[f"{part} data hash"] = f"{digest[:12]}…" if digest else None
        # As written (1e-05 stays 1e-05, never a rounded 0.0000); unset stays "–".
        columns[label] = {k: None if v is None else str(v) for k, v in values.items()}
    names = list(dict.fromkeys(k for values in columns.values() for k in values))
    rows = [[name, *(columns[label].get(name) for label in columns)] for name in names]
    return ["setting", *columns], rows
