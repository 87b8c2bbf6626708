"""The training loop shared by iterative models: epochs, validation, early stopping.

A model supplies :meth:`IterativeRecommender._prepare` (build parameters and
optimiser) and :meth:`IterativeRecommender._train_epoch` (one pass, returns
the mean loss); the loop evaluates on validation data every ``eval_every``
epochs, keeps an in-memory copy of the best weights, stops after ``patience``
evaluations without improvement and restores the best weights.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.evaluation.metrics import METRICS
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models.base import Recommender, TrainableConfig


class IterativeRecommender(Recommender):
    """A recommender trained epoch by epoch, early-stopped on a ranking metric."""

    config_class: ClassVar[type[TrainableConfig]] = TrainableConfig
    config: TrainableConfig

    @abstractmethod
    def _prepare(self, train: Interactions) -> None:
        """Build parameters, optimiser and training tensors from ``train``."""

    @abstractmethod
    def _train_epoch(self) -> float:
        """One pass over the training data; the mean loss."""

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        self._prepare(train)
        self.training_log = train_loop(self, train, valid)

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


def train_loop(
    model: IterativeRecommender, train: Interactions, valid: Interactions | None
) -> list[dict[str, Any]]:
    """Run the epochs of ``model``; return the per-epoch log (best weights restored)."""
    config = model.config
    metric = config.early_stopping_metric
    name, cutoff = metric.rsplit("@", 1)
    if valid is not None and name not in METRICS:  # fail before training, not after an epoch
        raise ConfigError(
            f"early_stopping_metric '{metric}' names an unknown metric",
            f"use one of {', '.join(METRICS)} with a cut-off, e.g. ndcg@10",
        )
    candidates = cold_candidates(train, valid) if valid is not None else None
    log: list[dict[str, Any]] = []
    best_value, best_state, stale = -math.inf, None, 0
    bar = tqdm(range(1, config.epochs + 1), desc=model.name, unit="epoch", disable=None)
    for epoch in bar:
        start = time.perf_counter()
        loss = model._train_epoch()
        if not math.isfinite(loss):
            raise ConfigError(
                f"model '{model.name}' diverged at epoch {epoch} (loss {loss})",
                "lower learning_rate",
            )
        value = None
        if valid is not None and epoch % config.eval_every == 0:
            results = evaluate(
                model,
                valid,
                exclude=[train],
                ks=(int(cutoff),),
                metrics=(name,),
                candidates=candidates,
            )
            value = float(results[metric])
        log.append(
            {"epoch": epoch, "loss": loss, metric: value, "seconds": time.perf_counter() - start}
        )
        if value is None:
            bar.set_postfix(loss=f"{loss:.4f}")
            continue
        bar.set_postfix({"loss": f"{loss:.4f}", metric: f"{value:.4f}"})
        if value > best_value:
            best_value, stale = value, 0
            best_state = {k: v.detach().clone() for k, v in model._state().items()}
        else:
            stale += 1
            if stale >= config.patience:
                break
    bar.close()
    if best_state is not None:
        model._load_state(best_state)
    return log


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
