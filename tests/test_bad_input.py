"""The issue "First contact": bad input never slips through, and errors speak the user's
language (one printable line, exit code 2, plurals and articles right, CLI flags named)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tastemaker import experiment
from tastemaker.cli.app import app
from tastemaker.config import DataConfig, EvalConfig, ModelSpec, SplitConfig
from tastemaker.data.manifest import Manifest
from tastemaker.data.sources import ColumnMapping, load_movielens, load_table
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError, DataError
from tastemaker.reporting.values import format_metric, plural
from tests.test_cli import MOVIES, assert_user_error, ratings_csv, run


def movielens_folder(tmp_path: Path, ratings: str | bytes) -> Path:
    folder = tmp_path / "ml-bad"
    folder.mkdir()
    (folder / "movies.csv").write_text(MOVIES)
    data = ratings if isinstance(ratings, bytes) else ratings.encode()
    (folder / "ratings.csv").write_bytes(data)
    return folder


def with_nan(rows: int = 1) -> str:
    """``ratings_csv`` with the rating of its first ``rows`` data rows (after the fifth) NaN."""
    lines = ratings_csv().splitlines()
    for i in range(6, 6 + rows):
        user, movie, _, stamp = lines[i].split(",")
        lines[i] = f"{user},{movie},NaN,{stamp}"
    return "\n".join(lines) + "\n"


def test_nan_rating_is_refused_naming_the_row(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, with_nan(2))
    user, movie = ratings_csv().splitlines()[6].split(",")[:2]
    with pytest.raises(DataError) as caught:
        load_movielens(folder)
    message = str(caught.value)
    assert "2 interactions" in message and "data row 6" in message, message
    assert f"user '{user}', item '{movie}'" in message and "--drop-invalid" in message


def test_nan_timestamp_in_a_table_is_refused_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("u,i,t\na,x,1.5\nb,y,NaN\n")
    with pytest.raises(DataError, match=r"data row 2 .user 'b', item 'y'"):
        load_table(tmp_path / "log.csv", ColumnMapping(user="u", item="i", timestamp="t"))


def test_drop_invalid_drops_and_records(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, with_nan(3))
    total = len(ratings_csv().splitlines()) - 1
    split = experiment.prepare(DataConfig(dataset=str(folder), drop_invalid=True), SplitConfig())
    step = next(s for s in split.manifest.steps if s.name == "drop_invalid")
    assert step.params == {"dropped": 3} and step.rows_after == total - 3
    assert not split.train.frame["rating"].is_nan().any()

    code, out = run(
        "data", "prepare", "--dataset", folder, "--drop-invalid", "--out", tmp_path / "s"
    )
    assert code == 0, out
    steps = json.loads((tmp_path / "s" / "manifest.json").read_text())["steps"]
    assert {"name": "drop_invalid", "params": {"dropped": 3}, "rows_after": total - 3} in steps


def test_every_reader_of_a_data_table_honours_drop_invalid(tmp_path: Path) -> None:
    """Generation and pretraining read [data] through load_configured, as prepare does."""
    from tastemaker.generation.data import load_data

    folder = movielens_folder(tmp_path, with_nan(2))
    with pytest.raises(DataError, match="--drop-invalid"):
        load_data(DataConfig(dataset=str(folder)))
    loaded = load_data(DataConfig(dataset=str(folder), drop_invalid=True))
    assert [s.params for s in loaded.manifest.steps if s.name == "drop_invalid"] == [{"dropped": 2}]


def test_nan_rating_on_the_cli_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, with_nan())
    code, out = run("data", "prepare", "--dataset", folder, "--out", tmp_path / "s")
    assert_user_error(code, out, "1 interaction whose rating", "--drop-invalid")
    assert not (tmp_path / "s").exists()


def test_binary_file_is_a_printable_one_line_error(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, bytes(range(256)) * 40)
    code, out = run("data", "prepare", "--dataset", folder, "--out", tmp_path / "s")
    assert_user_error(code, out, "ratings.csv is not a text CSV file")
    assert out.strip().isprintable(), out


def test_errors_escape_file_content() -> None:
    assert str(DataError("column 'a\x00b\nc'", "fix")) == "column 'a\\x00b\\nc'. Fix: fix."


def test_header_only_file_says_so(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, "userId,movieId,rating,timestamp\n")
    code, out = run("data", "prepare", "--dataset", folder, "--out", tmp_path / "s")
    assert_user_error(code, out, "ratings.csv has a header but no rows")
    (tmp_path / "log.csv").write_text("u,i\n")
    with pytest.raises(DataError, match="has a header but no rows"):
        load_table(tmp_path / "log.csv", ColumnMapping(user="u", item="i"))


def test_semicolon_separated_file_names_the_separator_and_the_flag(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, ratings_csv().replace(",", ";"))
    code, out = run("data", "prepare", "--dataset", folder, "--out", tmp_path / "s")
    assert_user_error(code, out, "looks ';'-separated", "--sep ';'")
    (folder / "movies.csv").write_text(MOVIES.replace(",", ";"))
    code, out = run("data", "prepare", "--dataset", folder, "--sep", ";", "--out", tmp_path / "s")
    assert code == 0, out


def test_table_separator_option(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("u\ti\na\tx\nb\ty\n")
    mapping = ColumnMapping(user="u", item="i")
    with pytest.raises(DataError, match=r"looks tab-separated.*--sep tab"):
        load_table(tmp_path / "log.csv", mapping)
    assert len(load_table(tmp_path / "log.csv", mapping, sep="\t").interactions) == 2
    assert DataConfig(sep="\\t").sep == DataConfig(sep="tab").sep == "\t"


def test_plurals(tmp_path: Path) -> None:
    assert (plural(1, "problem"), plural(14405, "row")) == ("1 problem", "14,405 rows")
    (tmp_path / "manifest.json").write_text('{"name": "x", "steps": 3}')
    with pytest.raises(DataError, match=r"\(1 problem\)"):
        Manifest.read(tmp_path / "manifest.json")


def test_an_item() -> None:
    with pytest.raises(DataError, match="use an item ID") as caught:
        Vocab(["a", "b"], kind="item").index(["zz"])
    assert " a item" not in str(caught.value)


def test_a_string_is_not_a_list_of_ids(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, ratings_csv())
    split = experiment.prepare(DataConfig(dataset=str(folder)), SplitConfig())
    model = experiment.train(split, ModelSpec(name="most_popular"))
    with pytest.raises(ConfigError, match="one string"):
        experiment.recommend(model, split, "10")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one string"):
        split.catalog.subset("10")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one string"):
        Vocab("abc")
    assert experiment.recommend(model, split, ["1"], k=2).height == 2


def test_configs_raise_config_error_not_pydantic() -> None:
    for make in (lambda: DataConfig(min_user=0), lambda: EvalConfig(batch_size="x")):
        with pytest.raises(ConfigError):
            make()


def test_cli_errors_name_flags_not_fields(tmp_path: Path) -> None:
    code, out = run("data", "prepare", "--min-user", "0", "--out", tmp_path / "s")
    assert_user_error(code, out, "--min-user")
    assert "min_user" not in out and "DataConfig" not in out


def test_bad_cutoff_names_the_flag(tmp_path: Path) -> None:
    folder = movielens_folder(tmp_path, ratings_csv())
    split = experiment.prepare(DataConfig(dataset=str(folder)), SplitConfig())
    model = experiment.train(split, ModelSpec(name="most_popular"))
    with pytest.raises(ConfigError, match="-k 10 -k 20"):
        experiment.evaluate(model, split, "valid", EvalConfig(ks=[0]))


def test_datasets_prints_urls_whole_when_piped() -> None:
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    assert "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/" in result.output
    assert "https://amazon-reviews-2023.github.io/" in result.output


def test_help_keeps_square_brackets() -> None:
    result = CliRunner().invoke(app, ["pretrain", "unisrec", "--help"])
    words = " ".join(result.output.split())
    assert result.exit_code == 0 and "unless [split] says" in words, result.output


def test_counts_print_as_integers() -> None:
    assert format_metric("n_users", 943.0) == "943"
    assert format_metric("warm/n_items", 12.0) == "12"
    assert format_metric("ndcg@10", 1.0) == "1.0000"
    assert format_metric("n_users", None) == "–"


def test_table_with_float_ratings_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("u,i,r,t\na,x,4.5,10.9\nb,y,3,20\n")
    mapping = ColumnMapping(user="u", item="i", rating="r", timestamp="t")
    frame = load_table(tmp_path / "log.csv", mapping).interactions.frame
    assert frame["timestamp"].to_list() == [10, 20] and frame["timestamp"].dtype == pl.Int64
