"""``explain(user, item)``: why this movie, for this user, grounded in their liked movies.

The template (:func:`~tastemaker.text.baselines.template_explanation`) needs no model
and states only attributes the movie has; ``method="llm"`` prompts an LLM with the
retrieved liked movies and the movie's attributes (:mod:`tastemaker.text.prompts`),
falling back to the template, recorded, when its replies stay unusable.
``method="llm-grounded"`` then keeps only the clauses whose asserted attributes
(genres, tags) the movie visibly has (:func:`ground`): a small model told to "use
only" the given attributes still invents some, so they are cut rather than trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from tastemaker.errors import ConfigError, DataError
from tastemaker.llm.base import LLM
from tastemaker.text.baselines import shared_liked, template_explanation
from tastemaker.text.metrics import features_in
from tastemaker.text.profiles import ProfileEntry, time_ordered
from tastemaker.text.scoring import without_titles
from tastemaker.text.sources import TextData
from tastemaker.text.tasks import LIKED, Example, Task, attribute_vocabulary

METHODS = ("template", "llm", "llm-grounded")
_CLAUSE = re.compile(r"(?<=[.!?;,])\s+|\s+(?=\b(?:and|but|while|which)\b)")


def ground(text: str, example: Example, task: Task) -> tuple[str, int]:
    """``text`` without the clauses that assert an attribute (a genre or tag of the task's
    vocabulary) the example's movie does not visibly have (its genres, others' tags),
    and how many clauses went; "" when what is left still asserts one. Titles are no
    claims (as faithfulness scores them)."""
    visible = {g.lower() for g in example.item.genres} | set(example.item.tags)
    vocabulary = (*task.vocabulary, *task.genres)

    def unsupported(part: str) -> bool:
        return bool(features_in(without_titles(part, example), vocabulary) - visible)

    clauses = _CLAUSE.split(text)
    kept = [clause for clause in clauses if not unsupported(clause)]
    joined = " ".join(kept).strip(" ,;")
    if joined and len(kept) < len(clauses) and joined[-1] not in ".!?":
        joined += "."
    # Clauses joined again can name a term across their seam ("... dark. Comedy ..."):
    # then nothing is kept, and the caller falls back.
    return ("" if unsupported(joined) else joined), len(clauses) - len(kept)


@dataclass(frozen=True)
class Explanation:
    """The text, which method wrote it, the fallback taken (or None), the entries it used."""

    user_id: str
    item_id: str
    text: str
    method: str
    fallback: str | None
    profile: tuple[ProfileEntry, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "text": self.text,
            "method": self.method,
            "fallback": self.fallback,
            "profile": [e.as_dict() for e in self.profile],
        }


def explanation_example(data: TextData, user_id: str, item_id: str) -> Example:
    """The user's liked movies (other than the item) as profile; the item with others' tags."""
    item = data.item(item_id)
    ratings = data.ratings.filter(pl.col("user_id") == user_id)
    if ratings.is_empty():
        raise DataError(
            f"user '{user_id}' has no ratings in {data.name}", "pass a user ID of this data set"
        )
    liked = ratings.filter((pl.col("rating") >= LIKED) & (pl.col("item_id") != item_id))
    profile = time_ordered(
        ProfileEntry(i, int(t), data.item(i).text, f"rated {r:g}")
        for i, r, t in liked.select("item_id", "rating", "timestamp").iter_rows()
    )
    others: tuple[str, ...] = ()
    if data.tags is not None:
        rows = data.tags.filter((pl.col("item_id") == item_id) & (pl.col("user_id") != user_id))
        others = tuple(sorted(set(rows["tag"].to_list())))
    return Example(
        f"{user_id}:{item_id}", "test", user_id, replace(item, tags=others), (), tuple(profile), 0
    )


def explain(
    user_id: str,
    item_id: str,
    data: TextData,
    *,
    method: str = "template",
    llm: LLM | None = None,
    retriever: str = "bm25",
    k: int = 4,
    example: Example | None = None,
) -> Explanation:
    """An explanation of recommending ``item_id`` to ``user_id``; ``method`` one of
    :data:`METHODS`. ``example`` is :func:`explanation_example`'s for this pair, when
    the caller has built it already."""
    if example is None:
        example = explanation_example(data, user_id, item_id)
    if method == "template":
        used = tuple(shared_liked(example))
        return Explanation(user_id, item_id, template_explanation(example), "template", None, used)
    if method not in METHODS:
        raise ConfigError(
            f"unknown explanation method '{method}'", f"use one of: {', '.join(METHODS)}"
        )
    if llm is None:
        raise ConfigError(f"method '{method}' needs a language model", "pass llm=create_llm(...)")
    from tastemaker.text.runner import run_task

    genres, vocabulary = attribute_vocabulary(data)
    task = Task("explanation", data.name, (example,), {}, genres=genres, vocabulary=vocabulary)
    run = run_task(task, llm, method=method, retriever=retriever, k=k)
    record = run.records[0]
    profile = tuple(ProfileEntry(**e) for e in record["retrieved"])
    text = str(run.predictions[0])
    return Explanation(user_id, item_id, text, f"llm:{llm.name}", record["fallback"], profile)
