"""Live feedback: events appended to an embedded SQLite database, durable when acknowledged.

SQLite in WAL mode with ``synchronous=FULL``: a transaction's commit returns after the
WAL is fsynced, so an event the API acknowledged survives a crash of the process (or
of the machine) at any later point; WAL lets readers run while a writer appends.
``event_id`` is the primary key and inserts are ``INSERT OR IGNORE``, so a client that
retries after a lost reply stores each event once (the reply counts duplicates).
One connection behind a lock serves every thread: writes are short, and reads (one
user's events, by an index) take microseconds. The schema is
:data:`tastemaker.data.sources.events.EVENTS_SCHEMA`, which ``tastemaker data prepare
--events`` reads back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tastemaker.atomic import ensure_writable_dir
from tastemaker.data.sources.events import EVENTS_SCHEMA, EVENTS_TABLE
from tastemaker.errors import OutputError


@dataclass(frozen=True)
class Event:
    """One interaction reported to the service."""

    event_id: str
    user_id: str
    item_id: str
    rating: float | None
    timestamp: int


class FeedbackStore:
    """Append-only, idempotent event log in one SQLite file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        ensure_writable_dir(self.path.parent)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in EVENTS_SCHEMA:
                self._db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise OutputError(
                f"cannot open the feedback database {self.path} ({exc})",
                "point --events at a writable file (or delete a corrupt one)",
            ) from None
        if str(mode).lower() != "wal":
            raise OutputError(
                f"the feedback database {self.path} cannot use WAL mode (got {mode})",
                "put it on a local file system",
            )

    def add(self, events: list[Event]) -> tuple[int, int]:
        """Store ``events`` in one durable transaction: (stored, duplicates)."""
        received = time.time()
        rows = [(e.event_id, e.user_id, e.item_id, e.rating, e.timestamp, received) for e in events]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    f"INSERT OR IGNORE INTO {EVENTS_TABLE} "
                    "(event_id, user_id, item_id, rating, timestamp, received) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            stored = self._db.total_changes - before
        return stored, len(rows) - stored

    def for_user(self, user_id: str) -> list[Event]:
        """The user's events, oldest first (by timestamp, then arrival)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT event_id, user_id, item_id, rating, timestamp FROM {EVENTS_TABLE} "
                "WHERE user_id = ? ORDER BY timestamp, rowid",
                (user_id,),
            ).fetchall()
        return [Event(*row) for row in rows]

    def user_counts(self) -> dict[str, int]:
        """Events per user, for users who have any."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT user_id, COUNT(*) FROM {EVENTS_TABLE} GROUP BY user_id"
            ).fetchall()
        return dict(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["Event", "FeedbackStore"]
