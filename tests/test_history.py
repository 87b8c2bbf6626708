"""History serialization (PMG stage 1): filtering, order, templates, errors."""

from __future__ import annotations

import polars as pl
import pytest

from tastemaker import Catalog, Interactions
from tastemaker.data.dataset import Dataset
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import leave_one_out
from tastemaker.errors import DataError
from tastemaker.generation.history import (
    HistoryConfig,
    build_history,
    describe_conversation,
    describe_item,
)


@pytest.fixture
def movies() -> Catalog:
    return Catalog(
        pl.DataFrame(
            {
                "item_id": ["m0", "m1", "m2", "m3", "m4"],
                "title": [
                    "Heat (1995)",
                    "Matrix, The (1999)",
                    "Alien (1979)",
                    "Amelie",
                    "Star Wars: Episode IV - A New Hope (1977)",
                ],
                "genres": [["Action", "Crime"], ["Action", "Sci-Fi"], ["Horror"], [], ["Sci-Fi"]],
                "tags": [["heist"], ["cyberpunk", "philosophy", "kung fu"], [], ["quirky"], []],
                "plot": ["Cops and robbers.", None, "In space no one hears.", None, None],
            }
        )
    )


@pytest.fixture
def ratings() -> Interactions:
    rows = [
        ("u1", "m0", 5.0, 10), ("u1", "m1", 4.0, 20), ("u1", "m2", 2.0, 30),
        ("u1", "m3", 5.0, 40), ("u1", "m4", 3.5, 50), ("u1", "m1", 4.5, 60),
        ("u2", "m2", 3.0, 15), ("u2", "m3", 1.0, 25),
    ]  # fmt: skip
    return Interactions(
        pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    )


def test_movies_keep_liked_items_newest_first_each_once(movies, ratings):
    history = build_history(movies, ratings, "u1")
    # liked (>= 4): m0 t10, m1 t20 and t60 (repeat), m3 t40 -> newest first, m1 once
    assert history.item_ids == ["m1", "m3", "m0"]
    assert history.ratings == [4.5, 5.0, 5.0]
    assert history.titles == ["The Matrix", "Amelie", "Heat"]
    assert history.text == (
        "1. The Matrix (Action, Sci-Fi): cyberpunk, philosophy, kung fu\n"
        "2. Amelie: quirky\n"
        "3. Heat (Action, Crime): heist"
    )
    assert history.n_interactions == 6 and history.min_rating == 4.0


def test_rating_order_cap_threshold_and_options(movies, ratings):
    by_rating = build_history(movies, ratings, "u1", HistoryConfig(order="rating", max_items=2))
    assert by_rating.item_ids == ["m3", "m0"]  # both 5.0: the newer (t40) first
    everything = build_history(movies, ratings, "u1", HistoryConfig(min_rating=None))
    assert everything.item_ids == ["m1", "m4", "m3", "m2", "m0"]
    assert everything.min_rating is None
    short = build_history(
        movies, ratings, "u1", HistoryConfig(tags_per_item=1, strip_year=False, max_items=1)
    )
    assert short.lines == ["The Matrix (1999) (Action, Sci-Fi): cyberpunk"]


def test_data_without_ratings_keeps_every_interaction(movies):
    clicks = Interactions(pl.DataFrame({"user_id": ["u"] * 2, "item_id": ["m2", "m0"]}))
    history = build_history(movies, clicks, "u")
    assert history.item_ids == ["m0", "m2"]  # no timestamps: later rows are newer
    assert history.min_rating is None


def test_unknown_user_and_user_without_liked_items(movies, ratings):
    with pytest.raises(DataError, match="unknown user ID 'nobody'"):
        build_history(movies, ratings, "nobody")
    with pytest.raises(DataError, match=r"none rated >= 4 \(their highest rating is 3\)") as err:
        build_history(movies, ratings, "u2")
    assert "min_rating" in err.value.fix
    assert build_history(movies, ratings, "u2", HistoryConfig(min_rating=3)).item_ids == ["m2"]


