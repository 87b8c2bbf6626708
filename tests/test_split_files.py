"""A saved split proves its parts by the SHA-256 of their files' bytes (one streaming
pass) and falls back to the content hash when the bytes differ: a changed file is
always caught, however its size or modification time were kept."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pytest

from tastemaker import Split
from tastemaker.data import dataset, filters, interactions, splits
from tastemaker.errors import DataError

from .conftest import make_dataset
from .test_fast_prepare import messy_rows


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Split, Path]:
    split = splits.random_ratio(filters.deduplicate(make_dataset(messy_rows(6))), seed=3)
    return split, split.save(tmp_path / "split")


def recorded_files(folder: Path) -> dict[str, str]:
    return json.loads((folder / "manifest.json").read_text())["split"]["part_files"]


def test_manifest_records_each_part_files_sha256(saved: tuple[Split, Path]) -> None:
    _, folder = saved
    files = recorded_files(folder)
    assert set(files) == {"train", "valid", "test"}
    for name, digest in files.items():
        assert digest == hashlib.sha256((folder / f"{name}.parquet").read_bytes()).hexdigest()


def test_unchanged_files_load_without_content_hashing(
    saved: tuple[Split, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    split, folder = saved

    def refuse(frame: pl.DataFrame) -> str:
        raise AssertionError("an unchanged part was hashed by content")

    monkeypatch.setattr(dataset, "content_hash", refuse)
    loaded = Split.load(folder)
    assert loaded.content_hash == split.content_hash
    for name in ("train", "valid", "test"):
        assert loaded.part(name).frame.equals(split.part(name).frame)


def test_loaded_parts_know_their_hashes_and_a_part_hashes_itself_once(
    saved: tuple[Split, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fit records the train part's content hash (for resuming): a part loaded from
    files its manifest proves, or hashed once already, must not hash its rows again."""
    split, folder = saved
    expected = {name: split.part(name).content_hash() for name in ("train", "valid", "test")}
    calls: list[int] = []
    hash_rows = interactions.hash_rows

    def counted(rows_at, order):
        calls.append(len(order))
        return hash_rows(rows_at, order)

    monkeypatch.setattr(interactions, "hash_rows", counted)
    loaded = Split.load(folder)
    assert {n: loaded.part(n).content_hash() for n in expected} == expected
    assert calls == []
    fresh = interactions.Interactions(split.train.frame)
    assert fresh.content_hash() == fresh.content_hash() == expected["train"]
    assert calls == [len(split.train)]


def test_changed_file_is_caught_even_with_its_time_restored(saved: tuple[Split, Path]) -> None:
    _, folder = saved
    path = folder / "test.parquet"
    before = path.stat()
    frame = pl.read_parquet(path)
    changed = frame.with_columns(pl.col("rating").reverse())  # same rows count, same IDs
    assert not changed.equals(frame)
    changed.write_parquet(path, compression="zstd")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(DataError, match=r"test\.parquet does not match the hash"):
        Split.load(folder)


def test_same_rows_in_other_bytes_load_by_content(saved: tuple[Split, Path]) -> None:
    split, folder = saved
    path = folder / "train.parquet"
    pl.read_parquet(path).reverse().write_parquet(path, compression="uncompressed")
    assert hashlib.sha256(path.read_bytes()).hexdigest() != recorded_files(folder)["train"]
    assert Split.load(folder).content_hash == split.content_hash


def test_a_forged_file_hash_does_not_pass_changed_rows(saved: tuple[Split, Path]) -> None:
    _, folder = saved
    path = folder / "valid.parquet"
    pl.read_parquet(path).head(1).write_parquet(path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["split"]["part_files"]["valid"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"valid\.parquet does not match the hash"):
        Split.load(folder)


def test_an_item_removed_from_the_catalog_is_named_on_load(saved: tuple[Split, Path]) -> None:
    split, folder = saved
    gone = split.train.frame["item_id"][0]
    items = pl.read_parquet(folder / "items.parquet")
    items.filter(pl.col("item_id") != gone).write_parquet(folder / "items.parquet")
    with pytest.raises(DataError, match=rf"train rows? with an item missing .*\b{gone}\b"):
        Split.load(folder)
