"""A canonical hash of interaction rows, computed without sorting strings.

Rows are ordered by one integer per (user, item) pair that sorts as the pair of IDs
does (time only where a pair repeats) and hashed as CSV text a slice at a time, so
the hash is the same for equal data whatever its row order, and no copy of a whole
20M-row table is ever made. :meth:`Interactions.content_hash` and
:func:`tastemaker.data.interactions.content_hash` supply the integers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import polars as pl

from tastemaker.data.row_chunks import CHUNK_ROWS, key_order


def lexical_codes(column: pl.Series) -> pl.Series:
    """Integer codes of a string column that sort as its strings do (rank among the
    distinct values): sorting the few distinct IDs, then one hash lookup per row, is
    many times cheaper than sorting millions of strings."""
    distinct = column.unique().sort()
    return column.cast(pl.Enum(distinct)).to_physical()


def canonical_order(pairs: Callable[[], np.ndarray], times: Callable[[], pl.Series]) -> np.ndarray:
    """Row positions in the hash's order, given ``pairs`` making per row one integer for
    its (user, item) pair that sorts as the pair of IDs does, and ``times`` the
    timestamp column (read only where a pair repeats)."""
    order, repeated = key_order(pairs())  # pairs, then time where a pair repeats, then row
    if not repeated.any():
        return order
    del order, repeated
    keys, time = pairs(), times()
    return np.lexsort((time.fill_null(0).to_numpy(), time.is_null().to_numpy(), keys))


def hash_rows(rows_at: Callable[[np.ndarray], pl.DataFrame], order: np.ndarray) -> str:
    """The content hash of the rows at positions ``order`` (:func:`canonical_order`),
    ``rows_at`` giving the rows at some positions."""
    # CSV text, not a Polars hash: it must not change with the library version. Gathered
    # a slice of rows at a time and streamed into the digest: no copy of the whole
    # table, nor of a slice's text, is ever made.
    sink = _Digest()
    for start in range(0, max(len(order), 1), CHUNK_ROWS):
        rows_at(order[start : start + CHUNK_ROWS]).write_csv(sink, include_header=start == 0)
    return sink.sha.hexdigest()


class _Digest:
    """A binary file for Polars' CSV writer that hashes what is written to it."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return len(data)
