"""The memoising LLM: a repeated prompt never reaches the model twice, different settings
never share an entry, and label scores read through it (tokenizer and weights unwrapped)."""

from __future__ import annotations

from typing import Any

import pytest

from tastemaker.llm import create_llm
from tastemaker.llm.base import LLM, ChatMessage, LLMConfig, Reply
from tastemaker.llm.likelihood import option_log_likelihoods
from tastemaker.llm.memo import MemoLLM, unwrap
from tastemaker.text.tokens import token_counter
from tests.test_llm import tiny_lm  # noqa: F401 (the saved tiny Llama fixture)

A = [ChatMessage("user", "tag for Alien?")]
B = [ChatMessage("system", "be brief"), ChatMessage("user", "tag for Alien?")]


class Counting(LLM):
    """Replies that name the prompt, the settings and how many conversations came before."""

    def __init__(self) -> None:
        super().__init__(LLMConfig())
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def _generate(self, conversations, **options):
        made = []
        for conversation in conversations:
            self.seen.append((conversation[-1].content, options))
            made.append(Reply(f"{len(self.seen)}:{sorted(options.items())}"))
        return made


def test_a_repeated_prompt_is_answered_from_memory():
    inner = Counting()
    llm = MemoLLM(inner)
    first = llm.chat_batch([A, B, A])
    assert len(inner.seen) == 2  # A once, B once, even inside one batch
    assert first[0] == first[2] != first[1]
    assert llm.chat(A) == first[0] and llm.chat(B) == first[1]
    assert len(inner.seen) == 2 and llm.calls == 2
    assert llm.name == inner.name and llm.config == inner.config


def test_different_settings_do_not_share_an_entry():
    inner = Counting()
    llm = MemoLLM(inner)
    replies = {
        llm.chat(A),
        llm.chat(A, max_new_tokens=5),
        llm.chat(A, temperature=0.7),
        llm.chat(A, temperature=0.7, seed=3),
    }
    assert len(replies) == 4 and len(inner.seen) == 4
    assert llm.chat(A, temperature=0.7, seed=3) in replies and len(inner.seen) == 4


def test_scores_read_through_the_memo_and_equal_the_plain_models(tiny_lm):  # noqa: F811
    plain = create_llm(model=str(tiny_lm))
    memo = MemoLLM(plain)
    assert unwrap(MemoLLM(memo)) is plain
    options = ["funny", "dark comedy"]
    expected = option_log_likelihoods(plain, [A, B], options)
    assert option_log_likelihoods(memo, [A, B], options) == expected
    assert memo.calls == 2
    assert option_log_likelihoods(memo, [B, A], options) == expected[::-1]
    assert memo.calls == 2  # both conversations remembered
    assert option_log_likelihoods(memo, [A], ["funny"])[0] == pytest.approx([expected[0][0]])
    assert memo.calls == 3  # other options: a new entry
    counter = token_counter(memo)
    assert counter.exact and counter.count(A) == token_counter(plain).count(A)
