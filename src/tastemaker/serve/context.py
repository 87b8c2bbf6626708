"""What every router needs from a request: the service's state and its limits."""

from __future__ import annotations

from fastapi import Request

from tastemaker.serve.problems import ApiError
from tastemaker.serve.settings import Limits
from tastemaker.serve.state import ServeState


def served(request: Request) -> ServeState:
    """The running service's state; 503 while it is still starting."""
    state = getattr(request.app.state, "state", None)
    if state is None:
        raise ApiError(503, "the service is still starting", "retry in a moment (GET /ready)")
    return state


def limits(request: Request) -> Limits:
    return request.app.state.settings.limits


def check_k(request: Request, k: int) -> int:
    """``k`` when within the server's ``max_k``; 422 otherwise."""
    most = limits(request).max_k
    if k > most:
        raise ApiError(
            422, f"k={k} is more than this server answers ({most})", f"ask for k <= {most}"
        )
    return k


def check_id(request: Request, value: str, what: str) -> str:
    """An ID from a path or query within the length limit; 422 otherwise."""
    most = limits(request).max_id_length
    if len(value) > most:
        raise ApiError(422, f"the {what} is longer than {most} characters", f"use a real {what}")
    return value


__all__ = ["check_id", "check_k", "limits", "served"]
