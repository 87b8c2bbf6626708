"""A task's fine-tuning pairs: each training record as the prompt inference would build.

LaMP (Salemi et al. 2023, §5) fine-tunes on the train split with the same
retrieval-augmented prompt the model sees at test time. Here every record in a
user's training part (``Task.train``: strictly before their valid example, so
neither valid nor test leaks in) becomes one pair: its profile is the user's
earlier records, ranked by the retriever, the top ``k`` in the prompt; the target
is the user's own output (the first label-set tag for tagging, the tags for tag
generation, the rating for rating).
"""

from __future__ import annotations

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.text.finetune import Example
from tastemaker.text.profiles import ProfileEntry, profile_before
from tastemaker.text.prompts import build_messages
from tastemaker.text.retrievers import Retriever
from tastemaker.text.sources import ItemInfo
from tastemaker.text.tasks import Example as TaskExample
from tastemaker.text.tasks import Task

TRAINABLE = ("tagging", "tag-generation", "rating")


def target_of(task: Task, entry: ProfileEntry) -> str | None:
    """What the model should answer for ``entry``; None when tagging has no label for it."""
    if task.name != "tagging":
        return entry.output
    return next((t for t in entry.output.split(", ") if t in task.labels), None)


def training_pairs(
    task: Task, retriever: Retriever, k: int, *, limit: int | None = None, seed: int = 0
) -> list[Example]:
    """(prompt, target) for the training records of ``task`` (a seeded sample of ``limit``)."""
    if task.name not in TRAINABLE:
        raise ConfigError(
            f"fine-tuning is not available for the {task.name} task (it has no single target)",
            f"use one of: {', '.join(TRAINABLE)}",
        )
    pairs: list[Example] = []
    for user, records in sorted(task.train.items()):
        for index, entry in enumerate(records):
            target = target_of(task, entry)
            if target is None:
                continue
            profile = profile_before(records, index)
            item = ItemInfo(entry.item_id, entry.text, (), ())  # text = the record's item text
            shown = TaskExample("train", "valid", user, item, target, profile, entry.timestamp)
            ranked = [profile[i] for i in retriever.rank(entry.text, profile, user)][:k]
            prompt = build_messages(task, shown, ranked)[0].content
            pairs.append(Example(prompt, target))
    if limit is not None and limit < len(pairs):
        keep = np.random.default_rng(seed).choice(len(pairs), limit, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    return pairs


def valid_pairs(task: Task, retriever: Retriever, k: int) -> list[Example]:
    """(prompt, target) of the task's valid examples, for the validation loss."""
    pairs = []
    for example in task.part("valid"):
        ranked = [
            example.profile[i]
            for i in retriever.rank(example.input, example.profile, example.user_id)
        ]
        gold = example.gold if isinstance(example.gold, str) else ", ".join(map(str, example.gold))
        if task.name == "rating":
            gold = f"{example.gold:g}"
        pairs.append(Example(build_messages(task, example, ranked[:k])[0].content, gold))
    return pairs
