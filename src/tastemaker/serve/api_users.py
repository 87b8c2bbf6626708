"""Users: who is known, their history, recommendations (known or ad hoc), explanations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tastemaker.serve.context import check_id, check_k, limits, served
from tastemaker.serve.problems import ApiError, unknown_user
from tastemaker.serve.recommend import recommendations
from tastemaker.serve.schemas import (
    Explanation,
    HistoryRequest,
    Recommendations,
    UserHistory,
    UserOut,
)
from tastemaker.serve.settings import ExplainMethod

router = APIRouter(tags=["users"])
# The two recommendation routes are ``async``: their work is about a millisecond of
# scoring that holds the GIL anyway, and running it on the event loop saves the
# thread-pool hop (benchmarks/serving.py measures the result). Slower routes (history
# pages, explanations) stay sync.
ModelName = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("/users", response_model=list[UserOut], summary="A page of user IDs")
def users(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    state = served(request)
    counts = {user: len(items) for user, items in state.histories.items()}
    for user, n in state.feedback.user_counts().items():
        counts[user] = counts.get(user, 0) + n
    page = sorted(counts)[offset : offset + limit]
    return [{"user_id": user, "history_length": counts[user]} for user in page]


@router.get("/users/{user_id}", response_model=UserHistory, summary="A user's history")
def user(user_id: str, request: Request) -> dict[str, Any]:
    state = served(request)
    history, _ = state.history(check_id(request, user_id, "user ID"))
    if not history:
        raise unknown_user(user_id)
    return {
        "user_id": user_id,
        "history_length": len(history),
        "items": [state.item_view(item) for item in reversed(history)],
    }


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    summary="Top-k items for a known user (feedback included)",
)
async def user_recommendations(
    user_id: str,
    request: Request,
    k: Annotated[int, Query(ge=1)] = 10,
    exclude_seen: bool = True,
    model: ModelName = None,
) -> dict[str, Any]:
    check_id(request, user_id, "user ID")
    return recommendations(
        served(request),
        user_id,
        None,
        k=check_k(request, k),
        exclude_seen=exclude_seen,
        model=model,
    )


@router.post(
    "/recommendations",
    response_model=Recommendations,
    summary="Top-k items for an ad-hoc history (fold-in; 409 for models that cannot)",
)
async def history_recommendations(body: HistoryRequest, request: Request) -> dict[str, Any]:
    most = limits(request).max_history
    if len(body.items) > most:
        raise ApiError(
            422,
            f"the history has {len(body.items)} items (at most {most})",
            f"send the {most} most recent items",
        )
    return recommendations(
        served(request),
        None,
        body.items,
        k=check_k(request, body.k),
        exclude_seen=body.exclude_seen,
        model=body.model,
    )


@router.get(
    "/users/{user_id}/explanations/{item_id}",
    response_model=Explanation,
    summary="Why an item suits a user (statistical, template or llm-grounded)",
)
def explanation(
    user_id: str, item_id: str, request: Request, method: ExplainMethod | None = None
) -> dict[str, Any]:
    """``method`` defaults to the server's ``--explain-method``; ``llm-grounded`` needs a
    server started with ``--explain-llm`` (409 otherwise). Sync: a language model's
    generation runs in the worker thread, off the event loop."""
    served(request)
    check_id(request, user_id, "user ID")
    explainers = request.app.state.explainers
    return explainers.explain(user_id, check_id(request, item_id, "item ID"), method)
