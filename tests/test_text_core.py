"""Text tasks: profiles, splits, retrievers, parsing and metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tastemaker.errors import ConfigError, DataError
from tastemaker.text import metrics as m
from tastemaker.text.parsing import cut_loops, parse_label, parse_number, parse_text
from tastemaker.text.profiles import ProfileEntry
from tastemaker.text.retrievers import (
    BM25Retriever,
    RandomRetriever,
    RecencyRetriever,
    create_retriever,
    top_k_within_budget,
)
from tastemaker.text.sources import ItemInfo, TextData
from tastemaker.text.tasks import RatingScale, build_task

GENRES = {
    "i1": ("Comedy",), "i2": ("Horror",), "i3": ("Comedy", "Romance"), "i4": ("Sci-Fi",),
    "i5": ("Horror", "Thriller"), "i6": ("Comedy",), "i7": ("Drama",), "i8": ("Sci-Fi", "Action"),
}  # fmt: skip
TAGS = [  # user, item, tag, timestamp
    ("u1", "i1", "funny", 10), ("u1", "i2", "scary", 20), ("u1", "i3", "funny", 30),
    ("u1", "i3", "romantic", 31), ("u1", "i4", "space", 40), ("u1", "i5", "scary", 50),
    ("u1", "i6", "funny", 60),
    ("u2", "i2", "scary", 15), ("u2", "i5", "gore", 25), ("u2", "i6", "funny", 35),
    ("u3", "i7", "funny", 5),
]  # fmt: skip
RATINGS = [
    ("u1", "i1", 4.0, 10), ("u1", "i2", 2.5, 20), ("u1", "i3", 5.0, 30), ("u1", "i4", 3.0, 40),
    ("u1", "i5", 4.5, 50), ("u1", "i6", 4.0, 60),
    ("u2", "i2", 1.0, 15), ("u2", "i5", 4.0, 25), ("u2", "i6", 5.0, 35),
    ("u3", "i7", 3.0, 5),
]  # fmt: skip


def toy_data() -> TextData:
    tags = pl.DataFrame(TAGS, schema=["user_id", "item_id", "tag", "timestamp"], orient="row")
    ratings = pl.DataFrame(
        RATINGS, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
    )
    everyone = {i: sorted({t for _, it, t, _ in TAGS if it == i}) for i in GENRES}
    items = {i: ItemInfo(i, f"Movie {i.upper()}", g, tuple(everyone[i])) for i, g in GENRES.items()}
    return TextData("toy", ratings, items, tags)


# ----------------------------------------------------------------------------- tasks


def test_tagging_split_is_per_user_by_time_and_profiles_exclude_the_future():
    task = build_task("tagging", toy_data(), n_labels=2)
    assert task.labels == ("funny", "scary")  # 5 and 3 applications
    by_id = {e.id: e for e in task.examples}
    # u1's labelled pairs in time: i1 i2 i3 i5 i6 (i4 has no label-set tag): test i6, valid i5
    assert by_id["u1:i6"].part == "test" and by_id["u1:i5"].part == "valid"
    assert by_id["u1:i6"].gold == "funny" and by_id["u1:i5"].gold == "scary"
    # the test profile holds every earlier tagged pair (i4 too), never the example itself
    assert [e.item_id for e in by_id["u1:i6"].profile] == ["i1", "i2", "i3", "i4", "i5"]
    assert [e.item_id for e in by_id["u1:i5"].profile] == ["i1", "i2", "i3", "i4"]
    assert by_id["u1:i6"].profile[2].output == "funny, romantic"
    # u2: i2 (scary) and i6 (funny) are labelled, i5 (gore) is not: valid i2 with an empty profile
    assert by_id["u2:i2"].part == "valid" and by_id["u2:i2"].profile == ()
    assert [e.item_id for e in by_id["u2:i6"].profile] == ["i2", "i5"]
    assert not any(e.user_id == "u3" for e in task.examples)  # one pair only
    for example in task.examples:
        assert all(p.timestamp < example.timestamp for p in example.profile)
        assert example.item.item_id not in {p.item_id for p in example.profile}
        assert "funny" not in example.input and "scary" not in example.input


def test_rating_task_keeps_half_stars_and_samples_users_with_a_seed():
    task = build_task("rating", toy_data())
    assert task.scale == RatingScale(1.0, 5.0, 0.5)
    gold = {e.id: (e.part, e.gold) for e in task.examples}
    assert gold["u1:i6"] == ("test", 4.0) and gold["u1:i5"] == ("valid", 4.5)
    one = build_task("rating", toy_data(), n_users=1, seed=3)
    again = build_task("rating", toy_data(), n_users=1, seed=3)
    assert {e.user_id for e in one.examples} == {e.user_id for e in again.examples}
    assert len({e.user_id for e in one.examples}) == 1
    with pytest.raises(ConfigError):
        build_task("rating", toy_data(), n_users=0)


def test_explanation_prompt_shows_only_other_users_tags_and_gold_is_the_users_own():
    task = build_task("explanation", toy_data())
    test = {e.user_id: e for e in task.part("test")}
    # u1 liked (>= 4) i1 i3 i5 i6, all tagged: test i6, gold its own tag
    assert test["u1"].item.item_id == "i6" and test["u1"].gold == ("funny",)
    assert test["u2"].item.item_id == "i6" and test["u2"].item.tags == ("funny",)  # u1's tag
    assert task.truth["i6"] == frozenset({"comedy", "funny"})


def test_unknown_task_and_missing_tags_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown task"):
        build_task("summaries", toy_data())
    data = toy_data()
    without = TextData(data.name, data.ratings, data.items, None)
    with pytest.raises(DataError, match="per-user tags"):
        build_task("tagging", without)


# ------------------------------------------------------------------------ retrievers

PROFILE = [
    ProfileEntry("a", 1, "space war robots", "x"),
    ProfileEntry("b", 2, "romantic comedy in paris", "y"),
    ProfileEntry("c", 3, "robots in space and more space", "z"),
    ProfileEntry("d", 4, "a quiet drama", "w"),
]


def test_bm25_ranks_the_matching_entries_first():
    ranking = BM25Retriever().rank("space robots", PROFILE, "k")
    # c says "space" twice; a and c match both words, b and d none (ties: newest first)
    assert ranking[:2] == [2, 0] and ranking[2:] == [3, 1]


def test_recency_and_seeded_random_orders():
    assert RecencyRetriever().rank("q", PROFILE, "k") == [3, 2, 1, 0]
    first = RandomRetriever(seed=1).rank("q", PROFILE, "k")
    assert first == RandomRetriever(seed=1).rank("q", PROFILE, "k")
    assert sorted(first) == [0, 1, 2, 3]
    orders = {tuple(RandomRetriever(seed=s).rank("q", PROFILE, "k")) for s in range(10)}
    assert len(orders) > 1
    with pytest.raises(ConfigError, match="unknown retriever"):
        create_retriever("contriever")


def test_budget_keeps_the_longest_prefix_that_fits():
    def build(entries):
        return " ".join(["question", *(e.text for e in entries)])

    def count(text):
        return len(text.split())

    full = top_k_within_budget(build, PROFILE, 4, 100, count)
    assert len(full.entries) == 4 and full.dropped == 0
    cut = top_k_within_budget(build, PROFILE, 4, 8, count)  # 1 + 3 + 4 = 8 words: two fit
    assert [e.item_id for e in cut.entries] == ["a", "b"] and cut.dropped == 2 and cut.tokens == 8
    assert top_k_within_budget(build, PROFILE, None, 100, count).dropped == 0
    assert top_k_within_budget(build, [], 4, 100, count).entries == ()
    with pytest.raises(ConfigError, match="without any profile entry"):
        top_k_within_budget(build, PROFILE, 2, 0, count)
    with pytest.raises(ConfigError):
        top_k_within_budget(build, PROFILE, -1, 10, count)


# --------------------------------------------------------------------------- parsing

LABELS = ["funny", "dark comedy", "sci-fi", "atmospheric"]


@pytest.mark.parametrize(
    ("reply", "value", "how"),
    [
        ("funny", "funny", "exact"),
        ("Funny.", "funny", "casefold"),
        ('Sure! Tag: "Sci-Fi"', "sci-fi", "casefold"),
        ("I would pick atmospheric, maybe funny", "atmospheric", "contained"),
        ("dark-comedy", "dark comedy", "fuzzy"),
        ("romance", None, "invalid"),
        ("", None, "empty"),
    ],
)
def test_label_parsing(reply, value, how):
    parsed = parse_label(reply, LABELS)
    assert (parsed.value, parsed.how) == (value, how)


def test_number_parsing_snaps_clamps_and_refuses():
    scale = RatingScale(0.5, 5.0, 0.5)
    assert parse_number("The score is 3.7 out of 5", scale).value == 3.5
    assert parse_number("Rating: four", scale).value == 4.0
    clamped = parse_number("7", scale)
    assert clamped.value == 5.0 and clamped.how == "clamped"
    assert parse_number("no idea", scale).value is None


def test_text_parsing_strips_preambles_and_cuts_loops():
    assert parse_text('Sure! Here is the tag: "great soundtrack".').value == "great soundtrack"
    assert cut_loops("a b c a b c a b c") == "a b c"
    assert cut_loops("I liked it. I liked it. Really.") == "I liked it."
    assert parse_text("one two three four five six", max_words=3).value == "one two three"
    assert parse_text("  ").value is None


# --------------------------------------------------------------------------- metrics


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", None]
    assert m.accuracy(gold, pred) == 0.5
    # a: tp1 fp0 fn1 → 2/3; b: tp1 fp1 fn0 → 2/3; c: 0; d: never seen → 0
    assert m.macro_f1(gold, pred, ["a", "b", "c", "d"]) == pytest.approx((2 / 3 + 2 / 3) / 4)


def test_mae_rmse_by_hand():
    assert m.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert m.rmse([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))


def test_rouge_matches_the_library_and_takes_the_best_gold():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    expected = scorer.score("great soundtrack", "the great music")["rouge1"].fmeasure
    assert expected == pytest.approx(0.4)  # P 1/3, R 1/2
    assert m.rouge(["epic", "great soundtrack"], "the great music")["rouge1"] == pytest.approx(0.4)
    assert m.exact_match(["Dark  Comedy"], "dark comedy") == 1.0
    assert m.exact_match(["funny"], None) == 0.0


def test_copying_a_past_tag_is_an_exact_match_with_any_earlier_tag():
    past = ["Dark Comedy, twist ending", "space", ""]  # each record's tags, joined by ", "
    assert m.copies_profile(past, "twist  Ending") == 1.0  # normalised, the 2nd tag of a record
    assert m.copies_profile(past, "dark comedy, twist ending") == 0.0  # a whole record is no tag
    assert m.copies_profile(past, "comedy") == 0.0
    assert m.copies_profile(past, "") == 0.0 and m.copies_profile(past, None) == 0.0
    assert m.copies_profile([], "space") == 0.0


def test_peter_feature_measures_by_hand():
    vocabulary = ["funny", "dark comedy", "comedy", "space"]
    named = [m.features_in(t, vocabulary) for t in ["A funny dark comedy.", "Space!", "nothing"]]
    assert named == [frozenset({"funny", "dark comedy"}), frozenset({"space"}), frozenset()]
    assert m.feature_matching(named, [["funny"], ["gore"], ["space"]]) == pytest.approx(1 / 3)
    assert m.feature_coverage(named, 4) == 0.75
    # pairs: (0,1) 0, (0,2) 0, (1,2) 0 shared
    assert m.feature_diversity(named) == 0.0
    assert m.feature_diversity([frozenset({"a", "b"}), frozenset({"a"}), frozenset({"b"})]) == (
        pytest.approx(2 / 3)
    )
    assert m.unique_sentence_ratio(["x", "X ", "y"]) == pytest.approx(2 / 3)
    assert m.faithfulness(
        [frozenset({"a", "b"}), frozenset({"c"})], [frozenset({"a"}), frozenset({"c"})]
    ) == (2, 3)


def test_bootstrap_is_seeded_and_paired_difference_excludes_zero_when_it_should():
    hits = np.array([1.0] * 30 + [0.0] * 10)
    stat = lambda idx: float(hits[idx].mean())  # noqa: E731
    low, high = m.bootstrap(stat, 40, seed=5)
    assert (low, high) == m.bootstrap(stat, 40, seed=5)
    assert low < 0.75 < high
    better, worse = np.ones(40), np.r_[np.ones(20), np.zeros(20)]
    diff = m.paired_bootstrap(
        lambda i: float(better[i].mean()), lambda i: float(worse[i].mean()), 40, seed=0
    )
    assert diff["difference"] == 0.5 and diff["low"] > 0
