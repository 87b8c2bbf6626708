"""Scores of the text tasks, per example where possible, with seeded bootstrap intervals.

* accuracy and macro-F1 over the label set, as LaMP's ``classification_metrics.py``
  (sklearn's ``f1_score(labels=range(len(labels)), average="macro")``): a prediction
  outside the set matches no label and is wrong; a label that is neither gold nor
  predicted adds an F1 of 0 to the average. Written by hand, no sklearn.
* ROUGE-1 / ROUGE-L F-measure via ``rouge-score`` (the best over the gold tags), and
  exact match after normalisation (also against the user's earlier tags: copying).
* MAE, RMSE.
* Explanations, after PETER (Li, Zhang, Chen, "Personalized Transformer for
  Explainable Recommendation", ACL 2021, §5.2): FMR (feature matching ratio, the
  share of explanations naming a gold feature: here one of the user's own tags on the
  movie), FCR (feature coverage ratio, distinct features named over all explanations
  / the feature vocabulary), DIV (feature diversity, the mean number of features two
  explanations share; lower is more diverse), USR (unique sentence ratio). Plus
  faithfulness: of the attributes (catalog genres, tag vocabulary: which holds the
  people users tag) an explanation asserts, the share the movie really has.
* 95% percentile bootstrap intervals over examples (seeded); a paired interval
  resamples the same examples for two methods' difference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np

from tastemaker.text.sources import normalise_tag

BOOTSTRAP = 1000
LEVEL = 0.95


def accuracy(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    """Macro-F1 over ``labels`` (every label counts, even one nobody predicted or needed)."""
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


@cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)


def rouge(gold: Sequence[str], predicted: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F of ``predicted`` against the best-matching gold text (0 with no
    gold text: an explanation asked for outside a task has none)."""
    if not gold:
        return {"rouge1": 0.0, "rougeL": 0.0}
    scores = _rouge().score_multi(list(gold), predicted or "")
    return {"rouge1": scores["rouge1"].fmeasure, "rougeL": scores["rougeL"].fmeasure}


def exact_match(gold: Sequence[str], predicted: str | None) -> float:
    return float(
        predicted is not None and normalise_tag(predicted) in {normalise_tag(g) for g in gold}
    )


def copies_profile(profile_outputs: Sequence[str], predicted: str | None) -> float:
    """1 when ``predicted`` is (after normalisation) a tag the user wrote before: each of
    ``profile_outputs`` is a past record's output, its tags joined by ", ". Tells a win that
    copies the user's tags from one that writes new ones."""
    return exact_match([t for o in profile_outputs for t in o.split(", ") if t], predicted)


def mae(gold: Sequence[float], predicted: Sequence[float]) -> float:
    return float(np.mean(np.abs(np.subtract(gold, predicted)))) if gold else 0.0


def rmse(gold: Sequence[float], predicted: Sequence[float]) -> float:
    return math.sqrt(float(np.mean(np.subtract(gold, predicted) ** 2))) if gold else 0.0


_WORD = r"[\w'-]+"


@cache
def _terms(vocabulary: tuple[str, ...]) -> list[tuple[str, frozenset[str]]]:
    """The distinct terms, longest first, each with the words a text must hold to name it."""
    terms = sorted(set(vocabulary), key=len, reverse=True)
    return [(term, frozenset(re.findall(_WORD, term))) for term in terms]


def features_in(text: str, vocabulary: Sequence[str]) -> frozenset[str]:
    """The vocabulary terms ``text`` names as whole words (case-insensitive); a term inside a
    longer named term does not count ("serial killer" names that tag, not "killer")."""
    words = re.findall(_WORD, text.casefold())
    folded, present = " ".join(words), set(words)
    spans = [
        (match.start(), match.end(), term)
        for term, needed in _terms(tuple(vocabulary))
        if needed <= present  # a term's words must all be in the text: skips most regexes
        for match in re.finditer(rf"(?<![\w'-]){re.escape(term)}(?![\w'-])", folded)
    ]
    taken: list[tuple[int, int]] = []
    named = set()
    for start, end, term in spans:  # longest terms first
        if all(end <= s or start >= e for s, e in taken):
            taken.append((start, end))
            named.add(term)
    return frozenset(named)


def feature_matching(named: Sequence[frozenset[str]], gold: Sequence[Sequence[str]]) -> float:
    """FMR: the share of explanations that name at least one of their gold features."""
    hits = [bool(n & set(g)) for n, g in zip(named, gold, strict=True)]
    return sum(hits) / len(hits) if hits else 0.0


def feature_coverage(named: Sequence[frozenset[str]], vocabulary_size: int) -> float:
    """FCR: distinct features named in all explanations / the size of the feature vocabulary."""
    return len(frozenset().union(*named)) / vocabulary_size if vocabulary_size else 0.0


def feature_diversity(named: Sequence[frozenset[str]]) -> float:
    """DIV: the mean |F_i ∩ F_j| over pairs i < j of explanations (lower: more diverse)."""
    n = len(named)
    if n < 2:
        return 0.0
    shared = sum(len(named[i] & named[j]) for i in range(n) for j in range(i + 1, n))
    return 2 * shared / (n * (n - 1))


def unique_sentence_ratio(texts: Sequence[str]) -> float:
    """USR: distinct explanations / explanations (PETER §5.2)."""
    return len({t.strip().casefold() for t in texts}) / len(texts) if texts else 0.0


def faithfulness(
    asserted: Sequence[frozenset[str]], truth: Sequence[frozenset[str]]
) -> tuple[int, int]:
    """(true, asserted) attribute counts over all explanations; hallucinations = the rest."""
    true = sum(len(a & t) for a, t in zip(asserted, truth, strict=True))
    return true, sum(len(a) for a in asserted)


Statistic = Callable[[np.ndarray], float]  # a metric of the examples at these indices


def bootstrap(
    statistic: Statistic, n: int, *, seed: int = 0, rounds: int = BOOTSTRAP
) -> tuple[float, float]:
    """The 95% percentile interval of ``statistic`` over examples resampled with replacement."""
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(rounds)]
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    first: Statistic, second: Statistic, n: int, *, seed: int = 0, rounds: int = BOOTSTRAP
) -> dict[str, float]:
    """The difference first − second on the same examples, and its paired 95% interval."""
    everything = np.arange(n)
    low, high = bootstrap(lambda idx: first(idx) - second(idx), n, seed=seed, rounds=rounds)
    return {"difference": first(everything) - second(everything), "low": low, "high": high}
