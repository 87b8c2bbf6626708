"""Top-k inner-product retrieval over item vectors, exact or approximate (HNSW).

One protocol, :class:`VectorIndex`, with two implementations:

- :class:`ExactIndex`: every item scored (``queries @ vectors.T`` in chunks of
  queries), top-k by ``argpartition``, then sorted. Exact; cost grows with the
  catalog (one query over 1M 64-dim items is ~64 M multiply-adds).
- :class:`HNSWIndex`: FAISS ``IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``
  (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
  using Hierarchical Navigable Small World graphs", TPAMI 2020). Sub-linear query
  time, approximate: ``ef_search`` trades recall for time. FAISS draws each item's
  graph level from the index's own generator, which is seeded here; the graph's
  links are reproducible when FAISS builds with one OpenMP thread
  (``faiss.omp_set_num_threads(1)``), since parallel insertion races.

:func:`build_index` picks one: ``kind="auto"`` is exact below
:data:`AUTO_EXACT_BELOW` items, where one exact query is already fast
(benchmarks/results/serving.md measures the crossover) and exact costs no recall.

Exclusions (a user's seen items) are item indices per query. The exact index sets
their scores to -inf before selecting. HNSW cannot filter per query inside FAISS's
search cheaply, so it over-fetches ``k + len(excluded)`` neighbours (``ef_search``
raised to at least that) and drops the excluded ones: exact filtering, but a long
exclusion list makes that query slower. Where fewer than ``k`` items remain (or
HNSW reaches fewer), results are padded with index -1 and score -inf.

Usage::

    index = build_index(item_vectors)            # (n_items, d) float array
    found = index.search(user_vectors, k=10, exclude=[seen_of_user_0, ...])
    found.indices[0], found.scores[0]            # best first; -1 / -inf = padding

Searches never modify the index, so one index may serve concurrent threads.
Wrong shapes, non-finite values, exclusions out of range are ``DataError``s; a bad
``k``, kind or HNSW setting is a ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from tastemaker.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

IndexKind = Literal["auto", "exact", "hnsw"]
INDEX_KINDS: tuple[str, ...] = ("auto", "exact", "hnsw")
# Below this many items "auto" scores exactly: one exact query over 10k 64-dim items
# takes ~0.1-0.2 ms, over 100k ~1-2 ms, and exact costs no recall
# (benchmarks/results/serving.md).
AUTO_EXACT_BELOW = 50_000
# The HNSW defaults, from benchmarks/serving.py's tuning pass (structured vectors shaped
# like trained embeddings, seed 1, 100k items): the smallest ef_search whose recall@10
# reaches 0.95 with M = 16; the reported pass measures them on seed 0 up to 1M items.
# efConstruction 100 is FAISS-typical; the earlier 64 built a thinner graph.
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 100
DEFAULT_EF_SEARCH = 64
# Score-matrix cells per chunk of queries in the exact index (64 MB of float32), so a
# batch of queries over a large catalog never builds one huge matrix.
CHUNK_CELLS = 1 << 24

Exclusions = Sequence["ArrayLike"] | None


@dataclass(frozen=True)
class Neighbours:
    """The top-k of each query, best first: item indices and inner-product scores,
    both ``(queries, k)``; index -1 with score -inf where fewer than k items remain."""

    indices: np.ndarray
    scores: np.ndarray


class VectorIndex(Protocol):
    """What serving needs from an index over item vectors."""

    kind: str

    @property
    def size(self) -> int:
        """Number of indexed items."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    @property
    def nbytes(self) -> int:
        """Memory the index holds for vectors and links, in bytes."""
        ...

    def search(self, queries: ArrayLike, k: int, exclude: Exclusions = None) -> Neighbours:
        """Top-``k`` items by inner product with each query, ``exclude[i]`` left out of
        query ``i``'s results."""
        ...


def as_vectors(values: ArrayLike, what: str, dim: int | None = None) -> np.ndarray:
    """``values`` as a C-contiguous float32 matrix, checked: 2-D (one vector may be
    given 1-D), non-empty, finite, ``dim`` columns when given."""
    array = np.asarray(values, dtype=np.float32)
    if array.ndim == 1 and dim is not None:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(
            f"{what} must be a non-empty 2-D array (rows x dimensions), got shape {array.shape}",
            f"pass one row per {what[:-1] if what.endswith('s') else what}",
        )
    if dim is not None and array.shape[1] != dim:
        raise DataError(
            f"{what} have {array.shape[1]} dimensions but the index holds {dim}-dim vectors",
            "query with vectors from the same model as the indexed items",
        )
    if not np.isfinite(array).all():
        raise DataError(f"{what} contain NaN or infinite values", "pass finite vectors")
    return np.ascontiguousarray(array)


