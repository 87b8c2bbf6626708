"""The training loop shared by iterative models: epochs, validation, early stopping, resume.

A model supplies :meth:`IterativeRecommender._prepare` (build parameters and
optimiser) and :meth:`IterativeRecommender._train_epoch` (one pass, returns
the mean loss); the loop evaluates on validation data every ``eval_every``
epochs, keeps an in-memory copy of the best weights, stops after ``patience``
evaluations without improvement and restores the best weights.

Validation ranks the whole catalog for a seeded sample of at most ``valid_users``
validation users (default 2,000; None: all), the same users at every epoch and on
resume, so epochs are compared on equal terms. Full ranking costs users × items ×
factors, not interactions: at 5M interactions one pass over all 100k users cost as
much as 6.5 ALS epochs, 2,000 of them cost 2% of that. Data sets with at most 2,000
validation users (ml-100k, ml-latest-small) are validated on all of them, as before.

Progress is one ``logging`` line per epoch (logger ``tastemaker.models.training``,
INFO; timings at DEBUG) and an ``on_epoch`` callback: the library prints nothing
unless logging is configured (the CLI shows the lines on stderr, piped or not).
After every epoch the loop keeps a :class:`TrainingState` (live weights, optimiser
state, generator state, patience), so Ctrl-C ends in :class:`TrainingInterrupted`
with the best model so far, and :meth:`IterativeRecommender.resume` continues a run
exactly where it stopped: interrupted and resumed equals uninterrupted.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import torch

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.metrics import METRICS
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models.base import Recommender, TrainingInterrupted
from tastemaker.models.config import TrainableConfig, validate_config
from tastemaker.models.training_state import StopReason, TrainingState, load_state, save_state

logger = logging.getLogger(__name__)

RESUMABLE = ("epochs", "patience")  # the settings a resumed run may change


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch measured: logged, and given to ``on_epoch`` callbacks."""

    model: str
    epoch: int
    epochs: int
    loss: float
    metric: str
    value: float | None  # None when this epoch was not evaluated
    seconds: float
    eta_seconds: float  # to the epoch limit at this run's pace (early stopping may end sooner)
    best_epoch: int | None
    stale: int  # evaluations since the best one

    def line(self) -> str:
        """One line, e.g. ``bpr epoch 3/200: loss 0.6931, valid ndcg@10 0.1234, 1.2 s, ...``."""
        parts = [f"loss {self.loss:.4f}"]
        if self.value is not None:
            parts.append(f"valid {self.metric} {self.value:.4f}")
        parts += [f"{self.seconds:.1f} s", f"ETA {duration(self.eta_seconds)}"]
        return f"{self.model} epoch {self.epoch}/{self.epochs}: {', '.join(parts)}"


EpochCallback = Callable[[EpochReport], None]


