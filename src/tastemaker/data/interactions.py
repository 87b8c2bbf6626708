"""User-item interactions: who, what, how much, when, and optional text.

The frame always has the columns of :data:`COLUMNS`; ``rating``, ``timestamp``
and ``text`` may be null. Interactions are *bound* to a user and an item
:class:`~tastemaker.data.vocab.Vocab`: the three parts of a split share the
same vocabularies, so index ``i`` means the same item in train and test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

from tastemaker.data.row_chunks import CHUNK_ROWS, ROW, map_in_place, positions
from tastemaker.data.row_hash import canonical_order, hash_rows, lexical_codes
from tastemaker.data.vocab import Vocab
from tastemaker.errors import DataError
from tastemaker.reporting.values import plural

USER_ID, ITEM_ID, RATING, TIMESTAMP, TEXT = "user_id", "item_id", "rating", "timestamp", "text"
COLUMNS = {
    USER_ID: pl.Utf8,
    ITEM_ID: pl.Utf8,
    RATING: pl.Float32,
    TIMESTAMP: pl.Int64,
    TEXT: pl.Utf8,
}


#: The fix for NaN or infinite values, for CLI and Python users alike.
INVALID_FIX = (
    "correct or remove those rows, or drop them with --drop-invalid "
    "(DataConfig(drop_invalid=True) in Python)"
)


def typed_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` cast to the interaction schema, null optional columns added.

    Float timestamps stay floats here, so a NaN among them can be named (casting
    would fail on it); :func:`normalise_frame` makes them integers once checked.
    """
    for required in (USER_ID, ITEM_ID):
        if required not in frame.columns:
            raise DataError(
                f"interaction table has no '{required}' column "
                f"(columns: {', '.join(frame.columns) or 'none'})",
                f"name the column '{required}' or map it with --{required.replace('_id', '')}-col",
            )
    exprs = []
    for name, dtype in COLUMNS.items():
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == TIMESTAMP and frame[name].dtype.is_float():
            exprs.append(pl.col(name).cast(pl.Float64))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=True))
    try:
        return frame.select(exprs)
    except pl.exceptions.PolarsError as exc:
        raise DataError(
            f"interaction columns have values of the wrong type ({exc.__class__.__name__})",
            "ratings and timestamps must be numbers",
        ) from exc


def invalid_rows(frame: pl.DataFrame) -> pl.Series:
    """True for each row of a :func:`typed_frame` whose rating or timestamp is NaN or
    infinite: such a value passes every filter and poisons every mean downstream."""
    mask = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True).alias("invalid")
    for name in (RATING, TIMESTAMP):
        if frame[name].dtype.is_float():
            mask = mask | (~frame[name].is_finite()).fill_null(False)
    return mask


