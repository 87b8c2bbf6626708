"""Review summaries: distinct reviews read with what was left out counted, the lead peer's
length taken outside the sample, ROUGE from the library, empty replies falling back (and
recorded), and the Amazon 2018 loader checked against the raw records of the real file."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from rouge_score import rouge_scorer

from tastemaker.data.sources.amazon import load_amazon_2018
from tastemaker.errors import DataError
from tastemaker.text import review_summary as rs
from tests.conftest import shared_data
from tests.test_text_run import Scripted


def record(user: str, item: str, t: int, text: str, summary: str) -> dict:
    return {"reviewerID": user, "asin": item, "unixReviewTime": t, "overall": 5.0,
            "reviewText": text, "summary": summary}  # fmt: skip


@pytest.fixture
def reviews_file(tmp_path):
    rows = [
        record("u1", "a", 1, "Smells lovely and lasts all day", "Lovely scent"),
        record("u1", "b", 1, "Smells lovely and lasts all day", "Lovely scent"),  # variant copy
        record("u2", "a", 2, "Dried my skin out badly", "Too drying for me"),
        record("u3", "c", 3, "ok", "Five Stars"),  # placeholder from the star rating
        record("u4", "c", 4, "", "Nothing said"),  # no text
        record("u5", "d", 5, "Great brush, soft bristles, no shedding", "Soft"),
    ]
    path = tmp_path / "reviews.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_reading_keeps_distinct_reviews_and_counts_the_rest(reviews_file, tmp_path):
    read = rs.read_reviews(reviews_file)
    assert [r.summary for r in read.kept] == ["Lovely scent", "Too drying for me", "Soft"]
    assert (read.copies, read.placeholders, read.incomplete) == (1, 1, 1)
    bad = tmp_path / "bad.json"
    bad.write_text('{"reviewerID": "u"}\n{not json\n')
    with pytest.raises(DataError, match="line 2"):
        rs.read_reviews(bad)


def test_sample_lead_and_scores(reviews_file):
    kept = rs.read_reviews(reviews_file).kept
    scored, rest = rs.sample(kept, 2, seed=0)
    assert rs.sample(kept, 2, seed=0) == (scored, rest)
    assert len(scored) == 2 and {r.text for r in scored}.isdisjoint({r.text for r in rest})
    assert rs.lead_length(kept) == 2  # summaries of 2, 4 and 1 words: median 2
    assert rs.lead(kept[1], 2) == "Dried my"
    values = rs.per_example(kept, ["lovely scent here", "too dry", ""])
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    expected = scorer.score("Lovely scent", "lovely scent here")["rouge1"].fmeasure
    assert values["rouge1"][0] == pytest.approx(expected) == pytest.approx(0.8)  # P 2/3, R 1
    assert values["rouge1"][1] == pytest.approx(2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4))
    assert values["rouge1"][2] == 0.0
    summary = rs.with_intervals({"rouge1": np.array([0.0, 1.0, 1.0, 1.0])}, seed=0)["rouge1"]
    assert summary["value"] == 0.75 and 0.0 <= summary["low"] <= 0.75 <= summary["high"] <= 1.0


def test_empty_replies_fall_back_to_the_lead_words(reviews_file):
    kept = rs.read_reviews(reviews_file).kept[:2]
    made, records = rs.summarize(Scripted(["   "]), kept, words=3)
    assert made == ["Smells lovely and", "Dried my skin"]
    assert all(r["fallback"] and r["how"] == "empty" for r in records)
    made, records = rs.summarize(Scripted(['Title: "Lovely scent!"\nmore']), kept[:1], words=3)
    assert made == ["Lovely scent"] and not records[0]["fallback"]
    assert "product review: Smells lovely" in rs.messages(kept[0])[0].content


def test_amazon_loader_on_the_real_beauty_reviews():
    path = shared_data("amazon-2018-all-beauty-5core") / "All_Beauty_5.json"
    read = rs.read_reviews(path)
    frame = load_amazon_2018(path).interactions.frame
    assert frame.height == 5269  # every line of the file, variant copies included
    distinct = len(read.kept) + read.placeholders
    users = frame["user_id"].n_unique()
    assert 1.3 < (distinct + read.incomplete) / users < 1.5  # the "about 1.4"
    joined = {
        (u, i, t): x
        for u, i, t, x in frame.select("user_id", "item_id", "timestamp", "text").iter_rows()
    }
    for review in read.kept[:200]:  # the loader writes "summary. text", both stripped
        got = joined[(review.user_id, review.item_id, review.timestamp)]
        assert got == f"{review.summary}. {review.text}"
    assert frame["rating"].dtype == pl.Float32 and frame["rating"].is_between(1, 5).all()