def duration(seconds: float) -> str:
    """``42 s``, ``3m 54s`` or ``1h 05m``: how long, at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class IterativeRecommender(Recommender):
    """A recommender trained epoch by epoch, early-stopped on a ranking metric."""

    config_class: ClassVar[type[TrainableConfig]] = TrainableConfig
    config: TrainableConfig
    on_epoch: EpochCallback | None = None  # called after every epoch (may raise to stop)
    _optimizer: torch.optim.Optimizer | None = None  # set by _prepare; saved for resume
    training_state: TrainingState | None = None

    @abstractmethod
    def _prepare(self, train: Interactions) -> None:
        """Build parameters, optimiser and training tensors from ``train``."""

    @abstractmethod
    def _train_epoch(self) -> float:
        """One pass over the training data; the mean loss."""

    def _unfit(self) -> None:
        super()._unfit()
        self.training_state = None

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        self._prepare(train)
        train_loop(self, train, valid)

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose weights the model holds (None before training)."""
        if not self.training_log:
            return None
        metric = self.config.early_stopping_metric
        evaluated = [row for row in self.training_log if row.get(metric) is not None]
        if not evaluated:  # trained without validation: the last epoch's weights
            return self.training_log[-1]["epoch"]
        return max(evaluated, key=lambda row: row[metric])["epoch"]  # first of equal bests

    def resume(self, train: Interactions, valid: Interactions | None = None, **params: Any) -> Self:
        """Continue the run this model was saved from (or interrupted in) where it stopped.

        ``train`` and ``valid`` must be the parts it was trained on (content hashes are
        compared); ``params`` may only raise ``epochs`` or ``patience``, every other
        setting must equal the saved one. Patience, best score, optimiser and generator
        states carry on, so the result equals an uninterrupted run.
        """
        state = self.training_state
        if state is None:
            raise ConfigError(
                f"model '{self.name}' has no training state to resume",
                "train it anew (folders saved by older tastemaker versions lack the state)",
            )
        config = validate_config(
            self.config_class, self.name, {**self.config.model_dump(), **params}
        )
        self._check_resumable(state, config, train, valid)
        self.config = config
        with self._unfit_on_failure():
            best = _clone(self._state()) if state.best_value is not None else None
            self._prepare(train)  # fresh parameters and optimiser, then the saved values
            with torch.no_grad():
                for key, tensor in self._state().items():
                    tensor.copy_(state.weights[key])
            if self._optimizer is not None and state.optimizer is not None:
                self._optimizer.load_state_dict(state.optimizer)
            self.generator.set_state(state.generator)
            train_loop(self, train, valid, replace(state, stopped=None, best_weights=best))
        return self

    def _check_resumable(
        self,
        state: TrainingState,
        config: TrainableConfig,
        train: Interactions,
        valid: Interactions | None,
    ) -> None:
        """A resumed run keeps its settings and data, and has epochs left to run."""
        for field, saved in self.config.model_dump().items():
            wanted = getattr(config, field)
            if field not in RESUMABLE and wanted != saved:
                raise ConfigError(
                    f"{field}={wanted!r} differs from the saved run's {field}={saved!r}",
                    f"resume with the saved settings (only {' and '.join(RESUMABLE)} may "
                    "change) or train anew without --resume",
                )
        if _hashes(train, valid) != state.hashes:
            raise DataError(
                f"the split differs from the one '{self.name}' was trained on "
                "(train/valid content hashes)",
                "resume on the split folder the run was trained on, or train anew",
            )
        if state.stopped == "early_stopping" and config.patience <= self.config.patience:
            raise ConfigError(
                f"the run already stopped early at epoch {state.epoch} "
                f"(patience={self.config.patience})",
                "raise patience (--param patience=N) to continue it",
            )
        if state.epoch >= config.epochs:
            raise ConfigError(
                f"the run already trained {state.epoch} of epochs={config.epochs}",
                "raise epochs (--param epochs=N) to continue it",
            )

    def _save_extra(self, folder: Path) -> None:
        if self.training_state is not None:
            save_state(folder, self.training_state, self.best_epoch)

    def _load_extra(self, folder: Path, fix: str) -> None:
        self.training_state = load_state(folder, fix)


def train_loop(
    model: IterativeRecommender,
    train: Interactions,
    valid: Interactions | None,
    start: TrainingState | None = None,
) -> list[dict[str, Any]]:
    """Run the epochs of ``model`` (after ``start``'s when resuming); set and return its
    per-epoch log, best weights restored. Ctrl-C after an epoch raises TrainingInterrupted."""
    config = model.config
    metric = config.early_stopping_metric
    name, cutoff = metric.rsplit("@", 1)
    if valid is not None and name not in METRICS:  # fail before training, not after an epoch
        raise ConfigError(
            f"early_stopping_metric '{metric}' names an unknown metric",
            f"use one of {', '.join(METRICS)} with a cut-off, e.g. ndcg@10",
        )
    candidates = cold_candidates(train, valid) if valid is not None else None
    sample = None if valid is None else user_sample(valid, config.valid_users, config.seed)
    hashes = _hashes(train, valid)
    log: list[dict[str, Any]] = list(model.training_log or []) if start is not None else []
    state, begun = start, time.perf_counter()
    first = 1 if start is None else start.epoch + 1
    try:
        for epoch in range(first, config.epochs + 1):
            started = time.perf_counter()
            loss = model._train_epoch()
            if not math.isfinite(loss):
                raise ConfigError(
                    f"model '{model.name}' diverged at epoch {epoch} (loss {loss})",
                    "lower learning_rate",
                )
            trained = time.perf_counter()
            value = None
            if valid is not None and epoch % config.eval_every == 0:
                results = evaluate(
                    model,
                    sample,
                    exclude=[train],
                    ks=(int(cutoff),),
                    metrics=(name,),
                    candidates=candidates,
                )
                value = float(results[metric])
            seconds = time.perf_counter() - started
            log.append({"epoch": epoch, "loss": loss, metric: value, "seconds": seconds})
            state = _after_epoch(model, state, epoch, value, hashes)  # one assignment: atomic
            pace = (time.perf_counter() - begun) / (epoch - first + 1)
            model.training_log = log[: state.epoch]
            report = EpochReport(
                model.name, epoch, config.epochs, loss, metric, value, seconds,
                pace * (config.epochs - epoch), model.best_epoch, state.stale,
            )  # fmt: skip
            logger.info(report.line())
            logger.debug(
                "%s epoch %d: training %.1f s, validation %.1f s, %d of patience %d used",
                model.name, epoch, trained - started, seconds - (trained - started),
                state.stale, config.patience,
            )  # fmt: skip
            if model.on_epoch is not None:
                model.on_epoch(report)
            if value is not None and state.stale >= config.patience:
                _finish(model, state, log, "early_stopping", begun)
                return log[: state.epoch]
    except KeyboardInterrupt as exc:
        if state is None:  # not one epoch finished: nothing worth keeping
            raise
        _finish(model, state, log, "interrupted", begun)
        raise TrainingInterrupted(model, state.epoch) from exc
    if state is not None:
        _finish(model, state, log, "epochs", begun)
    return log


