"""The CLI end to end, and every bad input of the foundation issue: one line, exit 2, no output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli.app import app

MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,Jumanji (1995),Adventure|Children|Fantasy
3,Grumpier Old Men (1995),Comedy|Romance
4,Waiting to Exhale (1995),Comedy|Drama|Romance
5,Father of the Bride Part II (1995),Comedy
6,Heat (1995),Action|Crime|Thriller
""" + "".join(f"{m},Movie {m} (2000),Drama\n" for m in range(7, 31))


def ratings_csv(n_users: int = 12) -> str:
    rows = ["userId,movieId,rating,timestamp"]
    for u in range(1, n_users + 1):
        for m in range(1, 31):
            # movies 1-6: each user rates those with (u + m) % 4 != 0 (popular);
            # movies 7-30: one user each (rare).
            if (m <= 6 and (u + m) % 4) or (m > 6 and m % n_users + 1 == u):
                rows.append(f"{u},{m},{1 + (u * m) % 5}.0,{1000 * u + m}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def movielens(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    (folder / "movies.csv").write_text(MOVIES)
    (folder / "ratings.csv").write_text(ratings_csv())
    return folder


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def assert_user_error(code: int, output: str, *needles: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Fix:" in lines[0], output
    for needle in needles:
        assert needle in lines[0], output


def test_prepare_train_evaluate_recommend(movielens: Path, tmp_path: Path) -> None:
    split_dir, model_dir = tmp_path / "split", tmp_path / "model"
    code, out = run("data", "prepare", "--dataset", movielens, "--split", "loo", "--out", split_dir)
    assert code == 0, out
    manifest = json.loads((split_dir / "manifest.json").read_text())
    assert manifest["split"]["kind"] == "loo" and manifest["counts"]["test"] == 12

    code, out = run("train", "--data", split_dir, "--model", "most_popular", "--out", model_dir)
    assert code == 0, out
    code, out = run("evaluate", "--data", split_dir, "--model-dir", model_dir, "-k", "3")
    assert code == 0, out
    metrics = json.loads((model_dir / "eval-test" / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"ndcg@3", "recall@3", "coverage@3"}
    assert metrics["data_hash"] == manifest["split"]["content_hash"]

    code, out = run("recommend", "--data", split_dir, "--model-dir", model_dir, "--user", "1")
    assert code == 0, out
    # User 1 never rated movie 3 ((1 + 3) % 4 == 0), one of the six popular movies, so
    # MostPopular must put it in user 1's top 10.
    assert "Grumpier Old Men (1995)" in out


def test_recommend_for_a_new_user_from_a_list_of_items(movielens: Path, tmp_path: Path) -> None:
    split_dir, model_dir = tmp_path / "split", tmp_path / "model"
    assert run("data", "prepare", "--dataset", movielens, "--out", split_dir)[0] == 0
    assert run("train", "--data", split_dir, "--model", "itemknn", "--out", model_dir)[0] == 0
    code, out = run("recommend", "--data", split_dir, "--model-dir", model_dir, "--items", "1,2")
    assert code == 0, out
    assert "(new user)" in out and "Toy Story (1995)" not in out  # movie 1: given, not advised
    code, out = run("recommend", "--data", split_dir, "--model-dir", model_dir)
    assert_user_error(code, out, "--user", "--items")
    assert run("train", "--data", split_dir, "--model", "bpr", "--param", "epochs=1",
               "--out", tmp_path / "bpr")[0] == 0  # fmt: skip
    bpr = tmp_path / "bpr"
    code, out = run("recommend", "--data", split_dir, "--model-dir", bpr, "--items", "1")
    assert code == 0 and "(new user)" in out, out  # BPR folds in by solving the user vector
    assert "Toy Story (1995)" not in out


def test_config_file_and_flags(movielens: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\ndataset = "{movielens}"\n[split]\nkind = "ratio"\nseed = 5\n')
    code, out = run("data", "prepare", "--config", cfg, "--seed", "9", "--out", tmp_path / "s")
    assert code == 0, out
    split = json.loads((tmp_path / "s" / "manifest.json").read_text())["split"]
    assert (split["kind"], split["seed"]) == ("ratio", 9)  # the flag wins over the file


def test_truncated_file(movielens: Path, tmp_path: Path) -> None:
    text = (movielens / "ratings.csv").read_text()
    (movielens / "ratings.csv").write_text(text[: len(text) // 2] + "7,3,4.")  # cut mid-row
    code, out = run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "o")
    assert_user_error(code, out, "ratings.csv")
    assert not (tmp_path / "o").exists()


def test_missing_column(movielens: Path, tmp_path: Path) -> None:
    (movielens / "ratings.csv").write_text("userId,movieId,timestamp\n1,1,5\n")
    code, out = run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "o")
    assert_user_error(code, out, "rating")
    assert not (tmp_path / "o").exists()


def test_unknown_dataset_and_model(movielens: Path, tmp_path: Path) -> None:
    code, out = run("data", "prepare", "--dataset", "ml-nonexistent", "--out", tmp_path / "o")
    assert_user_error(code, out, "ml-nonexistent", "ml-100k")
    run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "s")
    code, out = run(
        "train", "--data", tmp_path / "s", "--model", "gpt5rec", "--out", tmp_path / "m"
    )
    assert_user_error(code, out, "gpt5rec", "bpr")
    assert not (tmp_path / "m").exists()


def test_bad_model_parameter(movielens: Path, tmp_path: Path) -> None:
    run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "s")
    code, out = run(
        "train", "--data", tmp_path / "s", "--model", "bpr", "--param", "learning_rate=-1",
        "--out", tmp_path / "m",
    )  # fmt: skip
    assert_user_error(code, out, "learning_rate")
    assert not (tmp_path / "m").exists()


def test_filtering_empties(movielens: Path, tmp_path: Path) -> None:
    code, out = run(
        "data", "prepare", "--dataset", movielens, "--min-user", "50", "--out", tmp_path / "o"
    )
    assert_user_error(code, out, "k_core", "--min-user")
    assert not (tmp_path / "o").exists()


def test_unknown_user(movielens: Path, tmp_path: Path) -> None:
    run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "s")
    run("train", "--data", tmp_path / "s", "--model", "most_popular", "--out", tmp_path / "m")
    code, out = run(
        "recommend", "--data", tmp_path / "s", "--model-dir", tmp_path / "m", "--user", "no-one"
    )
    assert_user_error(code, out, "no-one")


def test_unwritable_output(movielens: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out = run("data", "prepare", "--dataset", movielens, "--out", blocker / "sub" / "o")
    assert_user_error(code, out, "a-file")


def test_train_never_replaces_a_folder_holding_the_users_files(
    movielens: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out with the user's notes.txt, or '.': one line, exit 2, before any training."""
    from tastemaker import experiment

    split_dir = tmp_path / "split"
    assert run("data", "prepare", "--dataset", movielens, "--out", split_dir)[0] == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")

    def no_training(*args: object, **kwargs: object) -> None:
        pytest.fail("training started although the output folder cannot be written")

    monkeypatch.setattr(experiment, "train", no_training)
    code, out = run("train", "--data", split_dir, "--model", "most_popular", "--out", mine)
    assert_user_error(code, out, "notes.txt", "did not write")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    monkeypatch.chdir(mine)
    code, out = run("train", "--data", split_dir, "--model", "most_popular", "--out", ".")
    assert_user_error(code, out, "notes.txt")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "ml-tiny", "split"]


def test_unreadable_split_folder(movielens: Path, tmp_path: Path) -> None:
    run("data", "prepare", "--dataset", movielens, "--out", tmp_path / "s")
    (tmp_path / "s" / "train.parquet").write_bytes(b"PAR1 garbage")
    code, out = run("train", "--data", tmp_path / "s", "--model", "bpr", "--out", tmp_path / "m")
    assert_user_error(code, out, "train.parquet")


def test_datasets_lists_known_names() -> None:
    code, out = run("datasets")
    assert code == 0
    for name in ("ml-latest-small", "ml-100k", "ml-1m", "ml-25m"):
        assert name in out
