"""What a keyword reply copied from its input instead of describing: titles, listed values, names.

Small models answer a poster request by restating the prompt: SmolLM2-135M replies
to The Shawshank Redemption with "Title: The Shawsharnank Redemption / Genres:
Crime, Drama / Tags: Morgan King, wrongful imprisonment". :class:`SourceVocabulary`
holds what the prompt said (its titles, the values of its lists, the words of
its multi-word phrases) so :func:`echo_kind` can tell such keywords apart:

* ``title``: a title, a misspelt title or a phrase of two or more of a title's
  words, matched fuzzily (difflib's ratio >= :data:`FUZZY`);
* ``value``: a value the prompt listed (a genre, a tag, an attribute), exactly
  or fuzzily;
* ``name``: a person's or character's name (PMG's prompt says "Character names
  should be excluded"), by a proper-noun heuristic: two or more capitalised
  words that are no listed value, and either recombine words of the prompt's
  phrases ("Morgan King" of "morgan freeman" and "stephen king") or stand out
  in a reply whose other keywords are lower case; or, in any case, start with a
  common given name (:mod:`.names`: "brad pitt"). Other names written in lower
  case, or capitalised in an all-capitalised reply, pass: it is a heuristic.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tastemaker.generation.keywords.names import is_person_name
from tastemaker.generation.keywords.parsing import keyword_key

Echo = Literal["title", "value", "name", "example"]  # example: see few_shot.py
FUZZY = 0.85  # difflib ratio from which two keys are one phrase, misspelt
MIN_FUZZY_CHARS = 5  # shorter keys match exactly only ("war" is no misspelt "car")
_NUMBERING = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*•])\s*")
_VALUE_SEPARATORS = re.compile(r"[,;|/()\[\]{}]|\s[-–—]\s")
_LABEL = re.compile(r"^\s*([^\W\d_][\w ]{0,24}):\s")  # "Genres: ", "Brand: "
_ARTICLE = re.compile(r"^(?:the|a|an) ")  # "the matrix" is echoed as "matrix"
_MINOR_WORDS = frozenset(
    ["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"]
)


def similar(a: str, b: str) -> bool:
    """Whether two comparison keys are the same phrase, allowing a misspelling."""
    if a == b:
        return True
    if min(len(a), len(b)) < MIN_FUZZY_CHARS:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= FUZZY


@dataclass(frozen=True)
class SourceVocabulary:
    """What the prompt said: title keys, listed-value keys, and the words of its phrases."""

    titles: tuple[str, ...]
    values: frozenset[str]
    words: frozenset[str]

    @classmethod
    def from_text(cls, text: str, titles: Iterable[str] = ()) -> SourceVocabulary:
        """The vocabulary of a serialized history or item text (lines of ``Title (a, b): c``
        or ``Label: a, b``), with ``titles`` known apart so their commas split nothing."""
        title_list = [t for t in titles if t.strip()]
        values: set[str] = set()
        for line in text.splitlines():
            line = _NUMBERING.sub("", line)
            for title in sorted(title_list, key=len, reverse=True):
                line = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", ",", line, flags=re.IGNORECASE)
            line = _LABEL.sub(",", line)
            for piece in _VALUE_SEPARATORS.split(line.replace(":", ",")):
                if key := keyword_key(piece):
                    values.add(key)
        keys = [keyword_key(t) for t in title_list]
        title_keys = tuple(dict.fromkeys(k for t in keys for k in (t, _ARTICLE.sub("", t)) if k))
        phrases = [*title_keys, *(v for v in values if " " in v)]
        words = {w for p in phrases for w in p.split() if w not in _MINOR_WORDS and len(w) > 2}
        return cls(title_keys, frozenset(values - set(title_keys)), frozenset(words))

    def is_title(self, key: str) -> bool:
        """A title, or a run of two or more of a title's words, possibly misspelt."""
        key = _ARTICLE.sub("", key) or key
        size = len(key.split())
        for title in self.titles:
            words = title.split()
            if similar(key, title):
                return True
            if size >= 2 and any(
                similar(key, " ".join(words[i : i + size])) for i in range(len(words) - size + 1)
            ):
                return True
        return False

    def is_value(self, key: str) -> bool:
        """A value the prompt listed (genre, tag, attribute), possibly misspelt."""
        return key in self.values or any(similar(key, v) for v in self.values)


def _capitalised_phrase(keyword: str) -> bool:
    """Two or more words, every one but minor words starting with a capital ("Morgan King")."""
    words = re.findall(r"[^\W\d_][\w'’-]*", keyword)
    major = [w for w in words if w.casefold() not in _MINOR_WORDS]
    return len(major) >= 2 and all(w[0].isupper() for w in major)


def _looks_like_name(keyword: str, vocabulary: SourceVocabulary, lower_reply: bool) -> bool:
    if is_person_name(keyword):  # "brad pitt": a given name, whatever the case
        return True
    if not _capitalised_phrase(keyword):
        return False
    words = keyword_key(keyword).split()
    recombined = sum(w in vocabulary.words for w in words if w not in _MINOR_WORDS) >= 2
    return recombined or lower_reply


def echo_kinds(keywords: Sequence[str], vocabulary: SourceVocabulary) -> list[Echo | None]:
    """Per keyword, what it copies from the prompt (title, value, name), or None when new.

    A capitalised phrase counts as a name when most of the other keywords of the
    same list begin in lower case (the model wrote that one as a proper noun).
    """
    lower = [bool(k) and not k[0].isupper() for k in keywords]
    kinds: list[Echo | None] = []
    for i, keyword in enumerate(keywords):
        others = lower[:i] + lower[i + 1 :]
        lower_reply = bool(others) and sum(others) * 2 >= len(others)
        key = keyword_key(keyword)
        if vocabulary.is_title(key):
            kinds.append("title")
        elif vocabulary.is_value(key):
            kinds.append("value")
        elif _looks_like_name(keyword, vocabulary, lower_reply):
            kinds.append("name")
        else:
            kinds.append(None)
    return kinds


def echo_kind(keyword: str, vocabulary: SourceVocabulary) -> Echo | None:
    """What one keyword, seen alone, copies from the prompt (see :func:`echo_kinds`)."""
    return echo_kinds([keyword], vocabulary)[0]


def drop_near_duplicates(keywords: Sequence[str]) -> list[str]:
    """``keywords`` without those that repeat an earlier one up to case, punctuation or a
    misspelling ("Sci-Fi" after "sci-fi", "Thrillers" after "Thriller")."""
    kept: list[str] = []
    keys: list[str] = []
    for keyword in keywords:
        key = keyword_key(keyword)
        if key and not any(similar(key, k) for k in keys):
            kept.append(keyword)
            keys.append(key)
    return kept


__all__ = [
    "FUZZY",
    "Echo",
    "SourceVocabulary",
    "drop_near_duplicates",
    "echo_kind",
    "echo_kinds",
    "similar",
]