def _after_epoch(
    model: IterativeRecommender,
    state: TrainingState | None,
    epoch: int,
    value: float | None,
    hashes: dict[str, str | None],
) -> TrainingState:
    """The run's state after ``epoch``: copies of what resuming needs, best so far updated."""
    best_value = None if state is None else state.best_value
    best_weights = None if state is None else state.best_weights
    stale = 0 if state is None else state.stale
    if value is not None and (best_value is None or value > best_value):
        best_value, best_weights, stale = value, _clone(model._state()), 0
    elif value is not None:
        stale += 1
    optimizer = model._optimizer
    return TrainingState(
        epoch=epoch,
        stopped=None,
        best_value=best_value,
        stale=stale,
        weights=_clone(model._state()),
        optimizer=None if optimizer is None else copy.deepcopy(optimizer.state_dict()),
        generator=model.generator.get_state(),
        hashes=hashes,
        best_weights=best_weights,
    )


def _finish(
    model: IterativeRecommender,
    state: TrainingState,
    log: list[dict[str, Any]],
    stopped: StopReason,
    begun: float,
) -> None:
    """Give the model its best weights (the last ones without validation), its log and
    state, and log the run's last line."""
    model._load_state(_clone(state.best_weights or state.weights))
    model.training_log = log[: state.epoch]
    model.training_state = replace(state, stopped=stopped, best_weights=None)
    config = model.config
    reason = {
        "early_stopping": f"valid {config.early_stopping_metric} did not improve "
        f"in {config.patience} evaluations",
        "epochs": f"reached epochs={config.epochs}",
        "interrupted": "interrupted",
    }[stopped]
    best = f"best epoch {model.best_epoch}"
    if state.best_value is not None:
        best += f" (valid {config.early_stopping_metric} {state.best_value:.4f})"
    logger.info(
        "%s stopped after epoch %d/%d: %s; %s; %s",
        model.name, state.epoch, config.epochs, reason, best,
        duration(time.perf_counter() - begun),
    )  # fmt: skip


def _clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in tensors.items()}


def _hashes(train: Interactions, valid: Interactions | None) -> dict[str, str | None]:
    return {"train": train.content_hash(), "valid": None if valid is None else valid.content_hash()}


def user_sample(valid: Interactions, n_users: int | None, seed: int) -> Interactions:
    """The rows of a seeded sample of ``n_users`` of ``valid``'s users (all of ``valid``
    when it has no more users, or ``n_users`` is None): one draw per run, so a resumed
    run validates on the same users."""
    users = np.unique(valid.indices()[0])
    if n_users is None or len(users) <= n_users:
        return valid
    chosen = np.zeros(len(valid.users), dtype=bool)
    chosen[np.random.default_rng(seed).choice(users, size=n_users, replace=False)] = True
    return valid.with_frame(valid.frame.filter(pl.Series(chosen[valid.indices()[0]])))


def cold_candidates(train: Interactions, valid: Interactions) -> np.ndarray | None:
    """The items without training interactions when every validation item is one of them
    (a pure cold-start split), else None.

    Validation then ranks among cold items only, as the cold-start test does: ranked
    among all items, it would measure whether cold items outrank warm ones, not what
    a model knows about them.
    """
    warm = np.zeros(len(train.items), dtype=bool)
    warm[train.indices()[1]] = True
    if not len(valid) or warm[valid.indices()[1]].any():
        return None
    return np.flatnonzero(~warm)
