"""Who may write, how much a request may send, and how often a key may generate.

- :func:`require_write_key`: when the server has an API key, write endpoints need
  ``Authorization: Bearer <key>``, compared in constant time (``hmac.compare_digest``)
  so the answer's timing does not reveal how much of a guess was right. Without a
  key every endpoint is open, which is why the server binds 127.0.0.1 by default.
- :class:`BodyLimit`: an ASGI middleware refusing bodies over ``max_body_bytes``
  (413) by their declared length and, for chunked bodies, while they stream in, so
  an oversized body is never read into memory.
- :func:`generation_rate_limit`: a token bucket per key (the client's address when the
  server has no key): ``generation_burst`` tokens, refilled at ``generation_rate`` per
  minute; an empty bucket answers 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from typing import Any

from fastapi import Request

from tastemaker.serve.problems import ApiError, body


def require_write_key(request: Request) -> str | None:
    """The caller's key when the server has one and it matches; 401 otherwise."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return None
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise ApiError(
            401,
            "this endpoint writes and needs the server's API key",
            "send the header 'Authorization: Bearer <key>' with the key the server was "
            "started with (TASTEMAKER_API_KEY or --api-key-file)",
            {"WWW-Authenticate": "Bearer"},
        )
    return expected


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens, ``per_minute`` refilled each minute."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 if one was there, else seconds until one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def generation_rate_limit(request: Request) -> None:
    """Refuse (429) a generation when the caller's bucket is empty; checks the key first."""
    key = require_write_key(request)
    who = key or (request.client.host if request.client else "unknown")
    wait = request.app.state.rate_limits.take(who)
    if wait > 0:
        raise ApiError(
            429,
            "too many generation requests from this key",
            f"wait {math.ceil(wait)} s (Retry-After) before submitting another",
            {"Retry-After": str(math.ceil(wait))},
        )


class BodyLimit:
    """ASGI middleware: 413 for a request body larger than ``max_bytes``.

    The body is read here (at most ``max_bytes`` + one chunk) and replayed to the app,
    so the app never starts on a body that will turn out too large."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        payload = json.dumps(
            body(
                f"the request body is larger than {self.max_bytes} bytes",
                "send less per request (e.g. split the events into several requests)",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


__all__ = ["BodyLimit", "TokenBuckets", "generation_rate_limit", "require_write_key"]
