"""The few-shot layout for base models, lower-case names, and merged misspelt item values."""

from __future__ import annotations

import polars as pl
import pytest

from tastemaker import Catalog
from tastemaker.errors import ConfigError
from tastemaker.generation.history import build_history, describe_item
from tastemaker.generation.keywords import LLMKeywordExtractor, StatisticalKeywordExtractor
from tastemaker.generation.keywords.echo import SourceVocabulary, echo_kind, echo_kinds
from tastemaker.generation.keywords.few_shot import SHOTS, first_turn
from tastemaker.generation.keywords.names import is_person_name

from .test_keywords import ScriptedLLM, catalog, ratings  # noqa: F401 - fixtures

# Gemma 3 270M (a base model) answering the few-shot chat rendered as a transcript: its
# list, then the next turn it goes on to write.
GEMMA_REPLY = (
    "comedy, drama, romance, horror, noir, crime\n\n"
    "User: A person watched and liked these movies:\n1. The Exorcist (Drama, Horror)"
)


def test_few_shot_layout_puts_answered_examples_before_the_request(catalog, ratings):  # noqa: F811
    history = build_history(catalog, ratings, "u")
    llm = ScriptedLLM({"Alpha": ["noir, crime, rain, night"]})
    result = LLMKeywordExtractor(llm, n=4, layout="few-shot").extract_user(history)
    sent = result.attempts[0].messages
    examples = SHOTS["user", "movies"]
    assert [m.role for m in sent] == ["system", *["user", "assistant"] * len(examples), "user"]
    assert sent[1].content.startswith("A person watched and liked these movies:")
    assert examples[0].body in sent[1].content
    assert sent[2].content == ", ".join(examples[0].answer[:4])  # n keywords, as asked
    assert history.text in sent[-1].content and "Give 4 keywords" in sent[-1].content
    chat = LLMKeywordExtractor(ScriptedLLM({"Alpha": ["noir, crime, rain, night"]}), n=4)
    assert [m.role for m in chat.extract_user(history).attempts[0].messages] == ["system", "user"]


def test_few_shot_reply_ends_at_the_next_turn_and_example_copies_go(catalog, ratings):  # noqa: F811
    history = build_history(catalog, ratings, "u")  # Drama, Crime, noir, heist
    llm = ScriptedLLM({"Alpha": [GEMMA_REPLY]}, truncated=True)
    result = LLMKeywordExtractor(llm, n=8, min_keywords=3, layout="few-shot").extract_user(history)
    # "comedy", "romance" and "horror" come from the examples' answers, not from this
    # user's history; nothing of the next turn ("The Exorcist", "User") is read
    assert result.keywords == ["drama", "noir", "crime"]
    assert result.attempts[0].dropped == dict.fromkeys(("comedy", "romance", "horror"), "example")
    # the chat layout reads the whole reply, the next turn's title included
    chat = LLMKeywordExtractor(ScriptedLLM({"Alpha": [GEMMA_REPLY]}), n=8, min_keywords=3)
    assert "The Exorcist" in chat.extract_user(history).keywords


def test_first_turn_and_truncation():
    assert first_turn("a, b, c\n\nUser: next") == "a, b, c"
    assert first_turn("a, b\nAssistant: a, b") == "a, b"
    assert first_turn("  1. a\n2. b\n3. c") == "1. a\n2. b\n3. c"  # a list on lines stays


def test_few_shot_layout_needs_examples_for_the_domain(catalog, ratings):  # noqa: F811
    history = build_history(catalog, ratings, "u")
    extractor = LLMKeywordExtractor(
        ScriptedLLM({"Alpha": ["a, b"]}), n=4, layout="few-shot", domain="conversation"
    )
    with pytest.raises(ConfigError, match="no examples for the conversation domain"):
        extractor.extract_user(history)
    with pytest.raises(ConfigError, match="layout"):
        LLMKeywordExtractor(ScriptedLLM({}), layout="completion")


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        ("brad pitt", True),
        ("Brad Pitt", True),
        ("morgan freeman", True),
        ("quentin tarantino", True),
        ("dark forest", False),
        ("rose garden", False),  # rose: a given name that is also a word, not listed
        ("christian themes", False),
        ("brad", False),  # one word: a name alone says nothing
        ("tom and jerry show fans", False),  # longer than a name
        ("harry 2", False),
    ],
)
def test_lower_case_names(keyword, name):
    assert is_person_name(keyword) is name


def test_lower_case_names_are_dropped_but_visual_phrases_stay():
    vocabulary = SourceVocabulary.from_text("Title: Fight Club\nGenres: Drama", ["Fight Club"])
    reply = ["brad pitt", "dark forest", "soap bar", "edward norton"]
    assert echo_kinds(reply, vocabulary) == ["name", None, None, "name"]
    # a name the input listed (a MovieLens tag) is a listed value, as before
    tagged = SourceVocabulary.from_text("Title: Fight Club\nTags: brad pitt", ["Fight Club"])
    assert echo_kind("brad pitt", tagged) == "value"


def test_statistical_item_keywords_keep_the_commoner_spelling():
    tolkien = Catalog(
        pl.DataFrame(
            {
                "item_id": ["lotr", "hobbit", "other"],
                "title": ["The Fellowship", "The Hobbit", "Other"],
                "genres": [["Fantasy"], ["Fantasy"], ["Drama"]],
                "tags": [["tolkein", "tolkien", "epic"], ["tolkien"], ["dark forest"]],
            }
        )
    )
    # per catalog item: "tolkien" on 2 items, "tolkein" on 1; rarity alone would pick the
    # misspelling first
    extractor = StatisticalKeywordExtractor(tolkien, None, item_n=8, mmr_lambda=1.0)
    keywords = extractor.extract_item(describe_item(tolkien, "lotr")).keywords
    assert "tolkien" in keywords and "tolkein" not in keywords
    assert sorted(keywords) == ["Fantasy", "epic", "tolkien"]


class BaseModelLLM(ScriptedLLM):
    """A scripted model without a chat template, as a base model's tokenizer has none."""

    @property
    def has_chat_template(self) -> bool:
        return False


def test_auto_layout_is_few_shot_only_for_a_model_without_a_chat_template(catalog, ratings):  # noqa: F811
    history = build_history(catalog, ratings, "u")
    reply = {"Alpha": ["noir, crime, rain, night"]}
    base = LLMKeywordExtractor(BaseModelLLM(reply), n=4)  # layout "auto", the default
    chat = LLMKeywordExtractor(ScriptedLLM(reply), n=4)
    assert base.config.layout == chat.config.layout == "auto"
    assert len(base.extract_user(history).attempts[0].messages) > 2  # examples as turns
    assert [m.role for m in chat.extract_user(history).attempts[0].messages] == ["system", "user"]
    forced = LLMKeywordExtractor(BaseModelLLM(reply), n=4, layout="chat")
    assert [m.role for m in forced.extract_user(history).attempts[0].messages] == ["system", "user"]
