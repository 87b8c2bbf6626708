"""Soft-token examples are leak-free next-item examples; held-out users never train."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import torch

from tastemaker import Dataset
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.soft_training import (
    SoftPreferenceTrainer,
    soft_examples,
    split_users,
    train_soft_tokens,
)

from .test_pipeline import MOVIES, movie_dataset, tiny_config, tiny_llm  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return movie_dataset(tmp_path_factory.mktemp("soft-posters"))


@pytest.fixture(scope="module")
def pipe(tiny_llm: Path) -> PersonalizedGenerationPipeline:  # noqa: F811
    torch.set_num_threads(1)
    return PersonalizedGenerationPipeline(tiny_config(tiny_llm, None))


def test_an_example_never_holds_its_target_in_history_or_prompt(pipe, movies) -> None:
    examples = soft_examples(pipe, movies, ["u1", "u2", "u4"])
    ratings = movies.interactions.frame
    # Liked in time order: u1 m0 m1 m5 m4 m6, u2 m2 m3 m7 m0 m6, u4 m3 m7 m2. The first
    # liked item has no history before it: 4 + 4 + 2 targets.
    assert [e.item_id for e in examples] == [
        *("m1", "m5", "m4", "m6"), *("m3", "m7", "m0", "m6"), *("m7", "m2")
    ]  # fmt: skip
    for user in ("u1", "u2", "u4"):
        for example in soft_examples(pipe, movies, [user]):
            title, genres, tags = MOVIES[example.item_id]
            bare = title.rsplit(" (", 1)[0]
            assert example.item_id not in example.history_ids
            assert bare not in example.history, (example.item_id, example.history)
            assert example.prompt == "a movie poster"  # the domain prefix alone
            for word in [bare, *genres, *tags]:
                assert word.lower() not in example.prompt.lower()
            when = time_of(ratings, user, example.item_id)
            assert all(time_of(ratings, user, h) < when for h in example.history_ids)
    # The first example's history is u1's single earlier like.
    assert examples[0].history_ids == ("m0",) and "Space Odyssey" in examples[0].history
    assert len(soft_examples(pipe, movies, ["u1"], per_user=2)) == 2


def time_of(ratings: pl.DataFrame, user: str, item: str) -> int:
    return int(ratings.filter(user_id=user, item_id=item)["timestamp"].min())


def test_users_without_a_next_item_give_no_examples(pipe, movies) -> None:
    first_only = movies.interactions.frame.filter(user_id="u4", item_id="m3")
    one_like = movies.replace(interactions=first_only)
    with pytest.raises(DataError, match="liked an item with an image after liking another"):
        soft_examples(pipe, one_like, ["u4"])  # one liked movie: nothing comes next
    with pytest.raises(DataError, match="none rated >= 4"):
        soft_examples(pipe, movies, ["u3"])  # one rating, and a bad one


def test_split_users_is_seeded_and_disjoint() -> None:
    users = [f"u{i}" for i in range(10)]
    train, held = split_users(users, 0.3, seed=0)
    assert len(held) == 3 and set(train).isdisjoint(held) and set(train) | set(held) == set(users)
    assert split_users(users[::-1], 0.3, seed=0) == (train, held)  # order of input irrelevant
    assert split_users(users, 0.3, seed=1) != (train, held)
    assert split_users(users, 0.0) == (sorted(users), [])
    assert split_users(["a", "b"], 0.1)[1] != []  # a positive share holds out at least one
    with pytest.raises(ConfigError, match="held-out share"):
        split_users(users, 1.0)


def test_heldout_loss_is_measured_on_users_absent_from_training(
    pipe, movies, tmp_path: Path
) -> None:
    settings = {"steps": 12, "batch_size": 4, "learning_rate": 3e-2, "checkpoint_every": 1000}
    users = ["u1", "u2", "u4"]
    run = train_soft_tokens(pipe, movies, users, tmp_path, settings, heldout=0.34, progress=False)
    assert len(run.heldout_users) == 1 and set(run.train_users).isdisjoint(run.heldout_users)
    assert sorted(run.train_users + run.heldout_users) == users
    report = json.loads((tmp_path / "heldout.json").read_text())
    assert report["heldout_users"] == run.heldout_users
    held = soft_examples(pipe, movies, run.heldout_users)
    assert report["heldout_examples"] == len(held)
    assert report["train_examples"] == len(soft_examples(pipe, movies, run.train_users))
    # The held-out figures are the loss on exactly the held-out users' examples, by hand.
    tokenizer, model = pipe.soft_llm()
    fresh = SoftPreferenceTrainer(model, tokenizer, pipe.generator, pipe.soft.config)
    assert run.heldout_before == pytest.approx(fresh.evaluate(held, seed=0))
    assert run.heldout_after == pytest.approx(pipe.soft.evaluate(held, seed=0))
    assert run.heldout_after != run.heldout_before
    assert report["heldout_loss_trained"] == pytest.approx(run.heldout_after)
