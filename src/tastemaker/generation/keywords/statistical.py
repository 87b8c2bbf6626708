"""Keywords without an LLM: distinctive attribute values, made diverse (the baseline and fallback).

The attribute values (genres, tags) over-represented in a user's items relative
to the population, picked by maximal marginal relevance over sentence embeddings
so near-synonyms do not crowd each other out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from tastemaker.config import validate
from tastemaker.data.catalog import ITEM_ID, Catalog
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError
from tastemaker.generation.history import ItemText, UserHistory, known_interactions
from tastemaker.generation.keywords.base import (
    KeywordExtractionError,
    KeywordExtractor,
    Keywords,
    Kind,
)
from tastemaker.generation.keywords.echo import drop_near_duplicates
from tastemaker.generation.keywords.parsing import keyword_key

Embedder = Callable[[Sequence[str]], np.ndarray]


class StatisticalConfig(BaseModel):
    """Which attributes are keywords, and how relevance trades against diversity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...] | None = Field(None, description="None: every categorical field")
    n: PositiveInt = 8
    item_n: PositiveInt = 8
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="1: by relevance alone; lower: more diverse"
    )
    candidates: PositiveInt = Field(40, description="top values by relevance that MMR picks from")
    min_support: PositiveInt = Field(
        2, description="a user's value must recur in this many items (while n such values exist)"
    )


SCORE_LABELS: dict[Kind, str] = {
    "user": "distinctiveness (share of the user's items × log of its lift over everyone's)",
    "item": "rarity (−log of its share of everyone's interactions)",
}


class StatisticalKeywordExtractor(KeywordExtractor):
    """Distinctive attribute values of a user's items, made diverse with embeddings (no LLM).

    A value v (a genre, a tag) scores ``p_u(v) · log(p_u(v) / p(v))``: its share
    of the user's history items times its lift over its share ``p(v)`` of the
    population's interactions (of the catalog's items, without interactions).
    Frequent-and-distinctive values win; values as common for the user as for
    everyone score 0, rarer ones below. Only values in at least ``min_support``
    of the user's items compete while there are ``n`` of them: one rare tag on
    one liked film is an accident, not a preference. For an item, a value scores its inverse
    frequency ``log(1 / p(v))``: rare tags say more than "Drama". The top
    ``candidates`` are then picked by maximal marginal relevance (Carbonell &
    Goldstein, 1998): ``λ · relevance − (1 − λ) · max cosine to those picked``,
    over sentence embeddings (all-MiniLM-L6-v2 by default) of the values, so
    "sci-fi" and "science fiction" do not both take a slot.
    """

    name = "statistical"

    def __init__(
        self,
        catalog: Catalog,
        interactions: Interactions | Split | None = None,
        config: StatisticalConfig | None = None,
        *,
        embedder: Embedder | None = None,
        **params: Any,
    ) -> None:
        base = config.model_dump() if config is not None else {}
        self.config: StatisticalConfig = validate(
            StatisticalConfig, {**base, **params}, where="statistical keyword extractor"
        )
        fields = list(self.config.fields or catalog.categorical_fields)
        unknown = [f for f in fields if f not in catalog.categorical_fields]
        if unknown or not fields:
            raise ConfigError(
                f"no usable categorical item fields ({', '.join(unknown) or 'none in catalog'})",
                f"choose among the catalog's list fields: "
                f"{', '.join(catalog.categorical_fields) or 'none; use the LLM extractor'}",
            )
        self.fields = fields
        self._values = _item_values(catalog, fields)
        self._population = _population(self._values, catalog, interactions)
        self._embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def values(self, item_id: str) -> list[str]:
        """The distinct attribute values of one item (case-insensitive, first form kept)."""
        return self._values.get(str(item_id), [])

    def population_share(self, value: str) -> float:
        """p(v): the share of the population's interactions (or items) that carry ``value``."""
        floor = 1.0 / max(self._population.total, 1.0)
        count = self._population.counts.get(keyword_key(value), 0.0)
        return max(count / self._population.total, floor)

    def extract_user(self, history: UserHistory) -> Keywords:
        counts, forms = _value_counts(self, [history])
        if not counts:
            raise KeywordExtractionError(
                f"none of the {len(history)} history items of user '{history.user_id}' has a "
                f"value in {', '.join(self.fields)}",
                "use the LLM extractor, or a catalog with genres, tags or other list fields",
                Keywords(history.user_id, "user", [], self.name, history.text, complete=False),
            )
        size = len(history)
        recurring = [k for k, c in counts.items() if c >= self.config.min_support]
        keys = recurring if len(recurring) >= self.config.n else list(counts)
        relevance = {
            forms[k]: (counts[k] / size)
            * math.log((counts[k] / size) / self.population_share(forms[k]))
            for k in keys
        }
        # A value no more common for the user than for everyone (score <= 0) is no
        # preference: it stays out of the prompt, unless nothing is distinctive at all.
        relevance = {v: s for v, s in relevance.items() if s > 0} or relevance
        return self._pick(history.user_id, "user", history.text, relevance, self.config.n)

    def extract_item(self, item: ItemText) -> Keywords:
        # one spelling per key: a genre "Sci-Fi" and a tag "sci-fi" are one keyword
        spellings: dict[str, str] = {}
        for name in self.fields:
            for value in item.attributes.get(name, []):
                if value and keyword_key(value):
                    spellings.setdefault(keyword_key(value), value)
        values = list(spellings.values()) or self.values(item.item_id)
        values = self._merge_misspellings(values)
        if not values:
            raise KeywordExtractionError(
                f"item '{item.item_id}' has no value in {', '.join(self.fields)}",
                "use the LLM extractor for items without attributes",
                Keywords(item.item_id, "item", [], self.name, item.text, complete=False),
            )
        relevance = {v: -math.log(self.population_share(v)) for v in values}
        return self._pick(item.item_id, "item", item.text, relevance, self.config.item_n)

    def _merge_misspellings(self, values: list[str]) -> list[str]:
        """One value per misspelt group ("tolkien" / "tolkein"): the spelling the population
        uses most. Rarity scores would otherwise favour the rare misspelling."""
        by_use = sorted(values, key=lambda v: -self.population_share(v))  # stable on ties
        keep = set(drop_near_duplicates(by_use))
        return [v for v in values if v in keep]

    def _pick(
        self, subject: str, kind: Kind, text: str, relevance: dict[str, float], n: int
    ) -> Keywords:
        """The top candidates by relevance, then ``n`` of them by maximal marginal relevance."""
        ranked = sorted(relevance.items(), key=lambda kv: (-kv[1], kv[0]))[: self.config.candidates]
        names = [name for name, _ in ranked]
        scores = np.array([score for _, score in ranked], dtype=np.float64)
        picked = mmr(scores, self._embed(names), n, self.config.mmr_lambda)
        return Keywords(
            subject=subject,
            kind=kind,
            keywords=[names[i] for i in picked],
            extractor=self.name,
            source_text=text,
            scores=[float(scores[i]) for i in picked],
            score_label=SCORE_LABELS[kind],
        )

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        """Unit vectors of ``texts`` (cached), or None when MMR needs no similarities."""
        if self.config.mmr_lambda >= 1.0 or len(texts) < 2:
            return None
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            vectors = np.asarray(self._embedder_fn()(missing), dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def _embedder_fn(self) -> Embedder:
        if self._embedder is None:
            from tastemaker.encoders.text import TextEncoder

            encoder = TextEncoder()
            self._embedder = lambda texts: encoder.embed(list(texts))[0]
        return self._embedder


def mmr(scores: np.ndarray, vectors: np.ndarray | None, n: int, lam: float) -> list[int]:
    """Indices of ``n`` candidates chosen greedily by maximal marginal relevance.

    Relevance is ``scores`` rescaled to [0, 1]; each step takes the candidate
    maximising ``lam · relevance − (1 − lam) · max cosine to those already
    taken``. Without ``vectors`` (or with ``lam = 1``) it is the top ``n`` by score.
    """
    count = len(scores)
    if count == 0:
        return []
    low, high = float(scores.min()), float(scores.max())
    relevance = (scores - low) / (high - low) if high > low else np.ones(count)
    if vectors is None or lam >= 1.0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:n]]
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    closest = np.full(count, -np.inf)  # max similarity to the chosen ones
    available = np.ones(count, dtype=bool)
    while len(chosen) < min(n, count):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(available, lam * relevance - (1 - lam) * penalty, -np.inf)
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity[best])
    return chosen


