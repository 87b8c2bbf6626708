"""Training pools and test examples from a Split, per task.

Training reads only the train part: for each user, up to ``per_user`` random
positions p of their time-ordered train sequence give (history before p, item at
p) for every task (the official code samples one random window per user and
epoch in the same spirit). Test examples are the leave-one-out test item with
the train + valid history before it; the test item is never inside a history.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tastemaker.unimp.batching import Example
from tastemaker.unimp.tasks import History, TaskBuilder


def training_pool(
    builder: TaskBuilder,
    histories: dict[str, list[tuple[str, float | None]]],
    tasks: Iterable[str],
    *,
    per_user: int = 16,
    seed: int = 0,
) -> dict[str, list[Example]]:
    """Task -> examples from each user's train sequence (seeded)."""
    rng = np.random.default_rng(seed)
    tasks = list(tasks)
    pool: dict[str, list[Example]] = {task: [] for task in tasks}
    for user, sequence in histories.items():
        if len(sequence) < 2:
            continue
        seen = {item for item, _ in sequence}
        positions = rng.permutation(np.arange(1, len(sequence)))[:per_user]
        tagged = [p for p in range(1, len(sequence)) if (user, sequence[p][0]) in builder.tags]
        for task in tasks:
            chosen = tagged if task == "explain" else positions
            for p in chosen:
                example = make_example(builder, task, user, sequence[:p], sequence[p], rng, seen)
                if example is not None:
                    pool[task].append(example)
    return pool


def make_example(
    builder: TaskBuilder,
    task: str,
    user: str,
    history: History,
    target: tuple[str, float | None],
    rng: np.random.Generator,
    seen: set[str],
) -> Example | None:
    """The ``task`` example for one (history, target); None when the task does not apply."""
    item, rating = target
    if task == "recommend":
        return builder.recommend(user, history, item)
    if task == "rating":
        return None if rating is None else builder.rating(user, history, item, float(rating))
    if task == "explain":
        return builder.explain(user, history, item)
    if task == "select":
        return builder.select(user, history, item, rng, seen)
    if task == "search":
        return builder.search(user, history, item, rng)
    return builder.reconstruct(user, history, rng)


def held_out_examples(
    builder: TaskBuilder,
    known: dict[str, list[tuple[str, float | None]]],
    targets: dict[str, list[tuple[str, float | None]]],
    task: str,
    *,
    seed: int = 0,
    everything: dict[str, set[str]] | None = None,
) -> list[Example]:
    """One ``task`` example per user with a test item: history = what is ``known``.

    ``everything``: every item each user rated (no distractor is one of them).
    """
    rng = np.random.default_rng(seed)
    out = []
    for user, rows in targets.items():
        history = known.get(user, [])
        if not history or not rows:
            continue
        seen = (everything or {}).get(user, {item for item, _ in history} | {rows[0][0]})
        example = make_example(builder, task, user, history, rows[0], rng, seen)
        if example is not None:
            out.append(example)
    return out
