"""The core data format: Catalog field kinds, Vocab, Interactions, Dataset folders, atomicity."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.atomic import OUTPUT_MARKER, atomic_path, output_lock, write_text
from tastemaker.data.manifest import Manifest
from tastemaker.data.vocab import Vocab
from tastemaker.errors import DataError, OutputError


def test_catalog_field_kinds_follow_dtypes(tmp_path: Path) -> None:
    catalog = Catalog(
        pl.DataFrame(
            {
                "item_id": [10, 20],
                "title": ["Alien", "Heat"],
                "plot": ["In space…", "L.A. crime"],
                "genres": [["Horror", "Sci-Fi"], ["Crime"]],
                "year": [1979, 1995],
                "price": [9.5, None],
            }
        )
    )
    assert catalog.text_fields == ["plot"]
    assert catalog.categorical_fields == ["genres"]
    assert catalog.numeric_fields == ["year", "price"]
    assert catalog.item("20") == {
        "item_id": "20", "title": "Heat", "image": None, "plot": "L.A. crime",
        "genres": ["Crime"], "year": 1995, "price": None,
    }  # fmt: skip
    (tmp_path / "10.jpg").write_bytes(b"jpeg")
    with_images = catalog.with_images(tmp_path)
    assert with_images.n_images == 1
    assert with_images.item(10)["image"] == str((tmp_path / "10.jpg").resolve())


def test_catalog_rejects_bad_tables() -> None:
    with pytest.raises(DataError, match="no 'item_id' column"):
        Catalog(pl.DataFrame({"id": [1]}))
    with pytest.raises(DataError, match="repeats item IDs"):
        Catalog(pl.DataFrame({"item_id": [1, 1]}))
    with pytest.raises(DataError, match="unsupported type"):
        Catalog(pl.DataFrame({"item_id": [1], "added": [date(2020, 1, 1)]}))


def test_vocab_maps_both_ways_and_names_unknown_ids() -> None:
    vocab = Vocab(["b", "a", "c"], kind="user")
    assert vocab.index(["c", "b"]).tolist() == [2, 0]
    assert vocab.encode(pl.Series(["a", "a", "c"])).tolist() == [1, 1, 2]
    assert vocab.decode(np.array([2, 1])) == ["c", "a"]
    with pytest.raises(DataError, match="unknown user ID\\(s\\): zz"):
        vocab.index(["a", "zz"])
    with pytest.raises(DataError, match="duplicate"):
        Vocab(["a", "a"])


def test_interactions_matrix_and_sequences() -> None:
    frame = pl.DataFrame(
        {
            "user_id": ["u", "u", "v", "u"],
            "item_id": ["b", "a", "a", "b"],
            "timestamp": [3, 1, 2, 5],
        }
    )
    inter = Interactions(frame)
    dense = inter.to_csr().toarray()
    assert dense.tolist() == [[1.0, 1.0], [1.0, 0.0]]  # duplicate (u, b) counts once
    seq = inter.sequences()
    assert seq.row(0, named=True) == {
        "user_id": "u",
        "item_id": ["a", "b", "b"],
        "timestamp": [1, 3, 5],
    }
    assert inter.content_hash() == Interactions(frame.reverse()).content_hash()
    with pytest.raises(DataError, match="no 'user_id' column"):
        Interactions(frame.drop("user_id"))
    with pytest.raises(DataError, match="wrong type"):
        Interactions(frame.with_columns(pl.lit("soon").alias("timestamp")))


def test_dataset_round_trip_and_unknown_items(tmp_path: Path) -> None:
    catalog = Catalog(pl.DataFrame({"item_id": ["a", "b"], "genres": [["x"], []]}))
    inter = Interactions(pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "rating": [4.5]}))
    ds = Dataset(catalog, inter, Manifest(name="t", source_files={"r.csv": "ab" * 32}))
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    assert back.manifest == ds.manifest
    assert back.manifest.counts == {
        "interactions": 1, "users": 1, "items": 2, "interacted_items": 1, "items_with_image": 0,
    }  # fmt: skip
    assert back.catalog.frame.equals(catalog.frame)
    with pytest.raises(DataError, match="missing from the item table"):
        Dataset(catalog, Interactions(pl.DataFrame({"user_id": ["u"], "item_id": ["zz"]})),
                Manifest(name="t"))  # fmt: skip
    (tmp_path / "ds" / "interactions.parquet").write_bytes(b"PAR1trunc")
    with pytest.raises(DataError, match="not a readable Parquet"):
        Dataset.load(tmp_path / "ds")


def test_atomic_path_keeps_old_output_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_path(target, directory=True) as tmp:
        write_text(tmp / "a.txt", "first")
    with pytest.raises(RuntimeError), atomic_path(target, directory=True) as tmp:
        write_text(tmp / "a.txt", "second, never finished")
        raise RuntimeError("crash mid-write")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp left behind
    with atomic_path(target, directory=True) as tmp:
        write_text(tmp / "b.txt", "replaced")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "b.txt"]


def test_a_folder_holding_a_users_files_is_never_replaced(tmp_path: Path) -> None:
    """Writing a run into a folder that holds the user's notes refuses, before any work."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"notes\.txt"), atomic_path(target, directory=True):
        pytest.fail("the body must not run")
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_added_to_an_output_later_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_path(target, directory=True) as tmp:
        write_text(tmp / "model.json", "{}")
    (target / "notes.txt").write_text("added by hand")
    with pytest.raises(OutputError, match="did not write"), atomic_path(target, directory=True):
        pytest.fail("the body must not run")
    assert (target / "notes.txt").read_text() == "added by hand"


