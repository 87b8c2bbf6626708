"""Which profile entries go into the prompt: rankers over a profile, and the context budget.

LaMP (Salemi et al., arXiv 2304.11406, §4) retrieves a user's profile entries with
BM25, Contriever, recency or random, the query being the example's input; here the
dense ranker is the toolkit's text encoder (all-MiniLM-L6-v2, offline) instead of
Contriever. Every ranker returns indices into the profile, best first, so what was
retrieved is recorded exactly.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import numpy as np

from tastemaker.errors import ConfigError
from tastemaker.text.profiles import ProfileEntry

RetrieverName = Literal["bm25", "dense", "recency", "random"]
RETRIEVERS: tuple[str, ...] = get_args(RetrieverName)


class Retriever(Protocol):
    """Ranks a profile for a query: indices of ``entries``, best first (all of them)."""

    name: str

    def rank(self, query: str, entries: Sequence[ProfileEntry], key: str) -> list[int]: ...


def newest_first(entries: Sequence[ProfileEntry]) -> list[int]:
    """Indices by time, newest first; ties by item ID."""
    return sorted(range(len(entries)), key=lambda i: (-entries[i].timestamp, entries[i].item_id))


def by_score(scores: np.ndarray, entries: Sequence[ProfileEntry]) -> list[int]:
    """Indices by score, highest first; equal scores newest first (so ties are deterministic)."""
    recency = {index: rank for rank, index in enumerate(newest_first(entries))}
    return sorted(range(len(entries)), key=lambda i: (-float(scores[i]), recency[i]))


class RecencyRetriever:
    """The newest entries first (LaMP's "recency")."""

    name = "recency"

    def rank(self, query: str, entries: Sequence[ProfileEntry], key: str) -> list[int]:
        return newest_first(entries)


class RandomRetriever:
    """A random order, seeded by ``seed`` and the example's key (the same for every run)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def rank(self, query: str, entries: Sequence[ProfileEntry], key: str) -> list[int]:
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return [int(i) for i in rng.permutation(len(entries))]


class BM25Retriever:
    """Okapi BM25 over the entries' texts (``bm25s``, English stop words, Lucene variant)."""

    name = "bm25"

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b

    def scores(self, query: str, entries: Sequence[ProfileEntry]) -> np.ndarray:
        import bm25s

        if not entries:
            return np.zeros(0)
        corpus = bm25s.tokenize(
            [e.text for e in entries], return_ids=False, show_progress=False, allow_empty=True
        )
        words = bm25s.tokenize([query], return_ids=False, show_progress=False)[0]
        index = bm25s.BM25(k1=self.k1, b=self.b)
        index.index(corpus, show_progress=False)
        known = [w for w in words if w in index.vocab_dict]
        return (
            np.asarray(index.get_scores(known), dtype=np.float64)
            if known
            else np.zeros(len(entries))
        )

    def rank(self, query: str, entries: Sequence[ProfileEntry], key: str) -> list[int]:
        return by_score(self.scores(query, entries), entries)


class DenseRetriever:
    """Cosine similarity of the toolkit's text-encoder vectors; each text encoded once."""

    name = "dense"

    def __init__(self, encoder: Any = None) -> None:
        self._encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from tastemaker.encoders.text import TextEncoder

            self._encoder = TextEncoder()
        return self._encoder

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``, encoding only the ones not seen before."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        for lo in range(0, len(missing), 256):
            batch = missing[lo : lo + 256]
            found, _ = self.encoder.embed(batch)
            found = found / np.maximum(np.linalg.norm(found, axis=1, keepdims=True), 1e-12)
            self.cache.update(zip(batch, found, strict=True))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 1))

    def rank(self, query: str, entries: Sequence[ProfileEntry], key: str) -> list[int]:
        if not entries:
            return []
        vectors = self.vectors([query, *(e.text for e in entries)])
        return by_score(vectors[1:] @ vectors[0], entries)


def create_retriever(name: str, *, seed: int = 0, encoder: Any = None) -> Retriever:
    """A ranker by name: bm25, dense (``encoder``: a TextEncoder, or a DenseRetriever whose
    vectors are shared), recency or random."""
    if name == "bm25":
        return BM25Retriever()
    if name == "dense":
        return encoder if isinstance(encoder, DenseRetriever) else DenseRetriever(encoder)
    if name == "recency":
        return RecencyRetriever()
    if name == "random":
        return RandomRetriever(seed)
    raise ConfigError(f"unknown retriever '{name}'", f"use one of: {', '.join(RETRIEVERS)}")


@dataclass(frozen=True)
class Budgeted:
    """The entries that fit (in ranked order), how many the budget dropped, the prompt's tokens."""

    entries: tuple[ProfileEntry, ...]
    dropped: int
    tokens: int


def top_k_within_budget(
    build: Callable[[Sequence[ProfileEntry]], Any],
    ranked: Sequence[ProfileEntry],
    k: int | None,
    max_tokens: int,
    count: Callable[[Any], int],
) -> Budgeted:
    """The first ``k`` ranked entries (``None``: all), fewer if the prompt ``build`` makes
    of them is over ``max_tokens`` as ``count`` measures it (the model's tokenizer).

    The largest prefix that fits is found by bisection (a prompt only grows with more
    entries); a prompt over budget even without a profile is a :class:`ConfigError`.
    """
    if k is not None and k < 0:
        raise ConfigError(f"k must be 0 or more, got {k}", "pass --k 0 or a positive number")
    wanted = len(ranked) if k is None else min(k, len(ranked))
    tokens = count(build(ranked[:wanted]))
    if tokens <= max_tokens:
        return Budgeted(tuple(ranked[:wanted]), 0, tokens)
    low, high = 0, wanted - 1  # low fits (checked below), high + 1 does not
    base = count(build(()))
    if base > max_tokens:
        raise ConfigError(
            f"the prompt has {base} tokens without any profile entry, over the budget of "
            f"{max_tokens}",
            "raise max_prompt_tokens, or use a model with a longer context",
        )
    fits = {0: base}
    while low < high:
        middle = (low + high + 1) // 2
        size = count(build(ranked[:middle]))
        if size <= max_tokens:
            low, fits[middle] = middle, size
        else:
            high = middle - 1
    return Budgeted(tuple(ranked[:low]), wanted - low, fits[low])
