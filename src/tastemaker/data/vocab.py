"""Raw ID <-> contiguous index maps.

Users of the API only see raw IDs (strings); models and the evaluator work on
contiguous ``int64`` indices. A :class:`Vocab` is the single translation table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from tastemaker.errors import ConfigError, DataError
from tastemaker.reporting.values import article, plural


def id_list(ids: Iterable[object], what: str = "ids") -> list[str]:
    """``ids`` as a list of raw ID strings. One string is a ConfigError: iterating it
    would silently yield its characters as IDs ("10" → "1", "0")."""
    if isinstance(ids, str | bytes):
        raise ConfigError(
            f"{what}={ids!r} is one string, not a list of IDs",
            f"pass a list, e.g. {what}=[{ids!r}]",
        )
    return [str(i) for i in ids]


class Vocab:
    """An ordered set of raw IDs; the position of an ID is its index."""

    def __init__(self, ids: Iterable[str], kind: str = "item") -> None:
        self.kind = kind
        if isinstance(ids, pl.Series) and ids.dtype == pl.Utf8 and not ids.null_count():
            self._ids = ids.rename("id")  # already strings: no round trip through Python
        else:
            self._ids = pl.Series("id", id_list(ids, "ids"), dtype=pl.Utf8)
        if self._ids.n_unique() != len(self._ids):
            raise DataError(f"duplicate {kind} IDs in vocabulary", f"make {kind} IDs unique")
        self._lookup: dict[str, int] | None = None
        self._ranks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw_id: object) -> bool:
        return str(raw_id) in self._table()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._ids.equals(other._ids)

    def __hash__(self) -> int:  # pragma: no cover - vocabs are not used as keys
        return id(self)

    @property
    def ids(self) -> list[str]:
        return self._ids.to_list()

    def _table(self) -> dict[str, int]:
        if self._lookup is None:
            self._lookup = {raw: i for i, raw in enumerate(self._ids.to_list())}
        return self._lookup

    def index(self, raw_ids: Sequence[object] | object) -> np.ndarray:
        """Indices of ``raw_ids``; an unknown ID is a :class:`DataError` naming it."""
        single = isinstance(raw_ids, str | int | np.integer)
        wanted = [str(raw_ids)] if single else [str(r) for r in raw_ids]  # type: ignore[union-attr]
        table = self._table()
        missing = [r for r in wanted if r not in table]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise DataError(
                f"unknown {self.kind} ID(s): {shown}",
                f"use {article(self.kind)} ID present in the data set "
                f"(e.g. {self._ids[0] if len(self) else 'none available'})",
            )
        return np.fromiter((table[r] for r in wanted), dtype=np.int64, count=len(wanted))

    def encode(self, column: pl.Series) -> np.ndarray:
        """Vectorised :meth:`index` for a whole column (used on millions of rows): a cast
        to an Enum whose categories are this vocabulary, so each code is the index."""
        if len(self):
            try:
                codes = column.cast(pl.Utf8).cast(pl.Enum(self._ids)).to_physical()
            except pl.exceptions.InvalidOperationError:
                pass  # an unknown ID: the join below names it
            else:
                if not codes.null_count():
                    return codes.to_numpy().astype(np.int64)
        frame = pl.DataFrame({"id": column.cast(pl.Utf8)})
        table = pl.DataFrame({"id": self._ids, "idx": np.arange(len(self), dtype=np.int64)})
        joined = frame.join(table, on="id", how="left", maintain_order="left")
        if joined["idx"].null_count():
            bad = joined.filter(pl.col("idx").is_null())["id"].unique(maintain_order=True)
            raise DataError(
                f"{plural(len(bad), f'{self.kind} ID')} not in the vocabulary, "
                f"e.g. {', '.join(bad.head(5).to_list())}",
                f"every interaction must refer to a known {self.kind}",
            )
        return joined["idx"].to_numpy()

    def lexical_ranks(self) -> np.ndarray:
        """Per index, the rank of its ID among the IDs sorted as strings: integer codes
        that sort rows as their IDs would (what canonical content hashes sort by)."""
        if self._ranks is None:
            ranks = np.empty(len(self), dtype=np.int64)
            ranks[self._ids.arg_sort().to_numpy()] = np.arange(len(self), dtype=np.int64)
            self._ranks = ranks
        return self._ranks

    def decode(self, indices: np.ndarray | Sequence[int]) -> list[str]:
        """Raw IDs of contiguous indices."""
        return self.at(indices).to_list()

    def at(self, indices: np.ndarray | Sequence[int]) -> pl.Series:
        """Raw IDs of contiguous indices as a string Series (no Python strings made)."""
        return self._ids.gather(np.asarray(indices, dtype=np.int64))