def without_invalid(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """``frame`` typed, without its NaN or infinite rows, and how many were dropped."""
    typed = typed_frame(frame)
    invalid = invalid_rows(typed)
    return typed.filter(~invalid), int(invalid.sum())


def normalise_frame(frame: pl.DataFrame, where: str = "the interaction table") -> pl.DataFrame:
    """Cast ``frame`` to the interaction schema; a NaN or infinite rating or timestamp, or
    an empty ID, is a DataError naming the first such row of ``where``."""
    out = typed_frame(frame)
    invalid = invalid_rows(out)
    if invalid.any():
        row = int(invalid.arg_max() or 0)
        first = out.row(row, named=True)
        raise DataError(
            f"{where} has {plural(int(invalid.sum()), 'interaction')} whose rating or "
            f"timestamp is NaN or infinite; the first is data row {row + 1} "
            f"(user {first[USER_ID]!r}, item {first[ITEM_ID]!r}, rating {first[RATING]}, "
            f"timestamp {first[TIMESTAMP]})",
            INVALID_FIX,
        )
    if out[USER_ID].null_count() or out[ITEM_ID].null_count():
        raise DataError("some interactions have an empty user or item ID", "remove those rows")
    return out.with_columns(pl.col(TIMESTAMP).cast(pl.Int64))


class Interactions:
    """A table of interactions bound to user and item vocabularies.

    The rows of :meth:`concat`, :meth:`subset` and :meth:`take` are made lazily: their
    integer indices at once, the string frame only when something reads it (one column
    at a time through :meth:`column`), so a scorer that ignores the evaluator's context
    never pays for concatenating millions of string rows, and a chain of preparation
    steps gathers its rows from the source table once, at the end.
    """

    def __init__(
        self, frame: pl.DataFrame, users: Vocab | None = None, items: Vocab | None = None
    ) -> None:
        self._frame: pl.DataFrame | None = normalise_frame(frame)
        self._parts: tuple[Interactions, ...] = ()
        self._source: tuple[pl.DataFrame, np.ndarray] | None = None  # rows to gather
        self.users = users or Vocab(self.frame[USER_ID].unique().sort(), kind="user")
        self.items = items or Vocab(self.frame[ITEM_ID].unique().sort(), kind="item")
        self._indices: tuple[np.ndarray, np.ndarray] | None = None
        self._content_hash: str | None = None  # the rows never change: computed once

    @property
    def frame(self) -> pl.DataFrame:
        """The rows as a Polars frame with the columns of :data:`COLUMNS`."""
        if self._frame is None:
            if self._source is not None:
                self._frame = _gather(*self._source)
            else:
                self._frame = pl.concat([part.frame for part in self._parts], how="vertical")
            self._parts, self._source = (), None
        return self._frame

    def __getstate__(self) -> dict[str, object]:
        """Pickled (e.g. sent to Ray workers) with its own rows, not a lazy source's."""
        self.frame  # noqa: B018 - gathers the rows, dropping the reference to the source
        return self.__dict__.copy()

    def column(self, name: str) -> pl.Series:
        """One column of the rows; of lazy rows only that column is gathered or joined."""
        if self._frame is not None:
            return self._frame[name]
        if self._source is not None:
            return _gather(self._source[0].select(name), self._source[1])[name]
        return pl.concat([part.column(name) for part in self._parts])

    def __len__(self) -> int:
        if self._frame is None:
            return len(self.indices()[0])
        return self._frame.height

    def __repr__(self) -> str:
        return (
            f"Interactions({len(self)} rows, {self.n_active_users} users, "
            f"{self.n_active_items} items; vocab {len(self.users)}x{len(self.items)})"
        )

    @property
    def n_active_users(self) -> int:
        if self._indices is not None:
            return int(np.count_nonzero(np.bincount(self._indices[0], minlength=1)))
        return self.frame[USER_ID].n_unique()

    @property
    def n_active_items(self) -> int:
        if self._indices is not None:
            return int(np.count_nonzero(np.bincount(self._indices[1], minlength=1)))
        return self.frame[ITEM_ID].n_unique()

    @property
    def has_timestamps(self) -> bool:
        if self._frame is None and self._parts:
            return len(self) > 0 and all(p.has_timestamps for p in self._parts if len(p))
        return len(self) > 0 and self.column(TIMESTAMP).null_count() == 0

    def with_frame(self, frame: pl.DataFrame) -> Interactions:
        """Same vocabularies, other rows."""
        return Interactions(frame, self.users, self.items)

    def subset(self, keep: np.ndarray, items: Vocab | None = None) -> Interactions:
        """The rows where ``keep`` (a boolean mask), with their indices carried over and
        nothing validated again (they were when these rows were made).

        The user vocabulary becomes the users left, in vocabulary order (a sorted one
        stays what ``Interactions(frame)`` would build); ``items``, a vocabulary whose
        IDs are a subset of this one's in the same order (a pruned catalog's), replaces
        the item vocabulary: every kept row's item must be in it.
        """
        users, item_idx = (index[keep] for index in self.indices())  # copies: mapped in place
        active = np.zeros(len(self.users), dtype=bool)
        active[users] = True
        vocab_users = self.users
        if not active.all():
            vocab_users = Vocab(self.users.at(np.flatnonzero(active)), kind="user")
            map_in_place(users, np.cumsum(active) - 1)
        vocab_items = self.items
        if items is not None and items is not self.items:
            known = np.zeros(len(self.items), dtype=bool)
            known[self.items.encode(pl.Series(items.ids, dtype=pl.Utf8))] = True
            if not known[item_idx].all():
                raise DataError(
                    "some kept interactions are on items outside the new item vocabulary",
                    "keep the items of every kept interaction",
                )
            vocab_items = items
            map_in_place(item_idx, np.cumsum(known) - 1)
        return self._taken(keep, vocab_users, vocab_items, (users, item_idx))

    def take(self, rows: np.ndarray) -> Interactions:
        """The rows at positions ``rows``, in that order, on the same vocabularies;
        indices carried, the frame gathered when read."""
        user_idx, item_idx = (index[rows] for index in self.indices())
        return self._taken(rows, self.users, self.items, (user_idx, item_idx))

    def on_users(self, users: Vocab | None = None) -> Interactions:
        """The same rows on another user vocabulary, which must hold each of their users
        (None: their users sorted, what ``Interactions(frame)`` builds); indices mapped
        through the vocabularies, no row is read as a string."""
        user_idx, item_idx = self.indices()
        used, ids = _used(user_idx, self.users)
        if users is None:
            if used.all() and ids.is_sorted():
                return self
            users = Vocab(ids.sort(), kind="user")
        if users is self.users:
            return self
        mapped = _remap(user_idx, used, ids, users)
        return self._taken(None, users, self.items, (mapped, item_idx))

    def on_items(self, items: Vocab) -> Interactions:
        """The same rows on another item vocabulary (a catalog's), which must hold each
        of their items; mapped through the vocabularies like :meth:`on_users`."""
        if items is self.items or items == self.items:
            return self
        user_idx, item_idx = self.indices()
        mapped = _remap(item_idx, *_used(item_idx, self.items), items)
        return self._taken(None, self.users, items, (user_idx, mapped))

    def _taken(
        self,
        rows: np.ndarray | None,
        users: Vocab,
        items: Vocab,
        indices: tuple[np.ndarray, ...],
    ) -> Interactions:
        """Rows of these at positions ``rows``, or where ``rows`` (a boolean mask) is
        True, or all of them (None), with their ``indices`` already made."""
        taken = object.__new__(Interactions)
        if rows is None:  # the same rows: share their source, or their frame
            shared = self._source is not None
            taken._frame, taken._source = (None, self._source) if shared else (self.frame, None)
        elif self._source is not None:  # rows of rows: gather from the source table once
            taken._frame, taken._source = None, (self._source[0], self._source[1][rows])
        else:  # as Polars' row indices (32 bits): half the memory, no conversion
            kept = positions(rows) if rows.dtype == bool else rows.astype(ROW, copy=False)
            taken._frame, taken._source = None, (self.frame, kept)
        taken._parts, taken.users, taken.items = (), users, items
        taken._indices = (indices[0], indices[1])
        taken._content_hash = self._content_hash if rows is None else None
        return taken

    @staticmethod
    def concat(parts: Sequence[Interactions]) -> Interactions:
        """The rows of ``parts`` appended in order, on their shared vocabularies.

        E.g. train + valid: what is known about users when the test part is scored.
        """
        if not parts:
            raise DataError("no interactions to concatenate", "pass at least one part")
        first = parts[0]
        for part in parts[1:]:
            if part.users != first.users or part.items != first.items:
                raise DataError(
                    "the interactions to concatenate use different user or item vocabularies",
                    "concatenate parts of one Split (they share its Vocabs)",
                )
        joined = object.__new__(Interactions)
        joined._frame, joined._parts, joined._source = None, tuple(parts), None
        joined.users, joined.items, joined._content_hash = first.users, first.items, None
        # The parts' indices (usually cached already) are the joined rows' indices: no
        # re-encoding when the evaluator builds its context for every call.
        users, items = zip(*(part.indices() for part in parts), strict=True)
        joined._indices = (np.concatenate(users), np.concatenate(items))
        return joined

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(user index, item index) of every row, as int64 arrays."""
        if self._indices is None:
            self._indices = (
                self.users.encode(self.frame[USER_ID]),
                self.items.encode(self.frame[ITEM_ID]),
            )
        return self._indices

    def to_csr(self, values: str | None = None) -> sp.csr_matrix:
        """Users x items sparse matrix (binary, or the ``values`` column).

        Duplicate (user, item) pairs count once in the binary matrix.
        """
        users, items = self.indices()
        if values is None:
            data = np.ones(len(users), dtype=np.float32)
        else:
            data = self.frame[values].fill_null(0).to_numpy().astype(np.float32)
        matrix = sp.csr_matrix(
            (data, (users, items)), shape=(len(self.users), len(self.items)), dtype=np.float32
        )
        matrix.sum_duplicates()
        if values is None:
            matrix.data[:] = 1.0
        return matrix

    def sequences(self) -> pl.DataFrame:
        """One row per user: items in time order (the sequential view)."""
        if not self.has_timestamps:
            raise DataError(
                "interactions have no timestamps, so they have no time order",
                "use a data set with timestamps or a random split",
            )
        return (
            self.frame.sort([USER_ID, TIMESTAMP], maintain_order=True)
            .group_by(USER_ID, maintain_order=True)
            .agg(pl.col(ITEM_ID), pl.col(TIMESTAMP))
        )

    def content_hash(self) -> str:
        """:func:`content_hash` of the rows, sorted by the vocabularies' lexical ranks of
        the indices (no string sorting, no second validation); lazy rows are gathered
        from their source a slice at a time, never as a whole table. Computed once (a
        fit records it for resuming: ~20 CPU-s at 20M rows)."""
        if self._content_hash is None:
            order = canonical_order(self._lexical_pairs, lambda: self.column(TIMESTAMP))
            self._content_hash = hash_rows(self._rows_at, order)
        return self._content_hash

    def adopt_content_hash(self, value: str) -> None:
        """Take ``value`` as the rows' content hash without computing it: for a caller
        that has proved it (a split part whose file bytes are those its manifest names)."""
        self._content_hash = value

    def _lexical_pairs(self) -> np.ndarray:
        """Per row one integer for its (user, item) pair that sorts as the IDs do."""
        users, items = self.indices()
        pairs = self.users.lexical_ranks()[users]
        pairs *= len(self.items)
        ranks = self.items.lexical_ranks()
        for start in range(0, len(pairs), CHUNK_ROWS):  # no second full-length array
            pairs[start : start + CHUNK_ROWS] += ranks[items[start : start + CHUNK_ROWS]]
        return pairs

    def _rows_at(self, positions: np.ndarray) -> pl.DataFrame:
        if self._frame is None and self._source is not None:
            return _gather(self._source[0], self._source[1][positions])
        return self.frame[positions]


def _used(index: np.ndarray, vocab: Vocab) -> tuple[np.ndarray, pl.Series]:
    """Which entries of ``vocab`` the rows' ``index`` uses (a mask), and their IDs."""
    used = np.bincount(index, minlength=len(vocab)) > 0
    return used, vocab.at(np.flatnonzero(used))


def _remap(index: np.ndarray, used: np.ndarray, ids: pl.Series, vocab: Vocab) -> np.ndarray:
    """``index`` into another vocabulary: the used entries' IDs (``ids``) encoded in
    ``vocab`` (a DataError names one it lacks), then looked up per row."""
    mapping = np.full(len(used), -1, dtype=np.int64)
    mapping[used] = vocab.encode(ids)
    return mapping[index]


def _gather(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """The ``rows`` of ``frame`` in order (a slice when they are one run, no copy)."""
    one_run = len(rows) and int(rows[-1]) - int(rows[0]) == len(rows) - 1
    if one_run and (np.diff(rows.astype(np.int64)) == 1).all():
        return frame.slice(int(rows[0]), len(rows))
    return frame[rows]


def content_hash(frame: pl.DataFrame) -> str:
    """SHA-256 of interaction rows in a canonical order: equal data, equal hash.

    The order is user ID, item ID, timestamp (nulls last), as strings and numbers sort
    (ties in row order); the rows are sorted by integer codes that sort like the IDs
    (time only where a pair repeats), and hashed as CSV text a slice at a time.
    """
    frame = normalise_frame(frame)

    def pairs() -> np.ndarray:
        codes = lexical_codes(frame[USER_ID]).to_numpy().astype(np.int64)
        items = lexical_codes(frame[ITEM_ID]).to_numpy()
        codes *= int(items.max(initial=0)) + 1
        codes += items
        return codes

    return hash_rows(frame.__getitem__, canonical_order(pairs, lambda: frame[TIMESTAMP]))
