"""Splits and filters on hand-made data (exact rows) and on ml-100k (invariants)."""

from __future__ import annotations

import polars as pl
import pytest

from tastemaker import Dataset, Interactions, Split
from tastemaker.data import filters, splits
from tastemaker.errors import ConfigError, DataError

from .conftest import make_dataset, shared_data


def pairs(part: Interactions) -> set[tuple[str, str]]:
    return set(zip(part.frame["user_id"], part.frame["item_id"], strict=True))


def test_leave_one_out_takes_last_two_by_time(toy: Dataset) -> None:
    split = splits.leave_one_out(toy)
    assert pairs(split.test) == {("u1", "i4"), ("u2", "i5")}
    assert pairs(split.valid) == {("u1", "i3"), ("u2", "i2")}
    # u3 has one interaction: it stays in train.
    assert pairs(split.train) == {("u1", "i0"), ("u1", "i1"), ("u1", "i2"), ("u2", "i0"),
                                  ("u3", "i1")}  # fmt: skip


def test_random_ratio_sizes_follow_recbole_rounding() -> None:
    # 10 rows -> 8/1/1; 5 rows -> floor gives 5/0/0, then test and valid get one each: 3/1/1;
    # 2 rows -> test bumped to 1, then train has 1 row left so valid stays empty: 1/0/1.
    rows = [("a", f"i{k}", 1.0, k) for k in range(10)]
    rows += [("b", f"i{k}", 1.0, k) for k in range(5)]
    rows += [("c", f"i{k}", 1.0, k) for k in range(2)]
    split = splits.random_ratio(make_dataset(rows), seed=7)
    sizes = {
        name: split.part(name).frame.group_by("user_id").len().sort("user_id").rows()
        for name in ("train", "valid", "test")
    }
    assert sizes["train"] == [("a", 8), ("b", 3), ("c", 1)]
    assert sizes["valid"] == [("a", 1), ("b", 1)]
    assert sizes["test"] == [("a", 1), ("b", 1), ("c", 1)]


def test_random_ratio_is_seeded_and_hashed(toy: Dataset) -> None:
    rows = [(f"u{u}", f"i{i}", 1.0, i) for u in range(20) for i in range(u % 7, u % 7 + 12)]
    ds = make_dataset(rows)
    a, b, c = (splits.random_ratio(ds, seed=s) for s in (1, 1, 2))
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash
    assert a.manifest.split is not None and a.manifest.split.seed == 1
    # Every interaction lands in exactly one part.
    assert len(a.train) + len(a.valid) + len(a.test) == len(ds.interactions)
    assert not (pairs(a.train) & pairs(a.test)) and not (pairs(a.valid) & pairs(a.test))


def test_temporal_split_cuts_global_time(toy: Dataset) -> None:
    split = splits.temporal(toy, ratios=(6, 2, 1))  # 9 rows -> 6 / 2 / 1 by time
    assert split.train.frame["timestamp"].max() < split.valid.frame["timestamp"].min()
    assert split.valid.frame["timestamp"].max() < split.test.frame["timestamp"].min()
    assert pairs(split.test) == {("u1", "i4")}


def test_cold_start_test_items_never_in_train() -> None:
    ds = make_dataset([(f"u{u}", f"i{i}", 1.0, i) for u in range(30) for i in range(u % 5, 40)])
    split = splits.cold_start(ds, seed=3)
    train_items = set(split.train.frame["item_id"])
    assert train_items.isdisjoint(split.test.frame["item_id"])
    assert train_items.isdisjoint(split.valid.frame["item_id"])
    assert split.test.n_active_items == 4  # 40 items * 0.1


def test_split_round_trips_and_detects_tampering(toy: Dataset, tmp_path) -> None:
    split = splits.leave_one_out(toy)
    split.save(tmp_path / "s")
    loaded = Split.load(tmp_path / "s")
    assert loaded.content_hash == split.content_hash
    assert loaded.users.ids == split.users.ids
    (loaded.test.frame.head(1)).write_parquet(tmp_path / "s" / "test.parquet")
    with pytest.raises(DataError, match="does not match the hash"):
        Split.load(tmp_path / "s")


def test_bad_split_arguments(toy: Dataset) -> None:
    with pytest.raises(ConfigError, match="unknown split 'fancy'"):
        splits.make_split(toy, "fancy")
    with pytest.raises(ConfigError, match="ratios"):
        splits.random_ratio(toy, ratios=(0, 1, 1))
    no_time = toy.replace(interactions=toy.interactions.frame.with_columns(
        pl.lit(None, dtype=pl.Int64).alias("timestamp")))  # fmt: skip
    with pytest.raises(DataError, match="timestamp"):
        splits.leave_one_out(no_time)


def test_filters(toy: Dataset) -> None:
    liked = filters.implicit(toy, 4.0)
    # ratings >= 4: u1:{i0,i1,i3} u2:{i0,i2} u3:{i1}
    assert len(liked.interactions) == 6
    core = filters.k_core(liked, min_user=2, min_item=1)
    assert set(core.interactions.frame["user_id"]) == {"u1", "u2"}
    assert sorted(core.catalog.vocab.ids) == ["i0", "i1", "i2", "i3"]
    assert [s.name for s in core.manifest.steps] == ["implicit", "k_core"]
    # 2-core: i2, i3 (1 user) go, then u2 (1 item), then i1 and u1 -> nothing is left.
    with pytest.raises(DataError, match="k_core left no interactions"):
        filters.k_core(liked, min_user=2, min_item=2)
    dup = make_dataset([("a", "i0", 1.0, 5), ("a", "i0", 5.0, 9), ("b", "i0", 3.0, 1)])
    last = filters.deduplicate(dup, keep="last").interactions.frame
    assert last.sort("user_id")["rating"].to_list() == [5.0, 3.0]
    first = filters.deduplicate(dup, keep="first").interactions.frame
    assert first.sort("user_id")["rating"].to_list() == [1.0, 3.0]


def test_k_core_prunes_catalog_and_converges() -> None:
    ds = make_dataset([(f"u{u}", f"i{i}", 1.0, i) for u in range(6) for i in range(u + 1)])
    core = filters.k_core(ds, min_user=3, min_item=3)
    counts = core.interactions.frame
    assert counts.group_by("user_id").len()["len"].min() >= 3
    assert counts.group_by("item_id").len()["len"].min() >= 3
    assert len(core.catalog) == core.interactions.n_active_items


def test_ml100k_ratio_split_invariants() -> None:
    frame = pl.read_csv(shared_data("ml-100k") / "ml-100k.inter", separator="\t")
    frame.columns = ["user_id", "item_id", "rating", "timestamp"]
    ds = make_dataset(frame.rows())
    split = splits.random_ratio(ds, seed=2020)
    assert len(split.train) + len(split.valid) + len(split.test) == 100_000
    assert split.train.n_active_users == split.test.n_active_users == 943
    assert 0.79 < len(split.train) / 100_000 < 0.82
