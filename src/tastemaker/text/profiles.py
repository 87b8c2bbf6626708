"""A user's profile: their earlier records, oldest first, never the example itself.

After LaMP (Salemi et al., arXiv 2304.11406, §2): each example of a user comes with
that user's *other* records, here restricted to those before it in time, so nothing
from the example's future (the test record, for a validation example) can leak in.
A record is an item's text plus the user's own output on it (their tags, a rating).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tastemaker.errors import DataError


@dataclass(frozen=True)
class ProfileEntry:
    """One past record: the item, when, its text (what retrievers match), the user's output."""

    item_id: str
    timestamp: int
    text: str
    output: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_ordered(entries: Iterable[ProfileEntry]) -> list[ProfileEntry]:
    """Oldest first; ties by item ID, so the order never depends on the input order."""
    return sorted(entries, key=lambda e: (e.timestamp, e.item_id))


def profile_before(records: Sequence[ProfileEntry], index: int) -> tuple[ProfileEntry, ...]:
    """The profile of ``records[index]`` in a time-ordered list: the earlier records, minus
    any on the same item (the user's own output on the example's item would give it away)."""
    if not 0 <= index < len(records):
        raise DataError(
            f"record {index} is outside a history of {len(records)}", "pass an existing index"
        )
    item = records[index].item_id
    return tuple(r for r in records[:index] if r.item_id != item)


def group_records(
    rows: Iterable[tuple[str, str, int, Any]], describe: Callable[[str, Any], ProfileEntry]
) -> dict[str, list[ProfileEntry]]:
    """(user, item, timestamp, value) rows → each user's time-ordered records.

    ``describe(item_id, value)`` makes the entry's text and output; its timestamp is
    replaced by the row's.
    """
    users: dict[str, list[ProfileEntry]] = {}
    for user, item, timestamp, value in rows:
        entry = describe(item, value)
        users.setdefault(user, []).append(
            ProfileEntry(item, int(timestamp), entry.text, entry.output)
        )
    return {user: time_ordered(entries) for user, entries in users.items()}
