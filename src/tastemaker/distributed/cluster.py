"""Joining a Ray cluster: the one place tastemaker starts Ray or connects to it.

Ray is an optional dependency (``pip install 'tastemaker[ray]'``), imported only
inside these functions. A cluster is started outside tastemaker (``ray start
--head`` on one machine, ``ray start --address HEAD:PORT`` on the others); a
program joins it with :func:`connect`, and without one the distributed functions
start Ray on this machine alone.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from types import ModuleType
from typing import TypeVar

from tastemaker.errors import ConfigError

log = logging.getLogger("tastemaker.distributed")

RAY_EXTRA = "pip install 'tastemaker[ray]'"
T = TypeVar("T")


def ray_module() -> ModuleType:
    """``ray``, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"Ray is not installed ({exc})", f"install it: {RAY_EXTRA}") from exc
    return ray


def connect(address: str | None = None) -> ModuleType:
    """``ray``, initialised: joined to the cluster at ``address`` (``HOST:PORT`` of a head
    started with ``ray start --head``, or ``auto`` for the one this machine belongs to);
    with None, the Ray already initialised in this process or a new one on this machine."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    try:
        # Workers' own output (progress bars of each encoder or pipeline) stays in Ray's
        # logs; their errors still reach the caller as exceptions.
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at {address or 'this machine'} ({exc})",
            "start one with `ray start --head` and pass the address it prints (HOST:PORT)",
        ) from exc
    log.info("joined Ray: %s", ray.cluster_resources())
    return ray


def check_workers(workers: int) -> int:
    """``workers`` when it is a usable count of Ray workers."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} is not a count of workers", "use 1 or more")
    return workers


def shards(items: Sequence[T], parts: int) -> list[Sequence[T]]:
    """``items`` cut into at most ``parts`` contiguous, non-empty slices of near-equal size
    (order kept, so results concatenated in shard order are in the input's order)."""
    n = min(parts, len(items))
    bounds = [round(k * len(items) / n) for k in range(n + 1)] if n else [0]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]
