"""``explain(user, item)``: why this movie, for this user, grounded in their liked movies.

The template (:func:`~tastemaker.text.baselines.template_explanation`) needs no model
and states only attributes the movie has; ``method="llm"`` prompts an LLM with the
retrieved liked movies and the movie's attributes (:mod:`tastemaker.text.prompts`),
falling back to the template, recorded, when its replies stay unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from tastemaker.errors import ConfigError, DataError
from tastemaker.llm.base import LLM
from tastemaker.text.baselines import shared_liked, template_explanation
from tastemaker.text.profiles import ProfileEntry, time_ordered
from tastemaker.text.sources import TextData
from tastemaker.text.tasks import LIKED, Example, Task


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
) -> Explanation:
    """An explanation of recommending ``item_id`` to ``user_id``; ``method`` template or llm."""
    example = explanation_example(data, user_id, item_id)
    if method == "template":
        used = tuple(shared_liked(example))
        return Explanation(user_id, item_id, template_explanation(example), "template", None, used)
    if method != "llm":
        raise ConfigError(f"unknown explanation method '{method}'", "use template or llm")
    if llm is None:
        raise ConfigError("method 'llm' needs a language model", "pass llm=create_llm(...)")
    from tastemaker.text.runner import run_task

    task = Task("explanation", data.name, (example,), {})
    run = run_task(task, llm, retriever=retriever, k=k)
    record = run.records[0]
    profile = tuple(ProfileEntry(**e) for e in record["retrieved"])
    text = str(run.predictions[0])
    return Explanation(user_id, item_id, text, f"llm:{llm.name}", record["fallback"], profile)
