"""Health, readiness, the served models, and reloading them."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from tastemaker.models.fold_in import FoldsIn
from tastemaker.serve.context import served
from tastemaker.serve.schemas import ModelOut, Reloaded
from tastemaker.serve.security import require_write_key

router = APIRouter(tags=["service"])


@router.get("/health", summary="The process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Models loaded: 200, else 503")
def ready(request: Request) -> Any:
    state = getattr(request.app.state, "state", None)
    if state is None or not state.ready:
        error = state.load_error if state is not None else None
        return JSONResponse(
            {
                "ready": False,
                "error": error or "the models are still loading",
                "fix": "see the server log" if error else "retry in a moment",
            },
            status_code=503,
        )
    return {"ready": True, "models": list(state.current().models)}


@router.get("/models", response_model=list[ModelOut], summary="The served models")
def models(request: Request) -> list[dict[str, Any]]:
    current = served(request).current()
    return [
        {
            "name": name,
            "model": model.name,
            "fold_in": isinstance(model, FoldsIn),
            "default": name == current.default,
        }
        for name, model in current.models.items()
    ]


@router.post(
    "/admin/reload",
    response_model=Reloaded,
    dependencies=[Depends(require_write_key)],
    summary="Re-read the models and swap them in atomically",
)
def reload(request: Request) -> dict[str, Any]:
    started = time.perf_counter()
    current = served(request).reload()
    return {
        "models": list(current.models),
        "default": current.default,
        "seconds": round(time.perf_counter() - started, 3),
    }
