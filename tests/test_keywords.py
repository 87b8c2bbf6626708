"""Keyword parsing of messy LLM replies, the LLM extractor's retries, the statistical extractor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from tastemaker import Catalog, Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.history import HistoryConfig, ItemText, build_history, describe_item
from tastemaker.generation.keywords import (
    KeywordExtractionError,
    LLMKeywordExtractor,
    StatisticalKeywordExtractor,
    mmr,
    parse_keywords,
    popular_keywords,
)
from tastemaker.generation.keywords.echo import (
    SourceVocabulary,
    drop_near_duplicates,
    echo_kind,
    echo_kinds,
)
from tastemaker.generation.keywords.parsing import cut_loop
from tastemaker.generation.prompts import ITEM_PROMPTS, PREFERENCE_PROMPTS
from tastemaker.generation.scenario import load_scenario
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

    def __init__(
        self,
        script: dict[str, list[str]],
        batch_size: int = 8,
        max_new_tokens: int = 64,
        truncated: bool = False,
    ) -> None:
        config = LLMConfig(model="scripted", batch_size=batch_size, max_new_tokens=max_new_tokens)
        super().__init__(config)
        self.script = {k: list(v) for k, v in script.items()}
        self.sent: list[list[ChatMessage]] = []
        self.calls = 0
        self.token_limits: list[int] = []
        self.truncated = truncated

    def _generate(self, conversations, *, max_new_tokens, temperature, seed) -> list[Reply]:
        self.calls += 1
        self.token_limits.append(max_new_tokens)
        self.sent.extend(conversations)
        replies = []
        for messages in conversations:
            subject = next(k for k in self.script if k in messages[-1].content)
            replies.append(Reply(self.script[subject].pop(0), truncated=self.truncated))
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
    echo = "Title: Beta\nGenres: Drama, Crime\nTags: noir, heist\nrainy streets, neon, wet asphalt"
    extractor = LLMKeywordExtractor(ScriptedLLM({"Beta": [echo]}), item_n=5, min_keywords=3)
    result = extractor.extract_item(item)
    assert result.kind == "item" and result.subject == "b"
    # the echoed prompt lines go, values and all: an item's keywords describe a picture
    assert result.keywords == ["rainy streets", "neon", "wet asphalt"]
    assert result.attempts[0].dropped == {
        "Drama": "value", "Crime": "value", "noir": "value", "heist": "value"
    }  # fmt: skip
    keep = LLMKeywordExtractor(ScriptedLLM({"Beta": [echo]}), item_n=6, drop_listed=())
    assert keep.extract_item(item).keywords[:2] == ["Drama", "Crime"]  # when asked to keep them
    assert "Design a poster for this movie" in result.attempts[0].messages[-1].content
    with pytest.raises(ConfigError, match="min_keywords"):
        LLMKeywordExtractor(ScriptedLLM({}), n=2, min_keywords=3)
    with pytest.raises(ConfigError, match="item_n"):
        LLMKeywordExtractor(ScriptedLLM({}), item_n=12)


# SmolLM2-135M-Instruct's greedy replies (48 new tokens) to the poster prompts of
# ml-latest-small's Star Wars (260) and The Shawshank Redemption (318), as issue 14 quotes them.
STAR_WARS = (
    "Title: Star Wars: Episode IV - A New Hope",
    "Title: Star Wars: Episode IV - A New Hope\nGenres: Action, Adventure, Sci-Fi\nTags: action, "
    "classic, classic sci-fi, darth vader, engrossing adventure, epic, great soundtrack, "
    "luke skywalker, nerd, oldie but goodie",
    "Title: Star Wars: Episode IV - A New Hope\nGenres: Action, Adventure, Sci-Fi\nTags: action, "
    "classic, darth vader, great soundtrack, luke skywalker, nerd, oldie",
)
SHAWSHANK = (
    "Title: The Shawshank Redemption",
    "Title: The Shawshank Redemption\nGenres: Crime, Drama\nTags: morgan freeman, prison, "
    "stephen king, wrongful imprisonment",
    "Title: The Shawsharnank Redemption\nGenres: Crime, Drama\nTags: Morgan King, wrongful "
    "imprisonment\n\nThe Shawsharnank Redemption\nGenres: Crime, Drama\nTags: Morgan King",
)


def _item(title_line: str, text: str) -> ItemText:
    title = title_line.removeprefix("Title: ")
    return ItemText("x", "movies", title, text, {})


@pytest.mark.parametrize("quoted", [STAR_WARS, SHAWSHANK], ids=["star-wars", "shawshank"])
def test_item_replies_that_restate_the_prompt_leave_nothing(quoted):
    title_line, text, reply = quoted
    item = _item(title_line, text)
    vocabulary = SourceVocabulary.from_text(text, [item.title])
    candidates = parse_keywords(reply, 100, titles=[item.title], truncated=True)
    assert len(candidates) >= 4  # the parser alone keeps these; every one is a copy
    assert None not in echo_kinds(candidates, vocabulary)
    llm = ScriptedLLM({item.title: [reply] * 3}, truncated=True)  # cut at the token limit
    with pytest.raises(KeywordExtractionError, match="gave 0 usable keyword"):
        LLMKeywordExtractor(llm, item_n=8, retries=2).extract_item(item)


def test_shawshank_misspelt_title_and_made_up_name_are_dropped():
    title_line, text, reply = SHAWSHANK
    item = _item(title_line, text)
    vocabulary = SourceVocabulary.from_text(text, [item.title])
    assert echo_kind("The Shawsharnank Redemption", vocabulary) == "title"  # misspelt title
    assert echo_kind("shawshank redemption", vocabulary) == "title"  # a run of its words
    assert echo_kind("Matrix", SourceVocabulary.from_text("", ["The Matrix"])) == "title"
    assert echo_kind("Morgan King", vocabulary) == "name"  # morgan freeman + stephen king
    assert echo_kind("Wrongful Imprisonmnt", vocabulary) == "value"  # misspelt tag
    assert echo_kind("prison bars", vocabulary) is None
    assert echo_kind("grey concrete walls", vocabulary) is None
    reply = f"{reply}\n"  # the same reply, then a usable one on the retry
    llm = ScriptedLLM({item.title: [reply, "prison bars, Morgan King, rain at night, hope"]})
    result = LLMKeywordExtractor(llm, item_n=8, min_keywords=3).extract_item(item)
    assert result.keywords == ["prison bars", "rain at night", "hope"]
    assert result.attempts[1].dropped == {"Morgan King": "name"}
    # names the model wrote as proper nouns in an otherwise lower-case reply are names too
    fresh = ["lightsaber duel, Luke Cage, desert planet, twin suns"]
    star_title, star_text, _ = STAR_WARS
    star = _item(star_title, star_text)
    kept = LLMKeywordExtractor(ScriptedLLM({star.title: fresh}), item_n=8, min_keywords=3)
    assert kept.extract_item(star).keywords == ["lightsaber duel", "desert planet", "twin suns"]
    named = LLMKeywordExtractor(
        ScriptedLLM({star.title: fresh}), item_n=8, min_keywords=3, drop_names=False
    )
    assert "Luke Cage" in named.extract_item(star).keywords


def test_user_keywords_keep_listed_genres_but_not_titles(catalog, ratings):
    history = build_history(catalog, ratings, "u")  # Gamma, Beta, Alpha (Drama, Crime, noir)
    reply = "The Gammma, Drama, crime, Crime, noir, Beta Alpha, rainy streets, Dramas"
    result = LLMKeywordExtractor(ScriptedLLM({"Alpha": [reply]}), n=6).extract_user(history)
    # "The Gammma" is the title "Gamma" misspelt; "Crime" a case duplicate; "Dramas" a near
    # one; "Beta Alpha" recombines title words as a name would
    assert result.keywords == ["Drama", "crime", "noir", "rainy streets"]
    assert result.attempts[0].dropped == {"The Gammma": "title", "Beta Alpha": "name"}
    strict = LLMKeywordExtractor(ScriptedLLM({"Alpha": [reply]}), n=6, min_keywords=1,
                                 drop_listed=("user",))  # fmt: skip
    assert strict.extract_user(history).keywords == ["rainy streets"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Horror, Horror, Horror, Horror, Horror", ["Horror"]),
        ("Thriller, Action-adventure, Action-adventure, Action-adventure, Action", None),
        ("1. Crime, Drama, Horror,\n2. noir\n3. Crime, Drama, Horror,\n4. late tail", None),
    ],
)
def test_loops_stop(reply, expected):
    parsed = parse_keywords(reply, 8)
    if expected is not None:
        assert parsed == expected
    assert len(parsed) == len({p.casefold() for p in parsed})
    assert "late tail" not in parsed  # a repeated line ends the reply
    assert cut_loop("a, b\n\n1. c\n- c\nd") == "a, b\n\n1. c"
    assert drop_near_duplicates(["Thriller", "thrillers", "Sci-Fi", "sci fi", "war", "car"]) == [
        "Thriller", "Sci-Fi", "war", "car",
    ]  # fmt: skip


def test_max_new_tokens_comes_from_the_llm_unless_the_extractor_sets_it(catalog, ratings):
    history = build_history(catalog, ratings, "u")
    llm = ScriptedLLM({"Alpha": ["noir, heist, rain, crime"]}, max_new_tokens=96)
    LLMKeywordExtractor(llm, n=4).extract_user(history)
    assert llm.token_limits == [96]  # [llm] max_new_tokens of a scenario (was always 48)
    own = ScriptedLLM({"Alpha": ["noir, heist, rain, crime"]}, max_new_tokens=96)
    LLMKeywordExtractor(own, n=4, max_new_tokens=20).extract_user(history)
    assert own.token_limits == [20]
    movies = load_scenario("movies").pipeline
    assert movies.keywords.llm.max_new_tokens is None and movies.llm.max_new_tokens == 64


def test_statistical_item_keywords_have_no_case_duplicates():
    catalog = Catalog(
        pl.DataFrame(
            {
                "item_id": ["m", "n"],
                "title": ["Matrix", "Other"],
                "genres": [["Action", "Sci-Fi"], ["Drama"]],
                "tags": [["sci-fi", "SCI FI", "martial arts"], ["drama"]],
            }
        )
    )
    extractor = StatisticalKeywordExtractor(catalog, None, item_n=8, mmr_lambda=1.0)
    keywords = extractor.extract_item(describe_item(catalog, "m")).keywords
    assert sorted(keywords) == ["Action", "Sci-Fi", "martial arts"]


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
