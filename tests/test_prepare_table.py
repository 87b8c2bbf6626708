"""`tastemaker data prepare --table`: a user's own CSV/Parquet by its column names, from
flags or a config's [data]; a wrong column or option is one line, exit 2, no output."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from .test_cli import assert_user_error, run

RATINGS = "uid,mid,stars,when\n" + "".join(
    f"{u},{m:03d},{1 + (u + m) % 5},2020-01-{1 + (u * m) % 28:02d}T00:00:00\n"
    for u in range(1, 13)
    for m in range(1, 11)
    if (u + m) % 3
)
MOVIES = "movie,name,genres,junk\n" + "".join(
    f"{m:03d},Movie {m},Drama|Comedy,x{m}\n" for m in range(1, 12)
)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    ratings, movies = tmp_path / "ratings.csv", tmp_path / "movies.csv"
    ratings.write_text(RATINGS)
    movies.write_text(MOVIES)
    return ratings, movies


def test_table_from_flags(files: tuple[Path, Path], tmp_path: Path) -> None:
    ratings, movies = files
    out = tmp_path / "split"
    code, output = run(
        "data", "prepare", "--table", ratings, "--user-col", "uid", "--item-col", "mid",
        "--rating-col", "stars", "--timestamp-col", "when", "--items", movies,
        "--item-id-col", "movie", "--item-cols", "name:title,genres:list",
        "--split", "loo", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    items = pl.read_parquet(out / "items.parquet").sort("item_id")
    # Movie 011 has no ratings but is in the item table; "junk" was not kept.
    assert items["item_id"].to_list() == [f"{m:03d}" for m in range(1, 12)]
    assert items["title"][0] == "Movie 1" and items["genres"][0].to_list() == ["Drama", "Comedy"]
    assert "junk" not in items.columns
    parts = [pl.read_parquet(out / f"{p}.parquet") for p in ("train", "valid", "test")]
    rows = pl.concat(parts)
    assert rows.height == RATINGS.count("\n") - 1
    first = rows.filter((pl.col("user_id") == "1") & (pl.col("item_id") == "001")).row(
        0, named=True
    )
    # (1 + 1) % 5 + 1 stars on 2020-01-02 (UTC).
    assert first["rating"] == 3.0 and first["timestamp"] == 1577923200
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "table" and manifest["counts"]["test"] == 12


def test_table_from_config_equals_flags(files: tuple[Path, Path], tmp_path: Path) -> None:
    ratings, _ = files
    config = tmp_path / "run.toml"
    config.write_text(
        f'[data]\ntable = "{ratings}"\nuser_col = "uid"\nitem_col = "mid"\n'
        'rating_col = "stars"\n[split]\nkind = "ratio"\nseed = 3\n'
    )
    code, output = run("data", "prepare", "--config", config, "--out", tmp_path / "a")
    assert code == 0, output
    code, output = run(
        "data", "prepare", "--table", ratings, "--user-col", "uid", "--item-col", "mid",
        "--rating-col", "stars", "--seed", "3", "--out", tmp_path / "b",
    )  # fmt: skip
    assert code == 0, output
    hashes = [json.loads((tmp_path / f / "manifest.json").read_text()) for f in "ab"]
    assert hashes[0]["split"]["content_hash"] == hashes[1]["split"]["content_hash"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--user-col", "user", "--item-col", "mid"], ["no column 'user'", "uid, mid, stars"]),
        (["--item-col", "mid"], ["needs --user-col"]),
        (["--user-col", "uid", "--item-col", "mid", "--dataset", "ml-100k"], ["both a table"]),
        (["--user-col", "uid", "--item-col", "mid", "--item-id-col", "m"], ["no --items"]),
        (["--user-col", "uid", "--item-col", "mid", "--timestamp-col", "stars2"], ["stars2"]),
    ],
)
def test_bad_table_options_are_one_line(
    files: tuple[Path, Path], tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    out = tmp_path / "split"
    code, output = run("data", "prepare", "--table", files[0], *args, "--out", out)
    assert_user_error(code, output, *needles)
    assert not out.exists()


def test_column_options_need_a_table(tmp_path: Path) -> None:
    code, output = run("data", "prepare", "--user-col", "uid", "--out", tmp_path / "s")
    assert_user_error(code, output, "--user-col", "no --table")


def test_unknown_item_column_names_the_columns(files: tuple[Path, Path], tmp_path: Path) -> None:
    ratings, movies = files
    code, output = run(
        "data", "prepare", "--table", ratings, "--user-col", "uid", "--item-col", "mid",
        "--items", movies, "--item-id-col", "movie", "--item-cols", "name:title,plot",
        "--out", tmp_path / "s",
    )  # fmt: skip
    assert_user_error(code, output, "no column 'plot'", "movie, name, genres, junk")
    code, output = run(
        "data", "prepare", "--table", ratings, "--user-col", "uid", "--item-col", "mid",
        "--items", movies, "--item-id-col", "movie", "--item-cols", "name:caption",
        "--out", tmp_path / "s",
    )  # fmt: skip
    assert_user_error(code, output, "unknown role 'caption'")


def test_parquet_table(files: tuple[Path, Path], tmp_path: Path) -> None:
    table = tmp_path / "ratings.parquet"
    pl.read_csv(files[0], schema_overrides={"mid": pl.Utf8}).write_parquet(table)
    out = tmp_path / "split"
    code, output = run(
        "data", "prepare", "--table", table, "--user-col", "uid", "--item-col", "mid",
        "--out", out,
    )  # fmt: skip
    assert code == 0, output
    items = pl.read_parquet(out / "items.parquet")["item_id"].sort().to_list()
    assert items == [f"{m:03d}" for m in range(1, 11)]  # IDs stay strings: "001", not 1
