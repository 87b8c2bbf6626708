"""Review summaries: a sanity task on real Amazon reviews (2018 release, JSON lines).

Each review's own ``summary`` field (the title its writer gave it) is the gold; the
model sees only the review text. The prompt follows LaMP's title and headline tasks
(Salemi et al. 2023, LaMP-4 "Generate a headline for the following article:", LaMP-5
"Generate a title for the following abstract of a paper:"), with no profile: the 5-core
beauty file has about 1.4 distinct reviews per user. The peer is the review's first
words, as many as the median gold summary has in reviews outside the scored sample.

Two things are left out, each counted: copies of one review that Amazon attached to
several product variants (same writer, time and text: the first copy stays), and the
placeholder summaries Amazon filled in from the star rating ("Five Stars"), which no
text can predict.
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker.data.sources._common import iter_json_lines
from tastemaker.llm.base import LLM, ChatMessage
from tastemaker.text import metrics as m
from tastemaker.text.parsing import parse_text

FIX = "pass an Amazon Reviews 2018 review file (JSON lines with reviewText and summary)"
PLACEHOLDER = re.compile(r"^(one|two|three|four|five) stars?$", re.IGNORECASE)
MAX_REVIEW_WORDS = 150  # a long review is cut: the title is about its start
MAX_SUMMARY_WORDS = 12
MAX_NEW_TOKENS = 24


@dataclass(frozen=True)
class Review:
    """One distinct review: who wrote it about what, when, its text and its own summary."""

    user_id: str
    item_id: str
    timestamp: int
    text: str
    summary: str


@dataclass(frozen=True)
class Reviews:
    """The usable reviews of a file, and how many were left out and why."""

    kept: list[Review]
    copies: int
    placeholders: int
    incomplete: int


def read_reviews(path: Path) -> Reviews:
    """The file's distinct reviews with both a text and a non-placeholder summary."""
    kept: list[Review] = []
    seen: set[tuple[str, int, str]] = set()
    copies = placeholders = incomplete = 0
    for _, record in iter_json_lines(Path(path), FIX):
        text = str(record.get("reviewText") or "").strip()
        summary = str(record.get("summary") or "").strip()
        if not text or not summary or "reviewerID" not in record or "asin" not in record:
            incomplete += 1
            continue
        key = (str(record["reviewerID"]), int(record.get("unixReviewTime") or 0), text)
        if key in seen:
            copies += 1
            continue
        seen.add(key)
        if PLACEHOLDER.match(summary):
            placeholders += 1
            continue
        kept.append(Review(key[0], str(record["asin"]), key[1], text, summary))
    return Reviews(kept, copies, placeholders, incomplete)


def sample(reviews: Sequence[Review], n: int, seed: int) -> tuple[list[Review], list[Review]]:
    """(a seeded sample of ``n`` reviews, the rest), each in file order."""
    picked = set(random.Random(seed).sample(range(len(reviews)), min(n, len(reviews))))
    return (
        [r for i, r in enumerate(reviews) if i in picked],
        [r for i, r in enumerate(reviews) if i not in picked],
    )


def lead_length(reviews: Sequence[Review]) -> int:
    """The median summary length in words (at least 1): the lead baseline's length."""
    return max(1, round(statistics.median(len(r.summary.split()) for r in reviews)))


def lead(review: Review, words: int) -> str:
    return " ".join(review.text.split()[:words])


def messages(review: Review) -> list[ChatMessage]:
    """LaMP-4/5's title prompt, for a review cut to :data:`MAX_REVIEW_WORDS` words."""
    text = " ".join(review.text.split()[:MAX_REVIEW_WORDS])
    return [ChatMessage("user", f"Generate a title for the following product review: {text}")]


def summarize(llm: LLM, reviews: Sequence[Review], words: int) -> tuple[list[str], list[Any]]:
    """(summaries, records): the model's first line, cleaned; an empty one falls back to
    the lead words, and the record says so."""
    replies = llm.chat_batch([messages(r) for r in reviews], max_new_tokens=MAX_NEW_TOKENS)
    summaries, records = [], []
    for review, reply in zip(reviews, replies, strict=True):
        parsed = parse_text(reply, max_words=MAX_SUMMARY_WORDS, single_line=True)
        text = parsed.value if parsed.ok else lead(review, words)
        summaries.append(text)
        records.append({"raw": reply, "how": parsed.how, "fallback": not parsed.ok})
    return summaries, records


def per_example(reviews: Sequence[Review], predicted: Sequence[str]) -> dict[str, np.ndarray]:
    """ROUGE-1 and ROUGE-L F of each prediction against its review's own summary."""
    scores = [m.rouge([r.summary], p) for r, p in zip(reviews, predicted, strict=True)]
    return {name: np.array([s[name] for s in scores]) for name in ("rouge1", "rougeL")}


def with_intervals(values: dict[str, np.ndarray], seed: int) -> dict[str, dict[str, float]]:
    """Each metric's mean and its 95% bootstrap interval over the reviews."""
    out = {}
    for name, v in values.items():
        low, high = m.bootstrap(lambda idx, v=v: float(v[idx].mean()), len(v), seed=seed)
        out[name] = {"value": float(v.mean()), "low": low, "high": high}
    return out
