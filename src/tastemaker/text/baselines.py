"""Methods without an LLM, per task: what a retrieval-augmented LLM has to beat.

Tagging and tag generation: the globally most frequent label (tag), the user's most
frequent one in their profile, and profile kNN (the labels of the profile movies most
similar to the input movie under the toolkit's text encoder, similarity-weighted).
Rating: global, user and item means, and user + item biases (Koren, "Factorization
meets the neighborhood", KDD 2008, §2.1: damped means with λ = 25 for items, 10 for
users). Explanation: a template that asserts only attributes the movie has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.text.profiles import ProfileEntry
from tastemaker.text.tasks import Example, Task, label_counts

BASELINES: dict[str, tuple[str, ...]] = {
    "tagging": ("global-most-frequent", "user-most-frequent", "profile-knn"),
    "tag-generation": ("global-most-frequent", "user-most-frequent", "profile-knn"),
    "rating": ("global-mean", "user-mean", "item-mean", "user-item-bias"),
    "explanation": ("template",),
}
KNN = 5
ITEM_DAMPING, USER_DAMPING = 25.0, 10.0


def _counts(task: Task, entries: Sequence[ProfileEntry]) -> Counter[str]:
    if task.name == "tagging":
        return label_counts(entries, task.labels)
    return Counter(t for e in entries for t in e.output.split(", ") if t)


def _top(counts: Counter[str]) -> str | None:
    return min(counts, key=lambda t: (-counts[t], t)) if counts else None


def entry_genres(entry: ProfileEntry) -> list[str]:
    """The genres in a profile entry's text (``Title (genres: A, B)``)."""
    _, sep, rest = entry.text.rpartition(" (genres: ")
    return rest.rstrip(")").split(", ") if sep else []


def shared_liked(example: Example, n: int = 2) -> list[ProfileEntry]:
    """The ``n`` newest profile movies sharing a genre with the example's movie."""
    genres = set(example.item.genres)
    return [p for p in reversed(example.profile) if genres & set(entry_genres(p))][:n]


def template_explanation(example: Example) -> str:
    """ "Because you liked A and B, which share <genre>; it is tagged <tags>.": true attributes
    only (the shared genre is the movie's own, the tags are other users' tags on it)."""
    genres = set(example.item.genres)
    shared = shared_liked(example)
    text = f"{example.item.title} is recommended"
    if shared:
        titles = " and ".join(p.text.split(" (genres:")[0] for p in shared)
        common = Counter(g for p in shared for g in entry_genres(p) if g in genres)
        text = f"Because you liked {titles}, which share {_top(common)}, {text}"
    elif example.item.genres:
        text = f"{text} as a {', '.join(example.item.genres[:2]).lower()} movie"
    if example.item.tags:
        text += f"; it is tagged {', '.join(example.item.tags[:3])}"
    return text + "."


def _knn(task: Task, example: Example, encoder: Any, fallback: str | None) -> str | None:
    from tastemaker.text.retrievers import DenseRetriever

    retriever = encoder if isinstance(encoder, DenseRetriever) else DenseRetriever(encoder)
    entries = example.profile
    if not entries:
        return fallback
    vectors = retriever.vectors([example.input, *(e.text for e in entries)])
    similarity = vectors[1:] @ vectors[0]
    votes: Counter[str] = Counter()
    for i in np.argsort(-similarity, kind="stable")[:KNN]:
        for label in _counts(task, [entries[i]]):
            votes[label] += float(similarity[i])
    return _top(votes) or fallback


def _rating_model(task: Task) -> tuple[float, dict[str, float]]:
    """The global mean and each item's damped bias over the training ratings."""
    rows = [(e.item_id, float(e.output)) for es in task.train.values() for e in es]
    mean = float(np.mean([r for _, r in rows])) if rows else 0.0
    sums: dict[str, list[float]] = {}
    for item, r in rows:
        sums.setdefault(item, []).append(r - mean)
    return mean, {i: sum(d) / (ITEM_DAMPING + len(d)) for i, d in sums.items()}


def baseline_predictions(
    task: Task, method: str, examples: Sequence[Example], *, encoder: Any = None
) -> list[Any]:
    """One prediction per example from the baseline ``method`` of ``task``."""
    if method not in BASELINES[task.name]:
        raise ConfigError(
            f"unknown baseline '{method}' for the {task.name} task",
            f"use one of: {', '.join(BASELINES[task.name])}",
        )
    if task.name == "explanation":
        return [template_explanation(e) for e in examples]
    if task.name == "rating":
        mean, item_bias = _rating_model(task)
        items: dict[str, list[float]] = {}
        for es in task.train.values():
            for e in es:
                items.setdefault(e.item_id, []).append(float(e.output))
        out = []
        for e in examples:
            ratings = [float(p.output) for p in e.profile]
            if method == "global-mean":
                out.append(mean)
            elif method == "user-mean":
                out.append(float(np.mean(ratings)) if ratings else mean)
            elif method == "item-mean":
                out.append(
                    float(np.mean(items[e.item.item_id])) if e.item.item_id in items else mean
                )
            else:
                b_u = sum(
                    r - mean - item_bias.get(p.item_id, 0.0)
                    for r, p in zip(ratings, e.profile, strict=True)
                )
                b_u /= USER_DAMPING + len(ratings)
                out.append(mean + b_u + item_bias.get(e.item.item_id, 0.0))
        return out
    glob = _top(_counts(task, [e for es in task.train.values() for e in es]))
    if method == "global-most-frequent":
        return [glob for _ in examples]
    if method == "user-most-frequent":
        return [_top(_counts(task, e.profile)) or glob for e in examples]
    return [_knn(task, e, encoder, glob) for e in examples]
