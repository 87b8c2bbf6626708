"""The four tasks on real data, each a list of (user, input item, gold, profile) examples.

Per-user time split, as LaMP's user-based split (Salemi et al., arXiv 2304.11406,
§3) narrowed to one test and one validation example per user: a user's last
example-eligible record is the test example, the one before it the validation
example, everything earlier is profile and training data. Decisions (recorded in
each :class:`Task`'s ``notes``):

* tagging (LaMP-2 analog): the unit is a (user, movie) pair the user tagged; its
  label is the user's first tag on it (in time) that is in the label set (the 15
  most frequent normalised tags); pairs without one are never examples but stay
  in profiles; users with fewer than two labelled pairs have no examples, users
  with exactly two have an empty validation profile (k = 0, recorded).
* tag generation: every tagged (user, movie) pair; gold = all the user's tags on it.
* rating (LaMP-3 analog): every rating; the data set's own scale (ml-latest-small
  has half stars 0.5-5, kept: predictions are scored on that scale).
* explanation: liked pairs (rating >= 4) the user also tagged; gold = those tags;
  the prompt may show the movie's tags by *other* users only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from tastemaker.errors import ConfigError, DataError
from tastemaker.text.profiles import ProfileEntry, group_records, profile_before
from tastemaker.text.sources import ItemInfo, TextData

TaskName = Literal["tagging", "tag-generation", "rating", "explanation"]
TASKS: tuple[str, ...] = get_args(TaskName)
Part = Literal["valid", "test"]
N_LABELS = 15
LIKED = 4.0  # a rating at or above it is a liked movie (the generation layer's threshold too)


@dataclass(frozen=True)
class RatingScale:
    """The ratings' range and step (0.5 for half stars)."""

    low: float
    high: float
    step: float


@dataclass(frozen=True)
class Example:
    """One prediction to make: a user, an item (what the prompt may show of it), gold, profile."""

    id: str
    part: Part
    user_id: str
    item: ItemInfo
    gold: Any  # tagging: label; rating: float; tag generation / explanation: tuple of tags
    profile: tuple[ProfileEntry, ...]
    timestamp: int

    @property
    def input(self) -> str:
        return self.item.text


@dataclass(frozen=True)
class Task:
    """A task's examples and what scoring and baselines need beside them."""

    name: str
    data_name: str
    examples: tuple[Example, ...]
    train: dict[str, list[ProfileEntry]]  # each user's records before their first example
    labels: tuple[str, ...] = ()
    scale: RatingScale | None = None
    truth: dict[str, frozenset[str]] = field(default_factory=dict)  # item → real attributes
    genres: tuple[str, ...] = ()  # every genre of the catalog (asserted-attribute vocabulary)
    vocabulary: tuple[str, ...] = ()  # every normalised tag (the feature vocabulary)
    notes: tuple[str, ...] = ()

    def part(self, part: Part) -> list[Example]:
        if part not in get_args(Part):
            raise ConfigError(f"unknown part '{part}'", "use valid or test")
        return [e for e in self.examples if e.part == part]

    @property
    def users(self) -> int:
        return len({e.user_id for e in self.examples})


