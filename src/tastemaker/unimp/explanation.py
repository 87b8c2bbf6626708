"""Explanations measured with the text issue's measures, on held-out tagged pairs.

Leave-one-out leaves almost no tagged test item (7 of 610 users on
ml-latest-small), so :func:`held_out_tag_pairs` keeps, for each user who tagged
anything, the *last* tagged item of their train sequence out of the explanation
task's training pool; UniMP then explains it from the history before it. An
explanation is the tag the constrained decoder picks from the tag vocabulary; a
non-personalized peer names the item's most frequent tag among the other
training tags (else the most frequent tag overall). Both are scored with
:mod:`tastemaker.text.metrics`: FMR, FCR, DIV, USR (PETER, Li et al. ACL 2021),
ROUGE-1/L against the user's own tags, and faithfulness (the share of named
attributes the movie has: its genres and the tags anyone gave it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tastemaker.text import metrics

if TYPE_CHECKING:
    from tastemaker.unimp.model import UniMP
    from tastemaker.unimp.pipeline import UniMPData

Pair = tuple[str, str]


@dataclass(frozen=True)
class TagPair:
    """One held-out explanation: the user, the history before the item, the item."""

    user: str
    history: list[tuple[str, float | None]]
    item: str


def held_out_tag_pairs(data: UniMPData, users: Sequence[str] | None = None) -> list[TagPair]:
    """Per tagging user (of ``users``), the last train item they tagged, with a history."""
    chosen = set(users) if users is not None else None
    out = []
    for user, sequence in sorted(data.train.items()):
        if chosen is not None and user not in chosen:
            continue
        tagged = [p for p in range(1, len(sequence)) if (user, sequence[p][0]) in data.tags]
        if tagged:
            p = tagged[-1]
            out.append(TagPair(user, sequence[:p], sequence[p][0]))
    return out


def without_pairs(tags: dict[Pair, list[str]], pairs: Sequence[TagPair]) -> dict[Pair, list[str]]:
    """``tags`` minus the held-out pairs (what the explanation task may train on)."""
    drop = {(p.user, p.item) for p in pairs}
    return {k: v for k, v in tags.items() if k not in drop}


def tag_vocabulary(tags: dict[Pair, list[str]]) -> list[str]:
    """Every distinct tag, sorted."""
    return sorted({t for values in tags.values() for t in values})


def unimp_explanations(model: UniMP, data: UniMPData, pairs: Sequence[TagPair]) -> list[str]:
    """UniMP's tag for each pair, constrained to the tag vocabulary."""
    from tqdm.auto import tqdm

    from tastemaker.unimp.batching import encode
    from tastemaker.unimp.constrained import constrained_decode

    builder = data.builder(model.config)
    vocabulary = tag_vocabulary(data.tags)
    out = []
    for pair in tqdm(pairs, desc="unimp explain", unit="pair"):
        example = builder.explain(pair.user, pair.history, pair.item, need_tags=False)
        prompt = encode(model.tokenizer, example, data.split.items, answer=False)
        out.append(constrained_decode(model, prompt, vocabulary))
    return out


def popular_tag_explanations(tags: dict[Pair, list[str]], pairs: Sequence[TagPair]) -> list[str]:
    """The non-personalized peer: the item's most frequent training tag, else the global one."""
    per_item: dict[str, Counter[str]] = {}
    overall: Counter[str] = Counter()
    for (_, item), values in sorted(tags.items()):
        per_item.setdefault(item, Counter()).update(values)
        overall.update(values)
    fallback = overall.most_common(1)[0][0] if overall else ""
    out = []
    for pair in pairs:
        counts = per_item.get(pair.item)
        out.append(counts.most_common(1)[0][0] if counts else fallback)
    return out


def explanation_measures(
    data: UniMPData, pairs: Sequence[TagPair], texts: Sequence[str]
) -> dict[str, Any]:
    """FMR, FCR, DIV, USR, ROUGE-1/L and faithfulness of ``texts`` against the pairs."""
    vocabulary = tag_vocabulary(data.tags)
    gold = [data.tags.get((p.user, p.item), []) for p in pairs]
    named = [metrics.features_in(t, vocabulary) for t in texts]
    genres = sorted({g for p in pairs for g in _genres(data, p.item)})
    attributes = sorted(set(vocabulary) | set(genres))
    asserted = [metrics.features_in(t, attributes) for t in texts]
    truth = [frozenset(_genres(data, p.item)) | _item_tags(data, p.item) for p in pairs]
    true, total = metrics.faithfulness(asserted, truth)
    rouges = [metrics.rouge(g, t) for g, t in zip(gold, texts, strict=True)]
    return {
        "FMR": metrics.feature_matching(named, gold),
        "FCR": metrics.feature_coverage(named, len(vocabulary)),
        "DIV": metrics.feature_diversity(named),
        "USR": metrics.unique_sentence_ratio(list(texts)),
        "ROUGE-1": float(np.mean([r["rouge1"] for r in rouges])) if rouges else 0.0,
        "ROUGE-L": float(np.mean([r["rougeL"] for r in rouges])) if rouges else 0.0,
        "faithfulness": true / total if total else None,
        "n": len(pairs),
    }


def _genres(data: UniMPData, item: str) -> list[str]:
    value = data.describer.fields(item).get("genres", "")
    return [g.strip().casefold() for g in value.split(",") if g.strip()]


def _item_tags(data: UniMPData, item: str) -> frozenset[str]:
    return frozenset(t for (_, i), values in data.tags.items() if i == item for t in values)
