"""A set of non-negative int64 keys with vectorised, exact membership tests.

Negative sampling asks, for millions of drawn (user, item) pairs per epoch, whether
the user has interacted with the item. A binary search in the sorted keys makes
about log₂(n) dependent cache misses per query (1.5 s per 4M queries at 5M
interactions, more than a whole training pass). This hash table answers with about
one gather per query: open addressing with linear probing (Knuth, TAOCP vol. 3,
§6.4), multiplicative (Fibonacci) hashing to a bucket of :data:`WIDTH` adjacent
slots, about one key per bucket. A query reads its bucket (one cache line) and
only moves on to the next bucket when every slot of its own is taken, which is rare.
"""

from __future__ import annotations

import numpy as np
import torch

from tastemaker.errors import DataError

WIDTH = 4  # slots per bucket: 4 int64 keys, half a 64-byte cache line
_EMPTY = -1
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2⁶⁴ / golden ratio, odd


class KeySet:
    """Exact membership of non-negative int64 keys (unique), built once, queried in bulk."""

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and keys.min() < 0:
            raise DataError("a KeySet holds non-negative keys only", "pass keys >= 0")
        self._bits = max(2, int(np.ceil(np.log2(len(keys) + 1))))  # >= one bucket per key
        self._n_slots = WIDTH << self._bits
        self._table = np.full(self._n_slots, _EMPTY, dtype=np.int64)
        slots = self._bucket(keys) * WIDTH
        pending = np.arange(len(keys))
        while len(pending):  # place what lands on a free slot; the rest probe the next one
            free = pending[self._table[slots[pending]] == _EMPTY]
            self._table[slots[free]] = keys[free]  # of keys sharing a free slot, one wins
            placed = self._table[slots[pending]] == keys[pending]
            pending = pending[~placed]
            slots[pending] = (slots[pending] + 1) % self._n_slots

    def _bucket(self, keys: np.ndarray) -> np.ndarray:
        """Top ``bits`` bits of key x the multiplier mod 2⁶⁴ (unsigned NumPy arithmetic wraps)."""
        product = keys.astype(np.uint64) * _MULTIPLIER
        return (product >> np.uint64(64 - self._bits)).astype(np.int64)

    def contains(self, queries: torch.Tensor) -> torch.Tensor:
        """A bool tensor: which ``queries`` (int64) are in the set."""
        table = torch.from_numpy(self._table).view(-1, WIDTH)
        buckets = torch.from_numpy(self._bucket(queries.numpy()))
        window = table.index_select(0, buckets)  # every query's own bucket (one cache line)
        found = (window == queries[:, None]).any(dim=1)
        # A key sits before the first empty slot from its bucket on: a full bucket
        # without it sends the query on to the next bucket.
        pending = torch.nonzero(~found & (window != _EMPTY).all(dim=1)).view(-1)
        while len(pending):
            buckets[pending] = (buckets[pending] + 1) % len(table)
            window = table.index_select(0, buckets[pending])
            hit = (window == queries[pending, None]).any(dim=1)
            found[pending[hit]] = True
            pending = pending[~hit & (window != _EMPTY).all(dim=1)]
        return found
