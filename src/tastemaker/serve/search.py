"""Text search over the catalog: BM25 over each item's title, text fields, genres and tags.

BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
2009) via ``bm25s`` (English stop words, no stemming), built once when the service
starts. With a user, the matching items (BM25 score > 0, at most
:data:`RERANK_POOL`) are re-ordered by that user's model scores: the query decides
what matches, the user's taste decides the order among the matches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tastemaker.data.catalog import Catalog

RERANK_POOL = 200


def item_text(row: dict[str, Any], fields: list[str]) -> str:
    """One document: the values of ``fields`` (lists joined), empty ones left out."""
    parts = []
    for name in fields:
        value = row.get(name)
        if isinstance(value, list):
            parts.extend(str(v) for v in value if v is not None)
        elif value is not None:
            parts.append(str(value))
    return " ".join(parts)


class CatalogSearch:
    """A BM25 index of the catalog's items (row order = the catalog's)."""

    def __init__(self, catalog: Catalog) -> None:
        import bm25s

        fields = ["title", *catalog.text_fields, *catalog.categorical_fields]
        docs = [item_text(row, fields) for row in catalog.frame.iter_rows(named=True)]
        self._bm25s = bm25s
        self._index = bm25s.BM25()
        self._index.index(
            bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False
        )
        self._docs = docs
        self.size = len(docs)

    def tokens(self, query: str) -> list[str]:
        """The query's searchable words (stop words and one-letter words dropped)."""
        tokenized = self._bm25s.tokenize(
            [query], stopwords="en", show_progress=False, return_ids=False
        )
        return list(tokenized[0])

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(catalog row, BM25 score) of up to ``k`` matching items, best first."""
        words = self.tokens(query)
        if not words or not self.size:
            return []
        rows, scores = self._index.retrieve([words], k=min(k, self.size), show_progress=False)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]

    def like(self, row: int, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` rows whose text best matches row ``row``'s own text (itself left out):
        similar items for an item nobody has interacted with yet."""
        return [(r, s) for r, s in self.search(self._docs[row], k + 1) if r != row][:k]


def personalised(
    matches: list[tuple[int, float]], user_scores: np.ndarray
) -> list[tuple[int, float]]:
    """``matches`` ordered by the user's scores of those rows (ties by BM25 order)."""
    order = sorted(range(len(matches)), key=lambda i: (-user_scores[i], i))
    return [matches[i] for i in order]


__all__ = ["RERANK_POOL", "CatalogSearch", "personalised"]
