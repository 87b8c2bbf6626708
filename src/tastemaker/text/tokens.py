"""Counting a prompt's tokens with the model's own tokenizer, and the context it allows.

The hf backend's tokenizer counts exactly what the model will read (the chat
template included); a server behind the openai backend exposes no tokenizer, so
there the count is an estimate (4 characters a token, rounded up), and says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tastemaker.errors import ConfigError
from tastemaker.llm.base import LLM, ChatMessage

CHARS_PER_TOKEN = 4  # the estimate without a tokenizer (OpenAI's rule of thumb for English)
DEFAULT_CONTEXT = 4096  # assumed when the model does not say


@dataclass(frozen=True)
class TokenCounter:
    """Counts a conversation's prompt tokens; ``exact`` says whether a real tokenizer did."""

    count: Callable[[Sequence[ChatMessage]], int]
    context: int
    exact: bool
    name: str


def token_counter(llm: LLM) -> TokenCounter:
    """The counter for ``llm``: its tokenizer and context window (hf), else an estimate."""
    from tastemaker.llm.hf import HFChat, render
    from tastemaker.llm.memo import unwrap

    local = unwrap(llm)
    if isinstance(local, HFChat):
        tokenizer, model = local.load()

        def count(messages: Sequence[ChatMessage]) -> int:
            text = render(tokenizer, list(messages))
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        context = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT
        return TokenCounter(count, int(context), True, f"tokenizer of {llm.name}")

    def estimate(messages: Sequence[ChatMessage]) -> int:
        return sum(
            math.ceil((len(m.role) + len(m.content) + 4) / CHARS_PER_TOKEN) for m in messages
        )

    return TokenCounter(estimate, DEFAULT_CONTEXT, False, f"{CHARS_PER_TOKEN} characters a token")


def prompt_budget(counter: TokenCounter, max_new_tokens: int, max_prompt_tokens: int | None) -> int:
    """Tokens a prompt may take: the context less the reply, capped by ``max_prompt_tokens``."""
    budget = counter.context - max_new_tokens
    if max_prompt_tokens is not None:
        if max_prompt_tokens < 1:
            raise ConfigError(
                f"max_prompt_tokens must be positive, got {max_prompt_tokens}",
                "pass a positive number of tokens",
            )
        budget = min(budget, max_prompt_tokens)
    if budget < 1:
        raise ConfigError(
            f"the model's context ({counter.context} tokens) leaves no room for a prompt "
            f"after {max_new_tokens} new tokens",
            "lower max_new_tokens",
        )
    return budget