def check_k(k: int, size: int) -> None:
    """``k`` must be a positive count no larger than the catalog."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= size:
        raise ConfigError(
            f"k={k!r} is outside 1..{size}, the number of indexed items",
            f"ask for between 1 and {size} items",
        )


def exclusion_lists(exclude: Exclusions, n_queries: int, size: int) -> list[np.ndarray] | None:
    """One int64 array of item indices per query (None when nothing is excluded)."""
    if exclude is None:
        return None
    if len(exclude) != n_queries:
        raise DataError(
            f"{len(exclude)} exclusion lists for {n_queries} queries",
            "pass one list of item indices per query (empty when none)",
        )
    lists = [np.asarray(items, dtype=np.int64).reshape(-1) for items in exclude]
    for items in lists:
        if items.size and (items.min() < 0 or items.max() >= size):
            raise DataError(
                f"an excluded item index is outside 0..{size - 1}",
                "exclude indices of indexed items only",
            )
    return lists if any(items.size for items in lists) else None


def padded(indices: np.ndarray, scores: np.ndarray) -> Neighbours:
    """Results with every -inf score (an excluded or missing item) marked as index -1."""
    missing = ~np.isfinite(scores) | (indices < 0)
    return Neighbours(
        indices=np.where(missing, -1, indices).astype(np.int64),
        scores=np.where(missing, -np.inf, scores).astype(np.float32),
    )


class ExactIndex:
    """Every item scored; the reference the approximate index is measured against.

    Ties are broken towards the lower item index among the ``k`` selected items.
    """

    kind = "exact"

    def __init__(self, vectors: ArrayLike) -> None:
        self.vectors = as_vectors(vectors, "item vectors")

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def search(self, queries: ArrayLike, k: int, exclude: Exclusions = None) -> Neighbours:
        """Exact top-``k`` by inner product, in chunks of at most :data:`CHUNK_CELLS`."""
        query = as_vectors(queries, "queries", self.dim)
        check_k(k, self.size)
        lists = exclusion_lists(exclude, len(query), self.size)
        step = max(1, CHUNK_CELLS // self.size)
        indices = np.empty((len(query), k), dtype=np.int64)
        scores = np.empty((len(query), k), dtype=np.float32)
        for start in range(0, len(query), step):
            rows = slice(start, start + step)
            block = query[rows] @ self.vectors.T
            if lists is not None:
                for row, items in enumerate(lists[rows]):
                    block[row, items] = -np.inf
            indices[rows], scores[rows] = _top_k(block, k)
        return padded(indices, scores)


def _top_k(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest entries, best first (ties: lower column first)."""
    if k < block.shape[1]:
        chosen = np.sort(np.argpartition(-block, k - 1, axis=1)[:, :k], axis=1)
    else:
        chosen = np.broadcast_to(np.arange(block.shape[1]), block.shape)
    values = np.take_along_axis(block, chosen, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(chosen, order, axis=1), np.take_along_axis(values, order, axis=1)


class HNSWIndex:
    """FAISS HNSW graph over the items, searched by inner product.

    ``m``: links per node (memory n·m·2·4 bytes on the base layer); ``ef_construction``:
    candidate list while inserting (build time vs graph quality); ``ef_search``: candidate
    list per query, settable between searches (time vs recall); ``seed``: the generator
    of the nodes' levels.
    """

    kind = "hnsw"

    def __init__(
        self,
        vectors: ArrayLike,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        seed: int = 0,
    ) -> None:
        import faiss

        for name, value in (
            ("m", m),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"HNSW {name}={value!r} is not a positive integer", f"set {name} >= 1"
                )
        data = as_vectors(vectors, "item vectors")
        self.index: Any = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.rng = faiss.RandomGenerator(seed)
        self.index.add(data)
        self.ef_search = ef_search
        self.m = m
        self.ef_construction = ef_construction

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def nbytes(self) -> int:
        hnsw = self.index.hnsw
        links = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return int(self.size * self.dim * 4 + links)

    def search(self, queries: ArrayLike, k: int, exclude: Exclusions = None) -> Neighbours:
        """Approximate top-``k``; excluded items removed by over-fetching (module doc)."""
        import faiss

        query = as_vectors(queries, "queries", self.dim)
        check_k(k, self.size)
        lists = exclusion_lists(exclude, len(query), self.size)
        longest = 0 if lists is None else max(items.size for items in lists)
        fetch = min(self.size, k + longest)
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, fetch))
        scores, indices = self.index.search(query, fetch, params=params)
        if lists is not None:
            scores = scores.copy()
            for row, items in enumerate(lists):
                scores[row, np.isin(indices[row], items)] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")
            scores = np.take_along_axis(scores, order, axis=1)
            indices = np.take_along_axis(indices, order, axis=1)
        return padded(indices[:, :k], scores[:, :k])


def build_index(
    vectors: ArrayLike,
    kind: IndexKind = "auto",
    *,
    m: int = DEFAULT_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    seed: int = 0,
) -> VectorIndex:
    """An index over ``vectors`` (one row per item, row = item index): ``exact``,
    ``hnsw`` (the HNSW settings apply), or ``auto``: exact below
    :data:`AUTO_EXACT_BELOW` items, HNSW from there."""
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown index kind {kind!r}", f"use one of {', '.join(INDEX_KINDS)}")
    data = as_vectors(vectors, "item vectors")
    if kind == "exact" or (kind == "auto" and len(data) < AUTO_EXACT_BELOW):
        return ExactIndex(data)
    return HNSWIndex(data, m=m, ef_construction=ef_construction, ef_search=ef_search, seed=seed)
