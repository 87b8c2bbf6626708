"""A task's metrics over its predictions, each with a 95% bootstrap interval.

An unusable prediction (None) is scored as LaMP scores it: a label outside the set
is wrong; a rating that could not be read counts as the scale end farther from the
gold (LaMP ``classification_metrics.py``, ``create_mapping``); missing text scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tastemaker.text import metrics as m
from tastemaker.text.tasks import Example, Task

Statistics = dict[str, m.Statistic]


def statistics(task: Task, examples: Sequence[Example], predicted: Sequence[Any]) -> Statistics:
    """Each metric of ``task`` as a function of the indices of the examples it averages."""
    gold = [e.gold for e in examples]
    if task.name == "tagging":
        hit = np.array([g == p for g, p in zip(gold, predicted, strict=True)], dtype=float)
        return {
            "accuracy": lambda idx: float(hit[idx].mean()),
            "macro_f1": lambda idx: m.macro_f1(
                [gold[i] for i in idx], [predicted[i] for i in idx], task.labels
            ),
        }
    if task.name == "rating":
        scale = task.scale
        low, high = (scale.low, scale.high) if scale else (1.0, 5.0)
        values = [
            p if p is not None else (low if abs(high - g) < abs(low - g) else high)
            for g, p in zip(gold, predicted, strict=True)
        ]
        error = np.subtract(gold, values)
        return {
            "mae": lambda idx: float(np.abs(error[idx]).mean()),
            "rmse": lambda idx: float(np.sqrt((error[idx] ** 2).mean())),
        }
    texts = [p or "" for p in predicted]
    scores = [m.rouge(g, t) for g, t in zip(gold, texts, strict=True)]
    r1 = np.array([s["rouge1"] for s in scores])
    rl = np.array([s["rougeL"] for s in scores])
    stats: Statistics = {
        "rouge1": lambda idx: float(r1[idx].mean()),
        "rougeL": lambda idx: float(rl[idx].mean()),
    }
    if task.name == "tag-generation":
        em = np.array([m.exact_match(g, p) for g, p in zip(gold, predicted, strict=True)])
        return {**stats, "exact_match": lambda idx: float(em[idx].mean())}
    named = [m.features_in(t, task.vocabulary) for t in texts]
    asserted = [
        m.features_in(without_titles(t, e), (*task.vocabulary, *task.genres))
        for t, e in zip(texts, examples, strict=True)
    ]
    truth = [task.truth.get(e.item.item_id, frozenset()) for e in examples]

    def faithful(idx: np.ndarray) -> float:
        true, total = m.faithfulness([asserted[i] for i in idx], [truth[i] for i in idx])
        return true / total if total else 1.0

    # Set-level measures see each drawn example once: a bootstrap copy of an explanation
    # is the same sentence, not a repeated one (else USR and DIV would drop by resampling).
    return {
        **stats,
        "fmr": lambda idx: m.feature_matching([named[i] for i in idx], [gold[i] for i in idx]),
        "fcr": lambda idx: m.feature_coverage(
            [named[i] for i in np.unique(idx)], len(task.vocabulary)
        ),
        "div": lambda idx: m.feature_diversity([named[i] for i in np.unique(idx)]),
        "usr": lambda idx: m.unique_sentence_ratio([texts[i] for i in np.unique(idx)]),
        "faithfulness": faithful,
    }


def without_titles(text: str, example: Example) -> str:
    """The explanation with movie titles removed: a title's words are no attribute claims."""
    for title in [example.item.title, *(p.text.split(" (genres:")[0] for p in example.profile)]:
        text = text.replace(title, " ")
    return text


def score(
    task: Task, examples: Sequence[Example], predicted: Sequence[Any], *, seed: int = 0
) -> dict[str, Any]:
    """``{metric: {"value", "low", "high"}}`` plus counts (examples, invalid)."""
    stats = statistics(task, examples, predicted)
    everything = np.arange(len(examples))
    result: dict[str, Any] = {}
    for name, stat in stats.items():
        low, high = m.bootstrap(stat, len(examples), seed=seed)
        result[name] = {"value": stat(everything), "low": low, "high": high}
    result["examples"] = len(examples)
    result["invalid"] = sum(p is None for p in predicted)
    if task.name == "explanation":
        asserted = [
            m.features_in(without_titles(p or "", e), (*task.vocabulary, *task.genres))
            for p, e in zip(predicted, examples, strict=True)
        ]
        truth = [task.truth.get(e.item.item_id, frozenset()) for e in examples]
        true, total = m.faithfulness(asserted, truth)
        result["asserted_attributes"], result["hallucinations"] = total, total - true
    return result
