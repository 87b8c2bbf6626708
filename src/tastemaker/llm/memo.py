"""An LLM that remembers: the same prompt with the same settings is answered from memory.

Benchmarks ask one model the same thing many times (free and grounded explanations
share every prompt; extractors that differ only in how they filter replies share
their calls). Greedy decoding is deterministic and a sampled reply is fixed by its
seed, so a remembered reply is exactly what the model would have said again. Replies
are keyed by the conversation and every generation setting (``max_new_tokens``,
``temperature``, ``seed``), so different settings never share an entry. Option
scores (:mod:`tastemaker.llm.likelihood`) are remembered per (conversation, options)
through :meth:`MemoLLM.remember`, and the wrapped model is reached with :func:`unwrap`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from tastemaker.llm.base import LLM, ChatMessage, Reply


class MemoLLM(LLM):
    """Wraps any :class:`LLM`; ``calls`` counts the conversations the wrapped model answered."""

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.calls = 0
        self._replies: dict[Hashable, Reply] = {}
        self._other: dict[Hashable, Any] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def has_chat_template(self) -> bool:
        return self.inner.has_chat_template

    def _generate(
        self,
        conversations: list[list[ChatMessage]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Reply]:
        settings = (max_new_tokens, temperature, seed)
        keys = [(tuple(c), settings) for c in conversations]
        pending = {k: c for k, c in zip(keys, conversations, strict=True) if k not in self._replies}
        if pending:
            self.calls += len(pending)
            made = self.inner.replies(
                list(pending.values()),
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed,
            )
            self._replies.update(zip(pending, made, strict=True))
        return [self._replies[k] for k in keys]

    def remember(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the remembered value after."""
        if key not in self._other:
            self.calls += 1
            self._other[key] = compute()
        return self._other[key]


def unwrap(llm: LLM) -> LLM:
    """The model doing the work behind any memo layers (to reach its tokenizer or weights)."""
    while isinstance(llm, MemoLLM):
        llm = llm.inner
    return llm
