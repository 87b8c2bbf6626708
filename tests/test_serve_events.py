"""Feedback events: stored once per event ID, read back, and appended by ``data prepare``."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tastemaker.cli.app import app
from tastemaker.data.dataset import Split
from tastemaker.data.sources.events import read_events, with_events
from tastemaker.errors import DataError
from tastemaker.serve.feedback import Event, FeedbackStore

from .conftest import make_dataset


def test_the_store_is_idempotent_thread_safe_and_ordered_per_user(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "db" / "feedback.sqlite")
    first = [Event("a", "u1", "i1", 4.0, 20), Event("b", "u1", "i2", None, 10)]
    assert store.add(first) == (2, 0)
    assert store.add([first[0], Event("c", "u2", "i3", 1.0, 5)]) == (1, 1)

    def burst(worker: int) -> None:
        store.add([Event(f"w{worker}-{n}", "u3", "i1", None, n) for n in range(50)])

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.event_id for e in store.for_user("u1")] == ["b", "a"]  # by timestamp
    assert store.user_counts() == {"u1": 2, "u2": 1, "u3": 200}
    store.close()
    assert read_events(tmp_path / "db" / "feedback.sqlite").height == 203


def test_events_append_to_a_dataset_and_unknown_items_are_dropped_and_counted(
    tmp_path: Path,
) -> None:
    ds = make_dataset([("u1", "i0", 5.0, 1), ("u2", "i1", 3.0, 2)], n_items=3)
    events = pl.DataFrame(
        {"user_id": ["u9", "u9"], "item_id": ["i2", "gone"], "rating": [None, 2.0],
         "timestamp": [7, 8]}
    )  # fmt: skip
    joined = with_events(ds, events, source="f.sqlite")
    frame = joined.interactions.frame
    assert frame.height == 3 and frame.filter(user_id="u9")["rating"].to_list() == [5.0]
    step = joined.manifest.steps[-1]
    assert (step.name, step.params["added"], step.params["dropped"]) == ("events", 1, 1)
    with pytest.raises(DataError, match="does not exist"):
        read_events(tmp_path / "none.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 10)
    with pytest.raises(DataError, match="not a tastemaker feedback file"):
        read_events(tmp_path / "junk.sqlite")


def test_data_prepare_appends_the_events_of_a_feedback_file(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    store.add([Event(f"e{n}", "new-user", str(n), 4.0, 2_000_000_000 + n) for n in (1, 2, 3)])
    store.add([Event("x", "new-user", "no-such-movie", 4.0, 2_000_000_100)])
    store.close()
    out = tmp_path / "split"
    args = ["data", "prepare", "--out", str(out), "--split", "temporal"]
    result = CliRunner().invoke(app, [*args, "--events", str(tmp_path / "feedback.sqlite")])
    assert result.exit_code == 0, result.output
    split = Split.load(out)
    step = next(s for s in split.manifest.steps if s.name == "events")
    assert (step.params["added"], step.params["dropped"]) == (3, 1)
    everything = pl.concat([split.train.frame, split.valid.frame, split.test.frame])
    assert sorted(everything.filter(user_id="new-user")["item_id"].to_list()) == ["1", "2", "3"]
    bad = CliRunner().invoke(app, [*args, "--events", str(tmp_path / "missing.sqlite")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
