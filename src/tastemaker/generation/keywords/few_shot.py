"""A few-shot layout for base language models, which have no chat template to follow.

A base model (Gemma 3 270M) given the plain request continues the transcript
("Assistant: A person who works as an assistant." again and again) or the
history itself. Shown worked examples as earlier turns, it answers the open
turn with a list. PMG's release prompts such a model the same way, one
transcript ending in an open answer (``### Human: ... ### Assistant:``; Shen et
al., WWW 2024, arXiv 2404.08677); the requests stay those of
:mod:`tastemaker.generation.prompts`, the examples are tastemaker's own.

Two costs come with examples, and both are handled here: the model goes on to
write the next turn after its list (:func:`first_turn` keeps the answer only),
and a small model copies an example's answer (:func:`example_copies` marks the
keywords it took from the examples that its own input does not contain).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tastemaker.errors import ConfigError
from tastemaker.generation.history import Domain
from tastemaker.generation.keywords.base import Kind
from tastemaker.generation.keywords.echo import SourceVocabulary, similar
from tastemaker.generation.keywords.parsing import keyword_key
from tastemaker.generation.prompts import PromptTemplate
from tastemaker.llm.base import ChatMessage

_TURN = re.compile(r"\n\s*\n|\n\s*(?:system|user|assistant|human)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Shot:
    """One worked example: the subject's text, and the answer the model should imitate."""

    body: str
    answer: tuple[str, ...]


_MOVIE_USERS = (
    Shot(
        "1. Alien (Horror, Sci-Fi): space, claustrophobic\n"
        "2. The Thing (Horror, Sci-Fi): paranoia, snow\n"
        "3. Predator (Action, Sci-Fi): jungle",
        ("horror", "sci-fi", "space", "claustrophobic", "paranoia", "snow", "jungle", "monsters"),
    ),
    Shot(
        "1. Amelie (Comedy, Romance): quirky, paris\n"
        "2. Chocolat (Drama, Romance): small town\n"
        "3. Big Fish (Drama, Fantasy): whimsical",
        ("romance", "fantasy", "quirky", "paris", "small town", "whimsical", "comedy", "charm"),
    ),
)
_MOVIE_ITEMS = (
    Shot(
        "Title: Jaws\nGenres: Action, Horror\nTags: shark, beach",
        ("open sea", "dark water", "fin", "swimmer", "blue", "menace", "summer", "painted"),
    ),
    Shot(
        "Title: Singin' in the Rain\nGenres: Comedy, Musical, Romance\nTags: dancing",
        ("umbrella", "rain", "street lamp", "tap shoes", "bright colours", "joy", "city night"),
    ),
)
_PRODUCT_USERS = (
    Shot(
        "1. Rose Hand Cream (Beauty): floral, travel size\n"
        "2. Lavender Bath Salts (Beauty): relaxing",
        ("floral", "pastel", "relaxing", "travel size", "soft scents", "spa", "natural", "gentle"),
    ),
)
_PRODUCT_ITEMS = (
    Shot(
        "Title: Leather Weekend Bag\nCategory: Luggage\nColour: brown",
        ("tan leather", "brass buckles", "wooden floor", "soft daylight", "stitching", "travel"),
    ),
)
SHOTS: dict[tuple[Kind, Domain], tuple[Shot, ...]] = {
    ("user", "movies"): _MOVIE_USERS,
    ("item", "movies"): _MOVIE_ITEMS,
    ("user", "products"): _PRODUCT_USERS,
    ("item", "products"): _PRODUCT_ITEMS,
}


def shots(kind: Kind, domain: Domain) -> tuple[Shot, ...]:
    """The worked examples of a kind of subject in a domain (ConfigError where there are none)."""
    if (kind, domain) not in SHOTS:
        have = sorted({d for _, d in SHOTS})
        raise ConfigError(
            f"the few-shot keyword layout has no examples for the {domain} domain",
            f"use layout = 'chat' with a chat model, or a domain among: {', '.join(have)}",
        )
    return SHOTS[kind, domain]


def few_shot_messages(
    template: PromptTemplate, examples: Sequence[Shot], body: str, n: int, *, firm: bool
) -> list[ChatMessage]:
    """The chat layout's messages for ``body`` with the examples as answered turns before
    its request, asked in the same words."""
    system, request = template.messages(body, n, firm=firm)
    turns = [system]
    for shot in examples:
        turns += [
            template.messages(shot.body, n, firm=firm)[-1],
            ChatMessage("assistant", ", ".join(shot.answer[:n])),
        ]
    return [*turns, request]


def first_turn(reply: str) -> str:
    """The reply up to where a base model starts writing the next turn of the transcript."""
    return _TURN.split(reply.strip(), maxsplit=1)[0]


def example_copies(
    keywords: Sequence[str], examples: Sequence[Shot], vocabulary: SourceVocabulary
) -> list[bool]:
    """Per keyword, whether it comes from an example's answer and not from the input itself."""
    shown = {keyword_key(k) for shot in examples for k in shot.answer}
    out = []
    for keyword in keywords:
        key = keyword_key(keyword)
        copied = any(similar(key, s) for s in shown)
        out.append(copied and not vocabulary.is_value(key) and key not in vocabulary.words)
    return out
