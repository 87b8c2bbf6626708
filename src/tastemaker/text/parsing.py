"""Defensive parsing of small models' replies, per kind of answer: label, number, text.

Small instruction models wrap answers in chatter ("Sure! The tag is: **funny**."),
echo the question, or loop. Each parser strips that, and says how it read the reply
(``how``) or that it could not (``value`` None): the runner retries such a reply with
a firmer prompt, then records a fallback; nothing is silently dropped.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tastemaker.text.tasks import RatingScale

FUZZY_CUTOFF = 0.85  # difflib ratio a near-miss label needs ("dark-comedy" → "dark comedy")
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|okay|ok|certainly|of course)[!,.]?\s*)?"
    r"(?:(?:here(?:'s| is)|the|my|i think|i would say|i'd say|this user would (?:give|write))\b"
    r"[^:\n]{0,60}?(?:\bis\b|:)\s*)?"
    r"(?:(?:answer|tag|label|score|rating|explanation|output|title|summary)\s*[:=-]\s*)?",
    re.IGNORECASE,
)
_WRAPPERS = "\"'`*_[](){}<>“”‘’«» "
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?")
_WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "zero": 0}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Parsed:
    """What a reply was read as (None: unusable) and how (exact, fuzzy, clamped, ...)."""

    value: Any
    how: str

    @property
    def ok(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "how": self.how}


def strip_preamble(text: str) -> str:
    """The reply without leading chatter, labels ("Tag:") and wrapping quotes or markup."""
    text = text.strip()
    for _ in range(2):  # "Sure! Answer: ..." has two layers
        text = _PREAMBLE.sub("", text, count=1).strip()
    return text.strip(_WRAPPERS).rstrip(".!,;:").strip(_WRAPPERS)


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def parse_label(reply: str, labels: Sequence[str]) -> Parsed:
    """One label of ``labels``: exact, then case-folded, then the earliest label named in
    the reply as whole words, then a near miss; anything else is invalid (scored wrong)."""
    line = strip_preamble(first_line(reply))
    if line in labels:
        return Parsed(line, "exact")
    folded = {label.casefold(): label for label in labels}
    if line.casefold() in folded:
        return Parsed(folded[line.casefold()], "casefold")
    text = reply.casefold()
    found = [
        (match.start(), -len(label), label)
        for label in labels
        if (match := re.search(rf"(?<!\w){re.escape(label.casefold())}(?!\w)", text))
    ]
    if found:
        return Parsed(min(found)[2], "contained")
    close = difflib.get_close_matches(line.casefold(), list(folded), n=1, cutoff=FUZZY_CUTOFF)
    if close:
        return Parsed(folded[close[0]], "fuzzy")
    return Parsed(None, "invalid" if line else "empty")


def parse_number(reply: str, scale: RatingScale) -> Parsed:
    """The first number in the reply (or a number word), snapped to the scale's step;
    outside the scale it is clamped to the nearest end (``how`` says so)."""
    text = strip_preamble(reply)
    match = _NUMBER.search(text)
    if match:
        value = float(match.group())
    else:
        word = next((w for w in re.findall(r"[a-z]+", text.lower()) if w in _WORD_NUMBERS), None)
        if word is None:
            return Parsed(None, "invalid" if text else "empty")
        value = float(_WORD_NUMBERS[word])
    snapped = round(value / scale.step) * scale.step
    clamped = float(min(max(snapped, scale.low), scale.high))
    return Parsed(clamped, "clamped" if clamped != snapped else "number")


def cut_loops(text: str) -> str:
    """``text`` up to where it starts repeating itself: a repeated sentence, a span of two or
    more words said twice in a row, or one word three times in a row."""
    kept: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if sentence.strip().casefold() in {s.strip().casefold() for s in kept}:
            break
        kept.append(sentence)
    words = " ".join(kept).split()
    for end in range(len(words)):
        for n in range(1, min(8, (end + 1) // 2) + 1):
            start = end + 1 - 2 * n
            span, again = words[start : start + n], words[start + n : end + 1]
            repeated = n > 1 or (start >= 1 and words[start - 1] == span[0])
            if span == again and repeated:
                return " ".join(words[: start + n])
    return " ".join(words)


def parse_text(reply: str, *, max_words: int | None = None, single_line: bool = False) -> Parsed:
    """Free text: preamble and wrapping removed, loops cut, at most ``max_words`` words."""
    text = first_line(reply) if single_line else reply
    text = cut_loops(strip_preamble(text))
    words = text.split()
    if max_words is not None and len(words) > max_words:
        return Parsed(" ".join(words[:max_words]).rstrip(".,;:"), "cut")
    return Parsed(text, "text") if text else Parsed(None, "empty")


def parse_reply(task: str, reply: str, *, labels: Sequence[str] = (), scale: Any = None) -> Parsed:
    """The parser of ``task``'s kind of answer."""
    if task == "tagging":
        return parse_label(reply, labels)
    if task == "rating":
        return parse_number(reply, scale)
    if task == "tag-generation":
        return parse_text(reply, max_words=5, single_line=True)
    return parse_text(reply, max_words=80)
