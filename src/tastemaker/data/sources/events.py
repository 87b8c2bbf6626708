"""Feedback events recorded by ``tastemaker serve``, read back as interactions to retrain.

The service appends events to an SQLite file (``serve/feedback.py`` writes it; the
schema lives here, with the reader, so both sides agree on it). ``tastemaker data
prepare --events FILE`` appends them to the data being prepared (:func:`with_events`).

Events naming an item the catalog does not have are dropped and counted, not refused:
the catalog may have changed since the events were recorded, and one stale event
should not block a retrain. The count is a manifest step (``events``: rows added,
dropped), so a prepared split says what it took in.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import polars as pl

from tastemaker.data.catalog import ITEM_ID
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TIMESTAMP, USER_ID
from tastemaker.errors import DataError

log = logging.getLogger("tastemaker.data.events")

EVENTS_TABLE = "events"
EVENTS_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
    "event_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
    "rating REAL, timestamp INTEGER NOT NULL, received REAL NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_user ON {EVENTS_TABLE} (user_id)",
)


def read_events(path: Path | str) -> pl.DataFrame:
    """The events of a feedback file as an interaction table (user, item, rating,
    timestamp), in the order they were stored."""
    path = Path(path)
    fix = "pass the feedback.sqlite file that tastemaker serve wrote (see its --events)"
    if not path.is_file():
        raise DataError(f"events file {path} does not exist", fix)
    try:
        with sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True) as db:
            rows = db.execute(
                f"SELECT user_id, item_id, rating, timestamp FROM {EVENTS_TABLE} ORDER BY rowid"
            ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path} is not a tastemaker feedback file ({exc})", fix) from None
    schema = {USER_ID: pl.Utf8, ITEM_ID: pl.Utf8, RATING: pl.Float64, TIMESTAMP: pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def with_events(ds: Dataset, events: pl.DataFrame, source: str = "events") -> Dataset:
    """``ds`` with ``events`` appended; events for items outside its catalog are dropped
    and counted (a manifest step and a warning)."""
    known = events[ITEM_ID].is_in(ds.catalog.frame[ITEM_ID].implode())
    kept, dropped = events.filter(known), int((~known).sum())
    if dropped:
        log.warning("%d feedback events name items not in the catalog: dropped", dropped)
    frame = ds.interactions.frame
    if RATING not in frame.columns:
        kept = kept.drop(RATING)
    elif kept[RATING].null_count():  # an event without a rating counts as liked
        kept = kept.with_columns(pl.col(RATING).fill_null(frame[RATING].max()))
    joined = pl.concat([frame, kept.cast(frame.select(kept.columns).schema)], how="diagonal")
    manifest = ds.manifest.with_step(
        "events", joined.height, source=source, added=kept.height, dropped=dropped
    )
    return ds.replace(interactions=joined, manifest=manifest)


__all__ = ["EVENTS_SCHEMA", "EVENTS_TABLE", "read_events", "with_events"]
