"""Evaluation protocol: top-K metrics, batched full-ranking evaluation, result reports."""

from tastemaker.evaluation.metrics import (
    METRICS,
    average_precision,
    coverage,
    hit_rate,
    mrr,
    ndcg,
    precision,
    recall,
)
from tastemaker.evaluation.ranking import Scorer, evaluate, evaluate_split
from tastemaker.evaluation.report import EvaluationReport, leaderboard_markdown

__all__ = [
    "METRICS",
    "EvaluationReport",
    "Scorer",
    "average_precision",
    "coverage",
    "evaluate",
    "evaluate_split",
    "hit_rate",
    "leaderboard_markdown",
    "mrr",
    "ndcg",
    "precision",
    "recall",
]
