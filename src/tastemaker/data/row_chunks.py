"""Whole-column integer work done a slice of rows at a time.

Preparing 20M interactions keeps a few row-length arrays alive (the source table, the
indices before and after a step); each full-length temporary on top of them (an
``int64`` copy of a mask's positions, a remapped index beside the old one) adds to the
peak. These helpers write into their output slice by slice, so a temporary is one
slice long.
"""

from __future__ import annotations

import numpy as np

#: Rows handled at once (2 MB per int64 temporary).
CHUNK_ROWS = 1 << 18

#: Row positions as Polars indexes rows (32 bits while a table has under 2^32 rows).
ROW = np.uint32


def positions(keep: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(keep)`` as :data:`ROW` (64 bits for 2^32 rows or more), without
    a full-length ``int64`` copy."""
    dtype = ROW if len(keep) <= np.iinfo(ROW).max else np.int64
    out = np.empty(int(np.count_nonzero(keep)), dtype=dtype)
    filled = 0
    for start in range(0, len(keep), CHUNK_ROWS):
        found = np.flatnonzero(keep[start : start + CHUNK_ROWS])
        found += start
        out[filled : filled + len(found)] = found
        filled += len(found)
    return out


def map_in_place(index: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """``mapping[index]`` written over ``index`` (returned), one slice at a time."""
    for start in range(0, len(index), CHUNK_ROWS):
        piece = index[start : start + CHUNK_ROWS]
        piece[:] = mapping[piece]
    return index


def counts(index: np.ndarray, minlength: int, keep: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount(index[keep], minlength=minlength)`` without copying the kept rows."""
    if keep is None:
        return np.bincount(index, minlength=minlength)
    total = np.zeros(minlength, dtype=np.int64)
    for start in range(0, len(index), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        total += np.bincount(index[start:stop][keep[start:stop]], minlength=minlength)
    return total


def repeated_rows(keys: np.ndarray, order: np.ndarray) -> np.ndarray:
    """True for each row whose key another row shares, given ``order`` sorting ``keys``:
    neighbours in that order compared a slice at a time (overlapping by one), so no
    sorted copy of ``keys`` is made."""
    repeated = np.zeros(len(keys), dtype=bool)
    for start in range(0, len(order) - 1, CHUNK_ROWS):
        at = order[start : start + CHUNK_ROWS + 1]
        run = keys[at]
        same = run[1:] == run[:-1]
        repeated[at[1:][same]] = True
        repeated[at[:-1][same]] = True
    return repeated


def key_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row positions that sort non-negative integer ``keys`` (equal keys in row order),
    and per row whether another row shares its key. ``keys`` is used up.

    When a row position fits in the bits above the largest key, each key is shifted
    up, its position packed below, and the one array sorted in place: the positions
    are its low bits, so no ``argsort`` output sits beside the keys (half the memory,
    and a plain sort is faster than an argsort).
    """
    n = len(keys)
    shift = max(n - 1, 1).bit_length()
    if n == 0 or keys.dtype != np.int64 or keys.min() < 0 or keys.max() >= 1 << (63 - shift):
        order = np.argsort(keys, kind="stable")
        return order, repeated_rows(keys, order)
    for start in range(0, n, CHUNK_ROWS):
        piece = keys[start : start + CHUNK_ROWS]
        piece <<= shift
        piece |= np.arange(start, start + len(piece))
    keys.sort()
    low = (1 << shift) - 1
    repeated = np.zeros(n, dtype=bool)
    for start in range(0, n - 1, CHUNK_ROWS):
        run = keys[start : start + CHUNK_ROWS + 1]
        high = run >> shift
        same = high[1:] == high[:-1]
        repeated[run[1:][same] & low] = True
        repeated[run[:-1][same] & low] = True
    keys &= low
    return keys, repeated