def build_task(
    name: str,
    data: TextData,
    *,
    n_users: int | None = None,
    seed: int = 0,
    n_labels: int = N_LABELS,
    test_last: int | None = None,
) -> Task:
    """The task ``name`` over ``data``; ``n_users`` (seeded sample) caps the users with examples.

    ``test_last`` (a wider variant of the strict split): each user's last ``test_last``
    eligible records are all test examples, every one with the profile before the first
    of them (no test output in any profile), and a user with a single eligible record
    counts too; the record before the block, if any, is the valid example.
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task '{name}'", f"use one of: {', '.join(TASKS)}")
    if test_last is not None and test_last < 1:
        raise ConfigError(f"test_last must be at least 1, got {test_last}", "pass 1 or more")
    if n_users is not None and n_users < 1:
        raise ConfigError(f"n_users must be at least 1, got {n_users}", "pass a positive number")
    build = {
        "tagging": _tagging,
        "tag-generation": _tag_generation,
        "rating": _rating,
        "explanation": _explanation,
    }[name]
    task: Task = build(data, n_labels, test_last)
    if test_last is not None:
        note = (
            f"wide variant: each user's last {test_last} eligible records are test examples, "
            "all with the profile before the first of them; users with one count too"
        )
        task = replace(task, notes=(*task.notes, note))
    if n_users is not None:
        users = sorted({e.user_id for e in task.examples})
        if n_users < len(users):
            keep = set(np.random.default_rng(seed).choice(users, n_users, replace=False).tolist())
            examples = tuple(e for e in task.examples if e.user_id in keep)
            note = f"{n_users} of {len(users)} users sampled (seed {seed})"
            task = replace(task, examples=examples, notes=(*task.notes, note))
    if not task.examples:
        raise DataError(
            f"the {name} task has no examples in {data.name}",
            "use a data set where users have at least two eligible records",
        )
    return task


def label_set(tags: pl.DataFrame, n: int) -> tuple[str, ...]:
    """The ``n`` most frequent normalised tags (applications counted; ties by name)."""
    counts = tags.group_by("tag").len().sort(["len", "tag"], descending=[True, False])
    return tuple(counts.head(n)["tag"].to_list())


def _tag_pairs(data: TextData, task: str) -> list[tuple[str, str, int, list[str]]]:
    """(user, item, first timestamp, the user's tags on it in time order) per tagged pair."""
    tags = data.need_tags(task).sort(["timestamp", "tag"])
    pairs = tags.group_by(["user_id", "item_id"], maintain_order=True).agg(
        pl.col("timestamp").min(), pl.col("tag").unique(maintain_order=True)
    )
    return [(u, i, t, list(g)) for u, i, t, g in pairs.iter_rows()]


def _held_out(
    records: dict[str, list[ProfileEntry]],
    eligible: dict[str, list[int]],
    make: Any,
    test_last: int | None = None,
) -> tuple[tuple[Example, ...], dict[str, list[ProfileEntry]]]:
    """Each user's last eligible record as test, the one before as valid (``test_last``:
    the last ``test_last`` as test, sharing the profile before them); the training part."""
    examples: list[Example] = []
    train: dict[str, list[ProfileEntry]] = {}
    for user, entries in sorted(records.items()):
        indices = eligible.get(user, [])
        if test_last is None:
            tests, before = (indices[-1:], indices[-2:-1]) if len(indices) >= 2 else ([], [])
        else:
            tests, before = indices[-test_last:], indices[:-test_last][-1:]
        train[user] = entries[: (before or tests or [len(entries)])[0]]
        for index in before:
            examples.append(make("valid", user, entries[index], profile_before(entries, index)))
        for index in tests:
            item = entries[index].item_id
            profile = tuple(r for r in entries[: tests[0]] if r.item_id != item)
            examples.append(make("test", user, entries[index], profile))
    return tuple(examples), train


def _tagged_records(
    data: TextData, task: str
) -> tuple[dict[str, list[ProfileEntry]], dict[tuple[str, str], list[str]]]:
    """Each user's tagged pairs as records (output: their tags), and the tags per pair."""
    pairs = _tag_pairs(data, task)
    tags_of = {(u, i): g for u, i, _, g in pairs}
    records = group_records(
        pairs, lambda item, g: ProfileEntry(item, 0, data.item(item).text, ", ".join(g))
    )
    return records, tags_of


def _tagging(data: TextData, n_labels: int, test_last: int | None) -> Task:
    labels = label_set(data.need_tags("tagging"), n_labels)
    records, tags_of = _tagged_records(data, "tagging")
    first = {key: next((t for t in g if t in labels), None) for key, g in tags_of.items()}
    eligible = {
        u: [k for k, e in enumerate(es) if first[(u, e.item_id)] is not None]
        for u, es in records.items()
    }

    def make(part: Part, user: str, entry: ProfileEntry, profile: tuple) -> Example:
        item = data.item(entry.item_id)
        gold = first[(user, entry.item_id)]
        return Example(f"{user}:{entry.item_id}", part, user, item, gold, profile, entry.timestamp)

    examples, train = _held_out(records, eligible, make, test_last)
    notes = (
        f"label set: the {len(labels)} most frequent normalised tags",
        "example = a tagged (user, movie) pair with a label-set tag; label = the first such",
        "users with fewer than 2 labelled pairs have no examples"
        if test_last is None
        else "users with no labelled pair have no examples",
    )
    return Task("tagging", data.name, examples, train, labels=labels, notes=notes)


def _tag_generation(data: TextData, n_labels: int, test_last: int | None) -> Task:
    records, tags_of = _tagged_records(data, "tag-generation")
    eligible = {u: list(range(len(es))) for u, es in records.items()}

    def make(part: Part, user: str, entry: ProfileEntry, profile: tuple) -> Example:
        gold = tuple(tags_of[(user, entry.item_id)])
        item = data.item(entry.item_id)
        return Example(f"{user}:{entry.item_id}", part, user, item, gold, profile, entry.timestamp)

    examples, train = _held_out(records, eligible, make, test_last)
    notes = ("example = a tagged (user, movie) pair; gold = all the user's tags on it",)
    return Task("tag-generation", data.name, examples, train, notes=notes)


def _rating(data: TextData, n_labels: int, test_last: int | None) -> Task:
    ratings = data.ratings
    values = ratings["rating"].to_numpy()
    fractional = bool(np.any(values != np.round(values)))
    scale = RatingScale(float(values.min()), float(values.max()), 0.5 if fractional else 1.0)
    records = group_records(
        ratings.select("user_id", "item_id", "timestamp", "rating").iter_rows(),
        lambda item, r: ProfileEntry(item, 0, data.item(item).text, f"{r:g}"),
    )
    eligible = {u: list(range(len(es))) for u, es in records.items()}

    def make(part: Part, user: str, entry: ProfileEntry, profile: tuple) -> Example:
        item = data.item(entry.item_id)
        gold = float(entry.output)
        return Example(f"{user}:{entry.item_id}", part, user, item, gold, profile, entry.timestamp)

    examples, train = _held_out(records, eligible, make, test_last)
    notes = (f"scale {scale.low:g}-{scale.high:g} in steps of {scale.step:g}",)
    return Task("rating", data.name, examples, train, scale=scale, notes=notes)


def _explanation(data: TextData, n_labels: int, test_last: int | None) -> Task:
    tags = data.need_tags("explanation")
    _, tags_of = _tagged_records(data, "explanation")
    liked = data.ratings.filter(pl.col("rating") >= LIKED)

    def describe(item: str, rating: float) -> ProfileEntry:
        return ProfileEntry(item, 0, data.item(item).text, f"rated {rating:g}")

    records = group_records(
        liked.select("user_id", "item_id", "timestamp", "rating").iter_rows(), describe
    )
    records = {
        u: [_with_tags(e, tags_of.get((u, e.item_id))) for e in es] for u, es in records.items()
    }
    eligible = {
        u: [k for k, e in enumerate(es) if (u, e.item_id) in tags_of] for u, es in records.items()
    }

    def make(part: Part, user: str, entry: ProfileEntry, profile: tuple) -> Example:
        full = data.item(entry.item_id)
        others = tags.filter((pl.col("item_id") == entry.item_id) & (pl.col("user_id") != user))
        shown = replace(full, tags=tuple(sorted(set(others["tag"].to_list()))))
        gold = tuple(tags_of[(user, entry.item_id)])
        return Example(f"{user}:{entry.item_id}", part, user, shown, gold, profile, entry.timestamp)

    examples, train = _held_out(records, eligible, make, test_last)
    truth = {
        e.item.item_id: frozenset(
            [g.lower() for g in data.item(e.item.item_id).genres]
            + list(data.item(e.item.item_id).tags)
        )
        for e in examples
    }
    genres, vocabulary = attribute_vocabulary(data)
    notes = (
        f"example = a liked (rating >= {LIKED:g}) movie the user tagged; gold = their tags",
        "the prompt shows the movie's tags by other users only",
    )
    return Task(
        "explanation",
        data.name,
        examples,
        train,
        truth=truth,
        genres=genres,
        vocabulary=vocabulary,
        notes=notes,
    )


def attribute_vocabulary(data: TextData) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every genre, lower-case; every normalised tag): what an explanation may assert."""
    genres = tuple(sorted({g.lower() for info in data.items.values() for g in info.genres}))
    tags = () if data.tags is None else tuple(sorted(set(data.tags["tag"].to_list())))
    return genres, tags


def _with_tags(entry: ProfileEntry, tags: Sequence[str] | None) -> ProfileEntry:
    if not tags:
        return entry
    return replace(entry, output=f"{entry.output}; tagged: {', '.join(tags)}")


def label_counts(entries: Sequence[ProfileEntry], labels: Sequence[str]) -> Counter[str]:
    """How often each label is a record's label (its first label-set tag)."""
    allowed = set(labels)
    counts: Counter[str] = Counter()
    for entry in entries:
        label = next((t for t in entry.output.split(", ") if t in allowed), None)
        if label is not None:
            counts[label] += 1
    return counts
