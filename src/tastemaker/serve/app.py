"""The FastAPI app of ``tastemaker serve``: routers, error handling, limits, start and stop.

Start-up (the lifespan) loads the data and its lookups (search index, similarity,
feedback database) before the first request, then loads the models (and the
explanations' language model, if configured) in threads, so ``/health`` answers at
once and ``/ready`` says 503 until the models are in.
Shutdown (uvicorn's SIGTERM or Ctrl-C) lets the generation jobs finish or persist
(``app.state.jobs.shutdown()``) and closes the feedback database.

Every error is JSON ``{"error", "fix"}`` with a 4xx for anything the request got
wrong (a validation error becomes one readable line) and a generic 500 for a bug,
whose trace goes to the server log only.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from tastemaker.errors import TastemakerError
from tastemaker.serve.background import in_background
from tastemaker.serve.explanation_methods import Explainers
from tastemaker.serve.problems import ApiError, body
from tastemaker.serve.security import BodyLimit, TokenBuckets
from tastemaker.serve.settings import ServeSettings
from tastemaker.serve.state import ServeState

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger("tastemaker.serve")


def load_models_in_background(state: ServeState) -> threading.Thread:
    """Load the models without holding up start-up; a failure is kept for ``/ready``."""

    def load() -> None:
        state.reload()
        # The data, lookups and models loaded at start-up live as long as the server:
        # out of the collector's sight, a full collection no longer walks them, which
        # made the tail of the request latency (benchmarks/serving.py).
        gc.collect()
        gc.freeze()

    def failed(reason: str) -> None:
        state.load_error = reason

    return in_background("models", load, failed)


def create_app(settings: ServeSettings) -> FastAPI:
    """The service for ``settings`` (the data and models load when it starts)."""
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServeState(settings)
        app.state.explainers = Explainers(state, settings.explain_method, settings.explain_llm)
        app.state.state = state
        app.state.loader = load_models_in_background(state)
        app.state.explain_loader = app.state.explainers.load_llm()
        app.state.jobs = start_jobs(settings, state)
        log.info("serving %s with the models of %s", settings.data, settings.model_dir)
        try:
            yield
        finally:
            jobs = getattr(app.state, "jobs", None)
            if jobs is not None:
                jobs.shutdown()
            state.close()

    from tastemaker import __version__

    app = FastAPI(
        title="tastemaker",
        version=__version__,
        summary="Recommendations, explanations and personalized generation, with live feedback",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.state = None
    app.state.jobs = None
    app.state.rate_limits = TokenBuckets(settings.generation_rate, settings.generation_burst)
    add_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    for router in routers():
        app.include_router(router)
    return app


def routers() -> list[Any]:
    """The API's routers, and the generation and page routers (serve/generations.py,
    serve/page.py)."""
    from tastemaker.serve import api_feedback, api_items, api_system, api_users, generations, page

    return [
        api_system.router,
        api_users.router,
        api_items.router,
        api_feedback.router,
        generations.router,
        page.router,
    ]


def start_jobs(settings: ServeSettings, state: ServeState) -> Any:
    """The generation job manager (serve/jobs.py): a worker thread, jobs kept on disk."""
    from tastemaker.serve.jobs import JobManager

    return JobManager(settings, state)


def add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error", "fix"}``: 4xx for the request's faults, 500 for bugs."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def answer(
        status: int, problem: str, fix: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        return JSONResponse(body(problem, fix), status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc.status, exc.problem, exc.fix, exc.headers)

    @app.exception_handler(TastemakerError)
    async def tastemaker_error(request: Request, exc: TastemakerError) -> JSONResponse:
        return answer(422, exc.problem, exc.fix)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(422, validation_line(exc.errors()), "correct the request (see /docs)")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return answer(404, f"no endpoint {request.url.path}", "see /docs for the endpoints")
        if exc.status_code == 405:
            return answer(
                405, f"{request.method} is not allowed on {request.url.path}", "see /docs"
            )
        return answer(exc.status_code, str(exc.detail), "see /docs")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s %s", request.method, request.url.path)
        return answer(500, "internal error", "see the server log; report it if it persists")


def validation_line(errors: Any) -> str:
    """FastAPI's list of validation errors as one line: ``where: what; ...``."""
    parts = []
    for error in list(errors)[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = str(error.get("msg", "is invalid"))
        parts.append(f"{where}: {message}")
    more = len(errors) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


__all__ = ["create_app"]
