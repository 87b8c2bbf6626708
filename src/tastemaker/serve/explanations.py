"""Why an item suits a user, told from the data alone (a statistical explanation).

Two kinds of evidence, both checkable against the data: the items of the user's
history most like the target (co-occurrence cosine, :mod:`serve.similar`: people who
interacted with those also interacted with this), and the target's own genres and
tags that the history shares, with how many history items have each. Nothing is
said that the item does not have. The text package may later offer generated
explanations; this one needs no language model and is what ``method: statistical``
names.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tastemaker.serve.problems import unknown_item, unknown_user
from tastemaker.serve.state import ServeState

BECAUSE = 3
ATTRIBUTES = 5


def values(row: dict[str, Any], field: str) -> list[str]:
    value = row.get(field)
    return [str(v) for v in value] if isinstance(value, list) else []


def listing(words: list[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def explain(state: ServeState, user_id: str, item_id: str) -> dict[str, Any]:
    """The API's explanation of ``item_id`` for ``user_id``."""
    if item_id not in state.item_index:
        raise unknown_item(item_id)
    history, _ = state.history(user_id)
    if not history:
        raise unknown_user(user_id)
    target = state.item_index[item_id]
    rows = list(dict.fromkeys(state.item_index[i] for i in history if i in state.item_index))
    rows = [r for r in rows if r != target]
    similarity = state.similarity.to(target, rows) if rows else []
    ranked = sorted(zip(rows, similarity, strict=True), key=lambda p: -p[1])
    because = [
        {"item_id": state.item_ids[r], "title": state.titles[r], "similarity": round(float(s), 4)}
        for r, s in ranked[:BECAUSE]
        if s > 0
    ]
    frame = state.catalog.frame
    item = frame.row(target, named=True)
    attributes = []
    for field in state.catalog.categorical_fields:
        shared = Counter(v for r in rows for v in values(frame.row(r, named=True), field))
        attributes += [
            {"field": field, "value": v, "count": shared[v]}
            for v in values(item, field)
            if shared[v] > 0
        ]
    attributes = sorted(attributes, key=lambda a: -a["count"])[:ATTRIBUTES]
    return {
        "user_id": user_id,
        "item_id": item_id,
        "text": sentence(state.titles[target], because, attributes, len(rows)),
        "because": because,
        "attributes": attributes,
        "method": "statistical",
    }


def sentence(
    title: str, because: list[dict[str, Any]], attributes: list[dict[str, Any]], n_history: int
) -> str:
    """One readable sentence from the evidence (or a plain statement that there is none)."""
    parts = []
    if because:
        parts.append(
            f"people who liked {listing([b['title'] for b in because])} also chose {title}"
        )
    if attributes:  # a value in two fields (a genre that is also a tag) is said once
        names: dict[str, str] = {}
        for attribute in attributes:
            names.setdefault(str(attribute["value"]).casefold(), str(attribute["value"]))
        tags = listing(list(names.values())[:3])
        count = attributes[0]["count"]
        parts.append(f"it is {tags}, like {count} of the {n_history} items in your history")
    if not parts:
        return f"No item of your history is related to {title} in the data."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


__all__ = ["explain"]
