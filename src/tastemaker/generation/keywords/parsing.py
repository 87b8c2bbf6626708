"""Defensive parsing of LLM keyword replies, however a model formats them.

Small models answer with numbered or bulleted lists, inline numbers, markdown,
preambles, explanations, echoed prompt lines and chatter; :func:`parse_keywords`
keeps the keywords and drops the rest, so an extractor can count what is usable
and retry when too little is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_WORDS = 4  # a longer "keyword" is a sentence or an explanation
MAX_CHARS = 40

_SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|https?://\S+|www\.\S+")
_MARKUP = re.compile(r"\*\*|__|`|~~")
_BULLET = re.compile(r"^(?:[-*•+·▪►✓]|\(?\d{1,2}[.):]|#+)\s*")
_INLINE_NUMBER = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]\s+")  # "1. cute 2. cartoon"
_SEPARATORS = re.compile(r"[,;:|/()\[\]{}]|\s[-–—]\s")
_EXPLANATION = re.compile(r"\s[-–—]\s")  # "sci-fi - films about space"
_EDGE = "\"'`“”‘’«»*_~.,:;!?-–— \t"
_LEADING_CONJUNCTION = re.compile(r"^(?:and|or|&|plus)\s+", re.IGNORECASE)
_PREAMBLE_WORDS = re.compile(
    r"\b(keywords?|here|answer|output|interests?|preferences?|taste|summary|list|"
    r"describe[sd]?|user|person|shopper|result)\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"^(?:keyword|word|tag)\s*\d*$", re.IGNORECASE)
# Chatter is the model talking about the task, not naming a keyword. A pronoun alone
# does not make it ("World War I", "My Little Pony", "you and me"): a sentence does,
# that is sentence punctuation, words only the conversation uses, or a subject
# pronoun followed by a lower-case verb ("I hope", "you might"; Title Case such as
# "I Am Legend" or "Let Me In" is a name).
_CHATTER = re.compile(
    r"[!?]|\.\s"
    r"|(?i:\b(?:keywords?|answer|output|helps|sorry|thanks|as an ai)\b)"
    r"|(?i:\bhere(?:'s|\s+(?:are|is|you|they)))\b"
    r"|^(?i:i|we|you|let\s+(?:me|us))(?:'[a-z]+)?\s+(?!(?:and|or|nor)\b)[a-z]"
)
_JUNK = {
    "etc", "n/a", "na", "none", "more", "others", "other", "misc", "various", "and", "or",
    "the", "a", "an", "of", "keywords", "keyword", "movie", "movies", "film", "films",
    "title", "titles", "genre", "genres", "tag", "tags", "description", "name",
    "system", "user", "assistant", "here", "sure", "certainly", "okay", "ok",
}  # fmt: skip


def keyword_key(text: str) -> str:
    """Comparison form: case-folded words without punctuation ("Sci-Fi" == "sci fi")."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _clean(candidate: str) -> str | None:
    """A candidate stripped of quotes and punctuation, or None when it is no keyword."""
    text = " ".join(candidate.split()).strip(_EDGE.replace("!", "").replace("?", ""))
    text = _LEADING_CONJUNCTION.sub("", text)
    if _CHATTER.search(text):  # "I hope this helps!", "Sure! Here you go", "Keywords are"
        return None
    text = text.strip(_EDGE)
    if not text or not re.search(r"[^\W\d_]", text):  # nothing, or no letter at all
        return None
    if len(text) > MAX_CHARS or len(text.split()) > MAX_WORDS or len(text) < 2:
        return None
    if text.lower().startswith(("http", "www.")) or _PLACEHOLDER.match(text):
        return None
    return None if keyword_key(text) in _JUNK else text


def _line_candidates(line: str) -> list[str]:
    """The keyword candidates of one line of an LLM reply."""
    line = line.strip()
    bulleted = bool(_BULLET.match(line))
    line = _BULLET.sub("", line, count=1).strip()
    head, sep, tail = line.partition(":")
    if sep and "," not in head:
        term = not _PREAMBLE_WORDS.search(head) and len(head.split()) <= MAX_WORDS
        if bulleted and term:
            line = head  # "1. **Noir**: dark crime films, often black and white"
        elif not term or "," in tail:
            line = tail  # "Here are the keywords: a, b", "Genres: a, b"
        else:
            line = head  # "Noir: dark crime films"
    elif bulleted:
        line = _EXPLANATION.split(line, maxsplit=1)[0]  # "- noir - dark crime films"
    pieces = [p for p in _INLINE_NUMBER.split(line) if p.strip()]
    return [c for piece in pieces for c in _SEPARATORS.split(piece)]


def cut_loop(text: str) -> str:
    """``text`` up to where it starts over: the first line that repeats an earlier one.

    Greedy decoding of a small model often loops ("Title: X / Genres: ... " again and
    again until the token limit); what follows the first repeat adds only repeats.
    """
    seen: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key = " ".join(_BULLET.sub("", line.strip(), count=1).casefold().split())
        if key in seen:
            return "\n".join(lines[:i])
        if key:
            seen.add(key)
    return text


def parse_keywords(
    text: str,
    n: int,
    *,
    exclude: Iterable[str] = (),
    titles: Iterable[str] = (),
    truncated: bool = False,
) -> list[str]:
    """Up to ``n`` distinct keywords from an LLM reply, however it is formatted.

    Handles numbered lists (one per line, or inline as in "1. cute 2. cartoon"),
    bullets, comma / semicolon / slash / newline separated lists, quotes,
    markdown bold, chat-template tokens, preambles ("Keywords:", "Here are 8
    keywords:") and explanations after a ":" or " - " of a list entry. Drops
    chatter ("Sure", "I hope this helps", not "you and me"), junk (numbers,
    single letters, placeholders, links), phrases of more than four words,
    duplicates (case and punctuation insensitive), anything in ``exclude`` (the
    prompt lines a model may echo), and ``titles`` with any phrase of two or
    more words inside one ("Episode VI" of "Star Wars: Episode VI - Return of
    the Jedi"): a title is not a preference. Order is kept.
    A ``truncated`` reply (cut at the token limit) loses what follows its last
    separator, a keyword that may be cut mid-word; a looping reply is read up to
    its first repeated line (:func:`cut_loop`).
    """
    if n < 1:
        return []
    if truncated and (cut := max(text.rfind(c) for c in ",;\n")) > 0:
        text = text[:cut]
    text = cut_loop(_MARKUP.sub("", _SPECIAL_TOKENS.sub("\n", text)))
    titles = list(titles)
    for title in sorted(titles, key=len, reverse=True):
        if len(title.split()) > 1:  # "Girl, Interrupted" would split into two "keywords"
            text = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", ",", text, flags=re.IGNORECASE)
    title_keys = [f" {keyword_key(t)} " for t in titles]
    excluded = {keyword_key(e) for e in exclude} | {t.strip() for t in title_keys}
    keywords: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        for candidate in _line_candidates(line):
            keyword = _clean(candidate)
            if keyword is None or (key := keyword_key(keyword)) in seen or key in excluded:
                continue
            if " " in key and any(f" {key} " in title for title in title_keys):
                continue
            seen.add(key)
            keywords.append(keyword)
            if len(keywords) == n:
                return keywords
    return keywords
