"""Cold-start evaluation: warm and cold items scored and reported separately.

An item is *warm* when it has at least one training interaction, *cold* when it
has none (only its content can tell a model anything about it). On one split
part (test, say):

* **warm**: the part's interactions on warm items, each user's warm items ranked
  among all warm items, train (+ valid) masked as in :func:`evaluate_split`;
* **cold**: the part's interactions on cold items, ranked among the part's cold
  items only, the protocol of CLCRec (Wei et al., "Contrastive Learning for
  Cold-Start Recommendation", ACM MM 2021). A random ranking finds about
  ``K / n_items`` of a user's cold items in the top K (:func:`chance_recall`).

Any split works: ``cold_start`` with ``cold_items`` gives both groups by design,
the plain ``cold_start`` split only cold ones, and a per-user ``ratio`` split the
few items whose every interaction fell outside train (naturally cold items).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
from pydantic import BaseModel

from tastemaker.config import EvalConfig
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.ranking import PARTS_EXCLUDED, Scorer, evaluate
from tastemaker.evaluation.report import EvaluationReport

Group = Literal["warm", "cold"]
GROUPS: tuple[Group, ...] = ("warm", "cold")
SEPARATOR = "/"  # report keys read "cold/recall@20"


class NamedScorer(Scorer, Protocol):
    """A scorer that can say what it is (every Recommender)."""

    name: str
    config: BaseModel


@dataclass(frozen=True)
class ItemGroups:
    """Item indices (of the split's catalog) of each group, for one split part."""

    warm: np.ndarray
    cold: np.ndarray

    def __getitem__(self, group: Group) -> np.ndarray:
        return self.warm if group == "warm" else self.cold


def item_groups(split: Split, part: Literal["valid", "test"] = "test") -> ItemGroups:
    """Warm: items with a training interaction; cold: the part's items without one."""
    n_items = len(split.items)
    trained = np.bincount(split.train.indices()[1], minlength=n_items) > 0
    in_part = np.bincount(split.part(part).indices()[1], minlength=n_items) > 0
    return ItemGroups(np.flatnonzero(trained), np.flatnonzero(in_part & ~trained))


def restrict(truth: Interactions, items: np.ndarray) -> Interactions:
    """The rows of ``truth`` whose item index is in ``items`` (same vocabularies)."""
    keep = np.isin(truth.indices()[1], items)
    return truth.with_frame(truth.frame.filter(pl.Series(keep)))


def evaluate_cold_start(
    scorer: Scorer, split: Split, part: Literal["valid", "test"] = "test", **kw: Any
) -> dict[Group, dict[str, float]]:
    """Metrics of the warm and of the cold group of ``part`` (see the module docstring).

    Each dict is :func:`evaluate`'s (``n_users`` included) plus ``n_items``, the
    number of candidates ranked. A group without interactions in ``part`` is left
    out (the plain ``cold_start`` split has no warm test items).
    """
    if part not in PARTS_EXCLUDED:
        raise ConfigError(
            f"cannot evaluate on split part '{part}'", f"use one of {', '.join(PARTS_EXCLUDED)}"
        )
    if not len(split.part(part)):
        raise DataError(f"the {part} part is empty", "evaluate on a non-empty part")
    groups = item_groups(split, part)
    exclude = [split.part(name) for name in PARTS_EXCLUDED[part]]
    results: dict[Group, dict[str, float]] = {}
    for group in GROUPS:
        truth = restrict(split.part(part), groups[group])
        if len(truth):
            metrics = evaluate(scorer, truth, exclude, candidates=groups[group], **kw)
            results[group] = {**metrics, "n_items": float(len(groups[group]))}
    return results


def chance_recall(k: int, n_items: float) -> float:
    """Expected Recall@k of a random ranking of ``n_items`` candidates (masking ignored)."""
    return min(k, n_items) / n_items if n_items else 0.0


def cold_start_report(
    model: NamedScorer,
    split: Split,
    part: Literal["valid", "test"] = "test",
    cfg: EvalConfig | None = None,
) -> EvaluationReport:
    """An :class:`EvaluationReport` whose metric keys name their group (``warm/ndcg@20``).

    One report per model keeps the provenance (data hash, seed, model config), and
    :func:`~tastemaker.evaluation.report.leaderboard_markdown` tabulates several with
    columns such as ``"cold/recall@20"``.
    """
    cfg = cfg or EvalConfig()
    results = evaluate_cold_start(
        model, split, part, ks=cfg.ks, metrics=cfg.metrics, batch_size=cfg.batch_size
    )
    metrics = {
        f"{group}{SEPARATOR}{key}": value
        for group, values in results.items()
        for key, value in values.items()
    }
    config = model.config.model_dump(mode="json")
    return EvaluationReport.from_split(split, part, model.name, config, metrics, list(cfg.ks))
