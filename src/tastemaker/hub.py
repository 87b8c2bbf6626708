"""Models named by a Hugging Face id: a clear error in seconds, not after a minute of retries.

``from_pretrained`` retries an unreachable hub five times with back-off (about 50 s,
each retry logged) before it fails. :func:`check_hub_model` asks first: a local path
or an id in the local cache loads as usual; otherwise one request with a short
timeout tells whether the hub answers and knows the id, and a miss raises
:class:`ModelUnavailable` at once, an ``OSError`` as the loaders' own misses are,
so each loader turns it into its one-line error with its own fix.
"""

from __future__ import annotations

import os
from pathlib import Path

# Files one of which every checkpoint tastemaker loads has at its root: transformers
# models, sentence-transformers models, diffusers pipelines.
ROOT_FILES = ("config.json", "modules.json", "model_index.json")
PROBE_TIMEOUT_S = 5.0


class ModelUnavailable(OSError):
    """A hub id that is neither cached nor loadable from the hub right now."""


def is_cached(repo_id: str, cache_dir: Path | None = None) -> bool:
    """Whether one of :data:`ROOT_FILES` of ``repo_id`` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(repo_id, name, cache_dir=cache_dir), str)
        for name in ROOT_FILES
    )


def check_hub_model(
    source: str, *, endpoint: str | None = None, cache_dir: Path | None = None
) -> None:
    """Return when ``source`` can load (a local path, a cached or reachable hub id);
    raise :class:`ModelUnavailable` at once when it is a hub id that cannot.

    A malformed id is left to the loader, whose own message names the problem.
    """
    import httpx
    from huggingface_hub import constants

    if Path(source).expanduser().exists():
        return
    try:
        if is_cached(source, cache_dir):
            return
    except ValueError:  # not a valid repo id: the loader says so
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or constants.HF_HUB_OFFLINE:
        raise ModelUnavailable(f"'{source}' is not cached and HF_HUB_OFFLINE is set")
    url = f"{(endpoint or constants.ENDPOINT).rstrip('/')}/api/models/{source}"
    try:
        answer = httpx.head(url, timeout=PROBE_TIMEOUT_S, follow_redirects=True)
    except httpx.TransportError as exc:
        raise ModelUnavailable(
            f"'{source}' is not cached and the hub cannot be reached ({type(exc).__name__}: {exc})"
        ) from exc
    if answer.status_code in (401, 403, 404):
        raise ModelUnavailable(
            f"the hub has no model '{source}' (HTTP {answer.status_code}; check the spelling; "
            "a private or gated one needs `hf auth login`)"
        )