def test_a_file_appearing_during_the_write_keeps_the_old_output(tmp_path: Path) -> None:
    """Checked again at the end: the folder is left as it is, the new output dropped."""
    target = tmp_path / "out"
    with pytest.raises(OutputError, match=r"late\.txt"), atomic_path(target, directory=True) as tmp:
        write_text(tmp / "model.json", "{}")
        target.mkdir()
        (target / "late.txt").write_text("x")
    assert sorted(p.name for p in target.iterdir()) == ["late.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_files_written_into_an_output_later_are_replaced_with_it(tmp_path: Path) -> None:
    """A model folder, then metrics.json and an eval folder in it: all tastemaker's."""
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as tmp:
        write_text(tmp / "weights.bin", "w")
    write_text(target / "metrics.json", "{}")
    with atomic_path(target / "eval-test", directory=True) as tmp:
        write_text(tmp / "metrics.md", "|")
    with atomic_path(target, directory=True) as tmp:
        write_text(tmp / "weights.bin", "w2")
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "weights.bin"]


def test_dot_and_a_file_are_clear_output_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(OutputError, match="did not write"), atomic_path(Path("."), directory=True):
        pytest.fail("the body must not run")
    with (
        pytest.raises(OutputError, match="is a file"),
        atomic_path(Path("data.csv"), directory=True),
    ):
        pytest.fail("the body must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_an_unwritable_place_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere: use a place no one can
        target = Path("/proc/tastemaker-out")
    else:
        target = tmp_path / "ro" / "out"
    with pytest.raises(OutputError), atomic_path(target, directory=True):
        pytest.fail("the body must not run")


def test_unwritable_parent_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        write_text(tmp_path / "file" / "sub" / "a.txt", "x")


def test_a_second_writer_of_one_output_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """Another live process holds the lock: refused at once, its lock left alone."""
    target = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],  # alive until we close stdin
        stdin=subprocess.PIPE,
    )
    try:
        (tmp_path / ".run.lock").write_text(str(holder.pid))
        busy = f"process {holder.pid} is writing"
        with pytest.raises(OutputError, match=busy), output_lock(target):
            pytest.fail("the body must not run")
        with pytest.raises(OutputError, match="is writing"), atomic_path(target, directory=True):
            pytest.fail("the body must not run")
        assert (tmp_path / ".run.lock").read_text() == str(holder.pid)
    finally:
        holder.communicate(b"")
    assert not target.exists()


def test_a_lock_left_by_a_dead_process_is_taken_and_nested_holds_share_it(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    lock = tmp_path / ".run.lock"
    lock.write_text(finished.stdout.strip())
    with output_lock(tmp_path / "run"):
        assert lock.read_text() == str(os.getpid())
        with atomic_path(tmp_path / "run", directory=True) as tmp:
            write_text(tmp / "model.json", "{}")
        assert lock.exists()
    assert not lock.exists()
    assert (tmp_path / "run" / "model.json").exists()
