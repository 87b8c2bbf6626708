"""User-item interactions: who, what, how much, when, and optional text.

The frame always has the columns of :data:`COLUMNS`; ``rating``, ``timestamp``
and ``text`` may be null. Interactions are *bound* to a user and an item
:class:`~tastemaker.data.vocab.Vocab`: the three parts of a split share the
same vocabularies, so index ``i`` means the same item in train and test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl
import scipy.sparse as sp

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
    mask = pl.Series("invalid", [False] * frame.height, dtype=pl.Boolean)
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
    """A table of interactions bound to user and item vocabularies."""

    def __init__(
        self, frame: pl.DataFrame, users: Vocab | None = None, items: Vocab | None = None
    ) -> None:
        self.frame = normalise_frame(frame)
        self.users = users or Vocab(self.frame[USER_ID].unique().sort(), kind="user")
        self.items = items or Vocab(self.frame[ITEM_ID].unique().sort(), kind="item")
        self._indices: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.frame.height

    def __repr__(self) -> str:
        return (
            f"Interactions({len(self)} rows, {self.n_active_users} users, "
            f"{self.n_active_items} items; vocab {len(self.users)}x{len(self.items)})"
        )

    @property
    def n_active_users(self) -> int:
        return self.frame[USER_ID].n_unique()

    @property
    def n_active_items(self) -> int:
        return self.frame[ITEM_ID].n_unique()

    @property
    def has_timestamps(self) -> bool:
        return self.frame.height > 0 and self.frame[TIMESTAMP].null_count() == 0

    def with_frame(self, frame: pl.DataFrame) -> Interactions:
        """Same vocabularies, other rows."""
        return Interactions(frame, self.users, self.items)

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
        joined = first.with_frame(pl.concat([part.frame for part in parts], how="vertical"))
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
        return content_hash(self.frame)


def content_hash(frame: pl.DataFrame) -> str:
    """SHA-256 of interaction rows in a canonical order: equal data, equal hash."""
    canonical = normalise_frame(frame).sort([USER_ID, ITEM_ID, TIMESTAMP], nulls_last=True)
    # CSV text, not a Polars hash: it must not change with the library version.
    return hashlib.sha256(canonical.write_csv().encode()).hexdigest()
