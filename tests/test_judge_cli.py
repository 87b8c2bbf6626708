"""``tastemaker generate train-judge``: the judge's space on items the selector never saw."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data as skdata

from tastemaker.pretrain import AlignedSpace

from .test_cli import assert_user_error, movielens, run  # noqa: F401 - movielens: a fixture


def _posters(folder: Path) -> Path:
    """Posters for 24 of the 30 tiny movies: crops of four photos."""
    folder.mkdir()
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    for movie in range(1, 25):
        photo = photos[movie % 4]
        h, w = photo.shape[:2]
        box = (movie * 7, movie * 5, w - movie * 3, h - movie * 4)
        Image.fromarray(photo).crop(box).save(folder / f"{movie}.jpg")
    return folder


def test_train_judge_uses_other_items_and_seed(movielens: Path, tmp_path: Path) -> None:  # noqa: F811
    posters, store = _posters(tmp_path / "posters"), tmp_path / "store"
    data = ("--data", movielens, "--posters", posters, "--store", store)
    selector_dir, judge_dir = tmp_path / "selector", tmp_path / "judge"
    code, output = run(
        "pretrain", "align", *data, "--out", selector_dir, "--epochs", "2",
        "--test-fraction", "0.2", "--valid-fraction", "0.2",
    )  # fmt: skip
    assert code == 0, output
    selector = AlignedSpace.load(selector_dir)
    code, output = run(
        "generate", "train-judge", "--selector", selector_dir, "--out", judge_dir, *data,
        "--epochs", "2",
    )  # fmt: skip
    assert code == 0, output
    assert f"--judge aligned:{judge_dir}" in " ".join(output.split())
    judge = AlignedSpace.load(judge_dir)
    assert judge.config.seed == 1 and selector.config.seed == 0
    judged = {i for part in judge.split.values() for i in part}
    # the 24 pictured movies, less those the selector trained on
    assert judged == {str(m) for m in range(1, 25)} - set(selector.split["train"])
    # the selector's own seed is refused before anything is written
    again = tmp_path / "again"
    code, output = run(
        "generate", "train-judge", "--selector", selector_dir, "--out", again, *data,
        "--seed", "0",
    )  # fmt: skip
    assert_user_error(code, output, "selector's seed")
    assert not again.exists()


def test_train_judge_bad_input_exits_2_and_writes_nothing(movielens: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "judge"
    code, output = run(
        "generate", "train-judge", "--selector", tmp_path / "nowhere", "--out", out,
        "--data", movielens,
    )  # fmt: skip
    assert_user_error(code, output, "pretrain align")
    assert not out.exists()