def test_split_history_leaves_out_the_test_part(movies, ratings):
    split = leave_one_out(Dataset(movies, ratings, Manifest(name="toy")))
    test_items = split.test.frame.filter(pl.col("user_id") == "u1")["item_id"].to_list()
    assert test_items == ["m1"]  # u1's last interaction (t60)
    history = build_history(movies, split, "u1", HistoryConfig(min_rating=None))
    assert history.item_ids == ["m4", "m3", "m2", "m1", "m0"]  # m1 from t20 (train), not t60
    assert history.ratings[3] == 4.0


def test_products_and_conversation_templates(movies):
    products = Interactions(
        pl.DataFrame({"user_id": ["s", "s"], "item_id": ["m0", "m2"], "timestamp": [1, 2]})
    )
    history = build_history(movies, products, "s", HistoryConfig(domain="products"))
    assert history.text == (
        "1. Alien. Plot: In space no one hears.. Genres: Horror\n"
        "2. Heat. Plot: Cops and robbers.. Genres: Action, Crime. Tags: heist"
    )
    chat = Interactions(
        pl.DataFrame(
            {
                "user_id": ["c"] * 3,
                "item_id": ["m3", "m0", "m3"],
                "timestamp": [1, 2, 3],
                "text": ["hello!", None, "see you"],
            }
        )
    )
    turns = build_history(movies, chat, "c", HistoryConfig(domain="conversation", max_items=2))
    # the two newest turns (each item once: m3 at t3, m0 at t2), read oldest first
    assert turns.text == "User: Heat\nUser: see you"


def test_describe_item_and_conversation(movies):
    item = describe_item(movies, "m1")
    assert item.title == "The Matrix"
    assert item.text == (
        "Title: The Matrix\nGenres: Action, Sci-Fi\nTags: cyberpunk, philosophy, kung fu"
    )
    assert item.attributes == {
        "genres": ["Action", "Sci-Fi"],
        "tags": ["cyberpunk", "philosophy", "kung fu"],
    }
    convo = describe_conversation([("Alice", "I passed!"), ("Bob", " congrats "), ("Alice", "")])
    assert convo.text == "Alice: I passed!\nBob: congrats" and convo.domain == "conversation"
    with pytest.raises(DataError, match="no text"):
        describe_conversation([("Alice", "  ")])


def test_item_without_any_text_is_refused():
    bare = Catalog(
        pl.DataFrame(
            {"item_id": ["x"], "genres": [[]]}, schema_overrides={"genres": pl.List(pl.Utf8)}
        )
    )
    with pytest.raises(DataError, match="item 'x' has no title, description or attributes"):
        describe_item(bare, "x")
    with pytest.raises(DataError, match="unknown item"):
        describe_item(bare, "y")


def test_history_before_an_item_holds_only_what_came_earlier(movies, ratings):
    # u1 liked m0 (t10), m1 (t20, again t60), m3 (t40): the targets in time order.
    from tastemaker.generation.history import liked_items

    assert liked_items(ratings, "u1") == ["m0", "m1", "m3"]
    before_m3 = build_history(movies, ratings, "u1", before="m3")
    assert before_m3.item_ids == ["m1", "m0"]  # m1's later repeat (t60) is not seen
    assert before_m3.n_interactions == 3  # m0, m1, m2 happened before t40
    assert "Amelie" not in before_m3.text
    before_m1 = build_history(movies, ratings, "u1", before="m1")
    assert before_m1.item_ids == ["m0"]  # m1 itself never appears, though it recurs later
    with pytest.raises(DataError, match="no interaction before item 'm0'"):
        build_history(movies, ratings, "u1", before="m0")
    with pytest.raises(DataError, match="never interacted with item 'm4x'"):
        build_history(movies, ratings, "u1", before="m4x")
    # The release's order: best rated first, then newest; m2 (rated 2) is not liked.
    paper = HistoryConfig(order="rating", max_items=1)
    assert build_history(movies, ratings, "u1", paper, before="m3").item_ids == ["m0"]
