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

#: Rows written to CSV text at once while hashing (bounded memory on 20M-row parts).
HASH_ROWS = 1 << 20


def lexical_codes(column: pl.Series) -> pl.Series:
    """Integer codes of a string column that sort as its strings do (rank among the
    distinct values): sorting the few distinct IDs, then one hash lookup per row, is
    many times cheaper than sorting millions of strings."""
    distinct = column.unique().sort()
    return column.cast(pl.Enum(distinct)).to_physical()


def hash_rows(
    rows_at: Callable[[np.ndarray], pl.DataFrame],
    times: Callable[[], pl.Series],
    pairs: np.ndarray,
) -> str:
    """The content hash of interaction rows, given per row one integer for its (user,
    item) pair that sorts as the pair of IDs does; ``rows_at`` gives the rows at some
    positions, ``times`` the timestamp column."""
    n = len(pairs)
    # Any sort will do while pairs are distinct; where one repeats, the stable lexsort
    # below orders it by time, then by row.
    order = np.argsort(pairs)
    repeats = _has_repeats(pairs, order)
    if repeats:
        time = times()
        order = np.lexsort((time.fill_null(0).to_numpy(), time.is_null().to_numpy(), pairs))
    del pairs
    # CSV text, not a Polars hash: it must not change with the library version. Written a
    # slice of rows at a time, so no copy of the whole table is ever made.
    digest = hashlib.sha256()
    for start in range(0, max(n, 1), HASH_ROWS):
        piece = rows_at(order[start : start + HASH_ROWS])
        digest.update(piece.write_csv(include_header=start == 0).encode())
    return digest.hexdigest()


def _has_repeats(pairs: np.ndarray, order: np.ndarray) -> bool:
    """Whether two rows share a pair: neighbours in the sorted ``order``, compared a
    slice at a time (overlapping by one), so no second sorted copy is made."""
    for start in range(0, len(order) - 1, HASH_ROWS):
        run = pairs[order[start : start + HASH_ROWS + 1]]
        if (run[1:] == run[:-1]).any():
            return True
    return False
