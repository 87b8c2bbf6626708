"""OpenAI-compatible chat backend: Ollama, vLLM, llama.cpp's server, or a hosted API.

Every such server answers ``POST {base_url}/chat/completions`` with
``{"choices": [{"message": {"content": ...}}]}``; tastemaker sends the model name,
the messages, ``max_tokens``, ``temperature`` and ``seed``. What can go wrong
becomes one clear error: no server listening, a timeout, an HTTP error (status
and the start of the body), or a reply that is not the expected JSON.
"""

from __future__ import annotations

import json
from typing import Any

from tastemaker.errors import ConfigError, DataError
from tastemaker.llm.base import LLM, ChatMessage, Reply

BODY_EXCERPT = 300  # characters of an error response shown in the message


class OpenAIChat(LLM):
    """Chat completions over HTTP, one request per conversation."""

    @property
    def url(self) -> str:
        if not self.config.base_url:  # LLMConfig refuses this, unless built by model_construct
            raise ConfigError(
                "the openai backend has no base_url", "set base_url, e.g. http://127.0.0.1:11434/v1"
            )
        return f"{self.config.base_url.rstrip('/')}/chat/completions"

    def _generate(
        self,
        conversations: list[list[ChatMessage]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Reply]:
        import httpx

        headers = {"Content-Type": "application/json"}
        if key := self.config.key():
            headers["Authorization"] = f"Bearer {key}"
        with httpx.Client(timeout=self.config.timeout_s, headers=headers) as client:
            return [
                self._complete(client, messages, max_new_tokens, temperature, seed)
                for messages in conversations
            ]

    def _complete(
        self,
        client: Any,
        messages: list[ChatMessage],
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> Reply:
        import httpx

        payload = {
            "model": self.config.model,
            "messages": [m.as_dict() for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        try:
            response = client.post(self.url, json=payload)
        except httpx.TimeoutException as exc:
            raise ConfigError(
                f"no answer from {self.url} within {self.config.timeout_s:g} s",
                "raise timeout_s, or check that the server is not overloaded",
            ) from exc
        except httpx.HTTPError as exc:  # connection refused, DNS failure, protocol error
            raise ConfigError(
                f"cannot reach the LLM server at {self.url} ({type(exc).__name__}: {exc})",
                "start an OpenAI-compatible server (e.g. `ollama serve`, `vllm serve MODEL`, "
                "`llama-server -m FILE.gguf`) or fix base_url (it usually ends in /v1)",
            ) from exc
        if response.status_code >= 400:
            raise ConfigError(
                f"the LLM server at {self.url} answered HTTP {response.status_code}: "
                f"{_excerpt(response.text)}",
                _http_fix(response.status_code, self.config.model),
            )
        return _content(response.text, self.url)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return "(empty)"
    return text[:BODY_EXCERPT] + ("…" if len(text) > BODY_EXCERPT else "")


def _http_fix(status: int, model: str) -> str:
    if status in (401, 403):
        return "pass a valid api_key (or set OPENAI_API_KEY)"
    if status == 404:
        return f"check base_url (usually ending in /v1) and that the server serves model '{model}'"
    if status == 429:
        return "wait and retry, or lower the request rate"
    return "check the server's log and that the request fits the model (max_new_tokens)"


def _content(body: str, url: str) -> Reply:
    """The reply of a chat-completions response body (``finish_reason`` "length": truncated)."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
        truncated = choice.get("finish_reason") == "length"
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise DataError(
            f"the LLM server at {url} sent a reply that is not a chat completion "
            f"({type(exc).__name__}: {_excerpt(body)})",
            "point base_url at an OpenAI-compatible /v1 endpoint",
        ) from exc
    if not isinstance(content, str):  # e.g. null content from a tool-call reply
        raise DataError(
            f"the LLM server at {url} sent no text content ({_excerpt(body)})",
            "use a chat model that answers with text",
        )
    return Reply(content.strip(), truncated=truncated)
