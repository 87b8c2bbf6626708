"""The tasks as instructions over a user sentence (UniMP §3.3; prompts after the
official code's "What is the next item recommended to the user? <answer>").

Every task reads the user's recent history (:func:`serialize_history`) and asks
one question; the answer is text. Recommendation answers with the next item's
title; rating with the rating; explanation with the user's own tags on the item
(MovieLens ``tags.csv``, as the text tasks use them); selection with the letter of
the poster the user picks among K; search with the title of the item the user
went on to watch, given a genre or tag of it as the query; context
reconstruction with an attribute masked in one history item.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from tastemaker.unimp.batching import Example
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.serialize import IMAGE_TOKEN, ItemDescriber, Piece, serialize_history

History = Sequence[tuple[str, float | None]]
RATINGS = tuple(f"{x / 2:g}" for x in range(1, 11))  # MovieLens half stars 0.5 .. 5

QUESTIONS = {
    "recommend": "What is the next item recommended to the user?",
    "rating": "How would the user rate the last item (0.5 to 5)?",
    "explain": "Which tags would the user give the last item?",
    "select": "Which of these posters would the user choose?",
    "reconstruct": "What is the [masked] attribute of the history?",
}


class TaskBuilder:
    """Builds each task's :class:`Example` for one user, history and target."""

    def __init__(
        self,
        describer: ItemDescriber,
        config: UniMPConfig,
        *,
        poster_items: Sequence[str] = (),
        tags: dict[tuple[str, str], list[str]] | None = None,
    ) -> None:
        self.describer = describer
        self.config = config
        self.poster_items = np.array(sorted(poster_items), dtype=object)
        self.poster_set = set(self.poster_items)
        self.tags = tags or {}

    def _history(self, history: History, *, ratings: bool = False, masked: dict | None = None):
        return serialize_history(
            self.describer, history, limit=self.config.history, ratings=ratings, masked=masked
        )

    def recommend(self, user: str, history: History, target: str) -> Example:
        sentence = self._history(history).then(Piece(QUESTIONS["recommend"]))
        return Example("recommend", sentence, self.describer.title(target), user, item=target)

    def rating(self, user: str, history: History, target: str, value: float) -> Example:
        sentence = self._history(history, ratings=True).then(Piece("Next:\n"))
        sentence = sentence.with_items([(target, self.describer.segment(target))])
        sentence = sentence.then(Piece(QUESTIONS["rating"]))
        answer = f"{round(value * 2) / 2:g}"
        return Example("rating", sentence, answer, user, item=target, options=RATINGS, value=value)

    def explain(
        self, user: str, history: History, target: str, *, need_tags: bool = True
    ) -> Example | None:
        """None when ``need_tags`` and the user left no tag on ``target`` (nothing to learn)."""
        tags = self.tags.get((user, target), [])
        if need_tags and not tags:
            return None
        sentence = self._history(history).then(Piece("Next:\n"))
        sentence = sentence.with_items([(target, self.describer.segment(target))])
        sentence = sentence.then(Piece(QUESTIONS["explain"]))
        return Example("explain", sentence, ", ".join(tags[:5]), user, item=target)

    def select(
        self, user: str, history: History, target: str, rng: np.random.Generator, seen: set[str]
    ) -> Example | None:
        """The target's poster among K - 1 random other posters the user never rated."""
        k = self.config.select_options
        if target not in self.poster_set:
            return None
        others: list[str] = []
        for _ in range(50 * k):  # rejection sampling; gives up when too few posters are left
            pick = str(self.poster_items[rng.integers(len(self.poster_items))])
            if pick not in seen and pick != target and pick not in others:
                others.append(pick)
            if len(others) == k - 1:
                break
        else:
            return None
        position = int(rng.integers(k))
        options = [*others[:position], target, *others[position:]]
        letters = tuple(string.ascii_uppercase[:k])
        sentence = self._history(history).then(Piece(QUESTIONS["select"] + "\n"))
        sentence = sentence.with_items(
            [
                (item, f"({letter}) {IMAGE_TOKEN}\n")
                for letter, item in zip(letters, options, strict=True)
            ]
        )
        return Example("select", sentence, letters[position], user, item=target, options=letters)

    def search(
        self,
        user: str,
        history: History,
        target: str,
        rng: np.random.Generator,
        query: str | None = None,
    ) -> Example | None:
        """``query``: the search phrase (None: drawn by :meth:`query`)."""
        query = query or self.query(user, target, rng)
        if query is None:
            return None
        sentence = self._history(history).then(
            Piece(f"The user searches for: {query}. Which item do they want?")
        )
        return Example("search", sentence, self.describer.title(target), user, item=target)

    def query(self, user: str, target: str, rng: np.random.Generator) -> str | None:
        """A genre or tag phrase of ``target`` (the user's own tag when there is one)."""
        tags = self.tags.get((user, target))
        if tags:
            return tags[int(rng.integers(len(tags)))]
        fields = self.describer.fields(target)
        phrases = [v.strip() for name, value in fields.items() if name not in ("title", "year")
                   for v in value.split(",") if v.strip()]  # fmt: skip
        return phrases[int(rng.integers(len(phrases)))] if phrases else None

    def reconstruct(self, user: str, history: History, rng: np.random.Generator) -> Example | None:
        """One history item's first categorical attribute masked; the answer restores it."""
        recent = list(history)[-self.config.history :]
        field_names = self.describer.categorical
        if not recent or not field_names:
            return None
        slot = int(rng.integers(len(recent)))
        name = field_names[0]
        value = self.describer.fields(recent[slot][0]).get(name)
        if value is None:
            return None
        sentence = self._history(recent, masked={slot: name}).then(Piece(QUESTIONS["reconstruct"]))
        return Example("reconstruct", sentence, value, user)
