"""Keyword parsing of messy LLM replies, the LLM extractor's retries, the statistical extractor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from tastemaker import Catalog, Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.history import HistoryConfig, build_history, describe_item
from tastemaker.generation.keywords import (
    KeywordExtractionError,
    LLMKeywordExtractor,
    StatisticalKeywordExtractor,
    mmr,
    parse_keywords,
    popular_keywords,
)
from tastemaker.generation.prompts import ITEM_PROMPTS, PREFERENCE_PROMPTS
from tastemaker.llm.base import LLM, ChatMessage, LLMConfig, Reply

# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("noir, heist,  crime ", ["noir", "heist", "crime"]),
        ("1. Noir\n2. Heist\n3) Crime", ["Noir", "Heist", "Crime"]),
        # PMG's release asks for this inline format
        ("The keywords are: 1. masculine 2. cute 3. cartoon", ["masculine", "cute", "cartoon"]),
        (
            "Keywords: romance; drama | 'period piece' / costume",
            ["romance", "drama", "period piece", "costume"],
        ),
        (
            "Here are 8 keywords for this user:\n\n1. **Sci-Fi**: films about space, aliens\n"
            '2. **Dark** - brooding tone\n3. "Noir"\n- Action\n* thriller;  heist\n'
            "I hope this helps!",
            ["Sci-Fi", "Dark", "Noir", "Action", "thriller", "heist"],
        ),
        ("sci-fi, Sci-Fi, SCI FI, sci fi, space", ["sci-fi", "space"]),  # duplicates by key
        (
            "Genres: Adventure, Animation\nTags: fun, pixar",
            ["Adventure", "Animation", "fun", "pixar"],
        ),
        ("action, a movie with lots of car chases and explosions, noir", ["action", "noir"]),
        ("Keyword 1, keyword2, 1995, 42, etc., http://x.y, N/A, and romance", ["romance"]),
        ("Sure! Here you go.\nthe user likes films with strong female leads", []),
        ("noir<|im_end|><|im_start|>assistant\nheist", ["noir", "heist"]),
        ("Noir: dark crime films", ["Noir"]),
    ],
)
def test_parse_messy_replies(reply, expected):
    assert parse_keywords(reply, 8) == expected


def test_parse_keeps_keywords_that_merely_contain_pronouns():
    reply = "World War I, My Little Pony, you and me, I, Robot, noir"
    kept = ["World War I", "My Little Pony", "you and me", "noir"]
    # "I, Robot" splits at its comma and a lone letter is no keyword: "Robot" stays ...
    assert parse_keywords(reply, 8) == [*kept[:3], "Robot", "noir"]
    # ... unless it is known as a title, which goes whole (a title is not a preference)
    assert parse_keywords(reply, 8, titles=["I, Robot"]) == kept
    titled = "I Am Legend, Let Me In, Me Before You, We Own the Night, Us"
    assert parse_keywords(titled, 8) == titled.split(", ")  # Title Case: names, not sentences


@pytest.mark.parametrize(
    "chatter",
    [
        "Sure, here are the keywords:",
        "Certainly! Here you go",
        "Here is my list",
        "I hope this helps",
        "Hope this helps",
        "I love these movies",
        "As an AI, I cannot",
        "i think noir",
        "we recommend noir",
        "you might enjoy noir",
        "Let me know",
        "I'm sorry",
        "Okay",
    ],
)
def test_parse_drops_chatter(chatter):
    assert parse_keywords(f"{chatter}\nnoir, heist", 8) == ["noir", "heist"]


def test_parse_caps_drops_titles_echoes_and_truncated_tails():
    assert parse_keywords("a1, b2, c3, d4, e5", 3) == ["a1", "b2", "c3"]
    assert parse_keywords("anything", 0) == []
    titles = ["Star Wars: Episode VI - Return of the Jedi", "Heat"]
    reply = "Star Wars: Episode VI (Action), heat, space opera, return of the, jedi"
    # whole titles, and phrases of 2+ words inside one, go; single words stay
    assert parse_keywords(reply, 8, titles=titles) == ["Action", "space opera", "jedi"]
    echoed = "1. Girl, Interrupted (Drama) 2. Heat (Crime)"
    assert parse_keywords(echoed, 8, titles=["Girl, Interrupted", "Heat"]) == ["Drama", "Crime"]
    # an echoed history line gives its values (a small model's way of naming genres)
    echo = "Heat (Action, Crime): heist\nnoir"
    expected = ["Action", "heist", "noir"]
    assert parse_keywords(echo, 8, exclude=["crime"], titles=["Heat"]) == expected
    cut = "romance, drama, histor"
    assert parse_keywords(cut, 8, truncated=True) == ["romance", "drama"]
    assert parse_keywords(cut, 8) == ["romance", "drama", "histor"]
    assert parse_keywords("romantic comedy", 8, truncated=True) == ["romantic comedy"]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        pl.DataFrame(
            {
                "item_id": ["a", "b", "c", "d", "e", "f"],
                "title": ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta"],
                "genres": [
                    ["Drama"], ["Drama", "Crime"], ["Drama", "Crime"],
                    ["Comedy"], ["Comedy"], ["Horror"],
                ],
                "tags": [["noir"], ["noir", "heist"], ["Noir"], [], ["slapstick"], []],
            }
        )
    )  # fmt: skip


@pytest.fixture
def ratings() -> Interactions:
    rows = [
        ("u", "a", 5.0, 1), ("u", "b", 4.0, 2), ("u", "c", 5.0, 3), ("u", "d", 2.0, 4),
        ("v", "d", 5.0, 1), ("v", "e", 4.0, 2), ("w", "f", 5.0, 1), ("w", "d", 4.0, 2),
    ]  # fmt: skip
    return Interactions(
        pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    )


class ScriptedLLM(LLM):
    """Replies from a script (one list per subject, consumed in order); records every chat."""

    def __init__(self, script: dict[str, list[str]], batch_size: int = 8) -> None:
        super().__init__(LLMConfig(model="scripted", batch_size=batch_size))
        self.script = {k: list(v) for k, v in script.items()}
        self.sent: list[list[ChatMessage]] = []
        self.calls = 0

    def _generate(self, conversations, *, max_new_tokens, temperature, seed) -> list[Reply]:
        self.calls += 1
        self.sent.extend(conversations)
        replies = []
        for messages in conversations:
            subject = next(k for k in self.script if k in messages[-1].content)
            replies.append(Reply(self.script[subject].pop(0), truncated=False))
        return replies


# ---------------------------------------------------------------------------- LLM extractor


def test_llm_extractor_parses_batches_and_keeps_every_step(catalog, ratings):
    histories = [build_history(catalog, ratings, u) for u in ("u", "v")]
    llm = ScriptedLLM(
        {"Alpha": ["1. noir\n2. crime\n3. heist\n4. rain"], "Delta": ["comedy, fun, light, warm"]}
    )
    results = LLMKeywordExtractor(llm, n=4).extract_users(histories, progress=False)
    assert llm.calls == 1  # both users in one batch
    assert [r.keywords for r in results] == [
        ["noir", "crime", "heist", "rain"],
        ["comedy", "fun", "light", "warm"],
    ]
    first = results[0]
    assert first.subject == "u" and first.kind == "user" and first.complete
    assert first.extractor == "llm:hf:scripted" and first.text == "noir, crime, heist, rain"
    assert first.source_text == histories[0].text
    (attempt,) = first.attempts
    assert attempt.raw == "1. noir\n2. crime\n3. heist\n4. rain"
    assert (
        attempt.messages[0].role == "system" and histories[0].text in attempt.messages[-1].content
    )
    assert "Give 4 keywords" in attempt.messages[-1].content
    assert first.to_dict()["attempts"][0]["parsed"] == first.keywords


def test_llm_extractor_retries_firmer_then_merges(catalog, ratings):
    history = build_history(catalog, ratings, "u")
    llm = ScriptedLLM(
        {"Alpha": ["I love these movies!", "noir, Alpha, heist", "crime, noir, rain"]}
    )
    result = LLMKeywordExtractor(llm, n=4, min_keywords=4, retries=2).extract_user(history)
    assert result.keywords == ["noir", "heist", "crime", "rain"]  # title "Alpha" dropped
    assert [a.parsed for a in result.attempts] == [[], ["noir", "heist"], ["crime", "noir", "rain"]]
    prompts = [a.messages[-1].content for a in result.attempts]
    assert "exactly 4 keywords" not in prompts[0]
    assert all("exactly 4 keywords" in p for p in prompts[1:])
    # greedy, then greedy with the firm prompt, then sampling from the second retry on
    assert [a.temperature for a in result.attempts] == [0.0, 0.0, 0.7]
    assert [a.seed for a in result.attempts] == [0, 1, 2]


def test_llm_extractor_never_returns_silently_empty(catalog, ratings):
    history = build_history(catalog, ratings, "u")
    junk = ["As an AI I cannot.", "Sure! Here you go.", "noir"]
    with pytest.raises(KeywordExtractionError, match=r"gave 1 usable keyword.*at least 2") as err:
        LLMKeywordExtractor(ScriptedLLM({"Alpha": list(junk)}), n=3).extract_user(history)
    assert [a.raw for a in err.value.result.attempts] == junk
    assert err.value.result.keywords == ["noir"] and not err.value.result.complete
    assert "StatisticalKeywordExtractor" in err.value.fix

    partial = LLMKeywordExtractor(ScriptedLLM({"Alpha": list(junk)}), n=3).extract_users(
        [history], progress=False, strict=False
    )
    assert partial[0].keywords == ["noir"] and not partial[0].complete

    fallback = StatisticalKeywordExtractor(catalog, ratings, n=3, mmr_lambda=1.0)
    rescued = LLMKeywordExtractor(
        ScriptedLLM({"Alpha": list(junk)}), n=3, fallback=fallback
    ).extract_user(history)
    assert rescued.keywords == fallback.extract_user(history).keywords
    assert rescued.extractor == "statistical" and len(rescued.attempts) == 3
    assert rescued.fallback is not None and "1 usable keyword" in rescued.fallback
    item = describe_item(catalog, "b")
    rescued_item = LLMKeywordExtractor(
        ScriptedLLM({"Beta": list(junk)}), item_n=5, fallback=fallback
    ).extract_item(item)
    assert rescued_item.keywords == fallback.extract_item(item).keywords
    assert rescued_item.kind == "item" and len(rescued_item.attempts) == 3


def test_llm_item_keywords_and_config_errors(catalog):
    item = describe_item(catalog, "b")
    echo = "Title: Beta\nGenres: Drama, Crime\nTags: noir, heist\nrainy streets, neon"
    result = LLMKeywordExtractor(ScriptedLLM({"Beta": [echo]}), item_n=6).extract_item(item)
    assert result.kind == "item" and result.subject == "b"
    # an echoed label line gives its values; the title and the labels themselves go
    assert result.keywords == ["Drama", "Crime", "noir", "heist", "rainy streets", "neon"]
    assert "Design a poster for this movie" in result.attempts[0].messages[-1].content
    with pytest.raises(ConfigError, match="min_keywords"):
        LLMKeywordExtractor(ScriptedLLM({}), n=2, min_keywords=3)
    with pytest.raises(ConfigError, match="item_n"):
        LLMKeywordExtractor(ScriptedLLM({}), item_n=12)


def test_prompts_exist_for_every_domain_and_cite_the_request():
    for prompts in (PREFERENCE_PROMPTS, ITEM_PROMPTS):
        assert set(prompts) == {"movies", "products", "conversation"}
        for template in prompts.values():
            chat = template.messages("BODY", 7)
            assert [m.role for m in chat] == ["system", "user"]
            assert "BODY" in chat[1].content and "7" in chat[1].content
            assert "exactly 7 keywords" in template.messages("BODY", 7, firm=True)[1].content


# ---------------------------------------------------------------------------- statistical


def test_statistical_scores_are_lift_weighted_shares(catalog, ratings):
    extractor = StatisticalKeywordExtractor(catalog, ratings, n=4, mmr_lambda=1.0, min_support=1)
    history = build_history(catalog, ratings, "u")  # liked a, b, c
    result = extractor.extract_user(history)
    # population: 8 interactions; item counts a1 b1 c1 d3 e1 f1
    # Drama on a,b,c: 3/8; Crime on b,c: 2/8; noir on a,b,c: 3/8; heist on b: 1/8
    share = {"Drama": 1.0, "Crime": 2 / 3, "noir": 1.0, "heist": 1 / 3}
    population = {"Drama": 3 / 8, "Crime": 2 / 8, "noir": 3 / 8, "heist": 1 / 8}
    expected = {k: s * math.log(s / population[k]) for k, s in share.items()}
    ranked = sorted(expected, key=lambda k: (-expected[k], k))
    assert result.keywords == ranked == ["Drama", "noir", "Crime", "heist"]
    assert result.scores == pytest.approx([expected[k] for k in ranked])
    assert extractor.population_share("NOIR") == pytest.approx(3 / 8)  # "Noir" on c merged
    # min_support 2: heist (one item) stays out while 3 recurring values exist for n = 3
    recurring = StatisticalKeywordExtractor(catalog, ratings, n=3, mmr_lambda=1.0)
    assert "heist" not in recurring.extract_user(history).keywords


def test_statistical_preferences_leave_out_values_no_more_common_than_for_everyone(catalog):
    """x liked a (Drama, noir) and d (Comedy); Comedy is half of everyone's interactions
    too (d four times, e once of ten), so it scores 0 and is no preference of x's."""
    rows = [
        ("u", "a", 5.0, 1), ("u", "b", 4.0, 2), ("u", "c", 5.0, 3), ("u", "d", 4.0, 4),
        ("v", "d", 5.0, 1), ("v", "e", 4.0, 2), ("w", "f", 5.0, 1), ("w", "d", 4.0, 2),
        ("x", "a", 5.0, 1), ("x", "d", 5.0, 2),
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    ratings = Interactions(frame)
    extractor = StatisticalKeywordExtractor(catalog, ratings, n=4, mmr_lambda=1.0, min_support=1)
    result = extractor.extract_user(build_history(catalog, ratings, "x"))
    assert extractor.population_share("Comedy") == pytest.approx(0.5)
    assert result.keywords == ["Drama", "noir"]  # not Comedy (0), although n = 4
    assert all(s > 0 for s in result.scores) and "lift" in result.score_label


def test_statistical_mmr_skips_near_duplicates(catalog, ratings):
    vectors = {
        "Drama": [1.0, 0.0, 0.0],
        "noir": [0.0, 1.0, 0.0],
        "Crime": [0.0, 0.99, 0.14],  # almost "noir"
        "heist": [0.0, 0.0, 1.0],
    }

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.array([vectors[t] for t in texts])

    extractor = StatisticalKeywordExtractor(
        catalog, ratings, n=3, mmr_lambda=0.5, min_support=1, embedder=embed
    )
    result = extractor.extract_user(build_history(catalog, ratings, "u"))
    assert result.keywords == ["Drama", "noir", "heist"]  # Crime ranks 3rd but repeats noir


def test_mmr_by_hand():
    scores = np.array([3.0, 2.0, 1.0])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert mmr(scores, None, 2, 0.5) == [0, 1]
    # step 2: candidate 1 gains 0.5*0.5 - 0.5*1 = -0.25, candidate 2 gains 0 - 0 = 0
    assert mmr(scores, vectors, 2, 0.5) == [0, 2]
    assert mmr(scores, vectors, 2, 0.9) == [0, 1]  # 0.9*0.5 - 0.1 = 0.35 > 0
    assert mmr(np.array([]), None, 3, 0.5) == []


def test_statistical_items_popular_and_errors(catalog, ratings):
    extractor = StatisticalKeywordExtractor(catalog, None, item_n=3, mmr_lambda=1.0)
    # without interactions p(v) is the share of catalog items: Drama 3/6, Crime 2/6, noir 3/6,
    # heist 1/6 -> rarest first
    result = extractor.extract_item(describe_item(catalog, "b"))
    assert result.keywords == ["heist", "Crime", "Drama"]
    assert result.scores == pytest.approx([math.log(6), math.log(3), math.log(2)])
    histories = [build_history(catalog, ratings, u) for u in ("u", "v", "w")]
    # Comedy (d twice, e), Drama (a, b, c) and noir (a, b, c) tie at 3: by name
    assert popular_keywords(extractor, histories, 2) == ["Comedy", "Drama"]
    with pytest.raises(ConfigError, match="no usable categorical item fields"):
        StatisticalKeywordExtractor(catalog, fields=("brand",))
    bare = describe_item(catalog, "d")
    bare_user = build_history(catalog, ratings, "w", HistoryConfig(min_rating=None))
    assert extractor.extract_user(bare_user).keywords  # Horror, Comedy
    empty = StatisticalKeywordExtractor(catalog, fields=("tags",))
    with pytest.raises(KeywordExtractionError, match="item 'd' has no value in tags"):
        empty.extract_item(bare)
    with pytest.raises(DataError, match="none of the 1 history items of user 'w' has a value"):
        empty.extract_user(build_history(catalog, ratings, "w", HistoryConfig(max_items=1)))