def popular_keywords(
    extractor: StatisticalKeywordExtractor, histories: Iterable[UserHistory], n: int
) -> list[str]:
    """The ``n`` values most frequent over the items of ``histories`` (a non-personal baseline)."""
    counts, forms = _value_counts(extractor, histories)
    return [forms[k] for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _value_counts(
    extractor: StatisticalKeywordExtractor, histories: Iterable[UserHistory]
) -> tuple[Counter[str], dict[str, str]]:
    """How many history items carry each value (by key), and each key's first spelling."""
    counts: Counter[str] = Counter()
    forms: dict[str, str] = {}
    for history in histories:
        for item_id in history.item_ids:
            for value in extractor.values(item_id):
                counts[keyword_key(value)] += 1
                forms.setdefault(keyword_key(value), value)
    return counts, forms


@dataclass(frozen=True)
class _Population:
    counts: dict[str, float]  # value key -> interactions (or items) carrying it
    total: float  # interactions (or items) in all


def _item_values(catalog: Catalog, fields: list[str]) -> dict[str, list[str]]:
    """Item ID -> its distinct values over ``fields``, each in its commonest spelling."""
    rows = catalog.frame.select(ITEM_ID, *fields).iter_rows()
    raw = {
        row[0]: [v.strip() for col in row[1:] for v in col or [] if v and v.strip()] for row in rows
    }
    spellings = Counter(v for values in raw.values() for v in values)
    canonical: dict[str, str] = {}
    for spelling, _ in spellings.most_common():  # ties: the first seen
        canonical.setdefault(keyword_key(spelling), spelling)
    return {
        item: list(dict.fromkeys(canonical[keyword_key(v)] for v in values))
        for item, values in raw.items()
    }


def _population(
    values: dict[str, list[str]], catalog: Catalog, interactions: Interactions | Split | None
) -> _Population:
    """How often each value occurs: per interaction when given, else per catalog item."""
    if interactions is None:
        weights = dict.fromkeys(values, 1.0)
    else:
        frame = known_interactions(interactions).frame
        per_item = frame.group_by(ITEM_ID).len()
        weights = dict(zip(per_item[ITEM_ID].to_list(), per_item["len"].to_list(), strict=True))
    counts: Counter[str] = Counter()
    for item_id, weight in weights.items():
        for value in values.get(item_id, []):
            counts[keyword_key(value)] += weight
    total = float(sum(weights.values())) or float(len(catalog))
    return _Population(dict(counts), total)
