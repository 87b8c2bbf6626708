"""Items: text search (personalised with a user), attributes, similar items, posters."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from tastemaker.serve.context import check_id, check_k, served
from tastemaker.serve.problems import ApiError, unknown_item
from tastemaker.serve.recommend import user_scores
from tastemaker.serve.schemas import ItemOut
from tastemaker.serve.search import RERANK_POOL, personalised

router = APIRouter(tags=["items"])


@router.get("/items", response_model=list[ItemOut], summary="Search the catalog (BM25)")
def search(
    request: Request,
    query: Annotated[str, Query(min_length=1, max_length=500)],
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    k: Annotated[int, Query(ge=1)] = 20,
) -> list[dict[str, Any]]:
    state, k = served(request), check_k(request, k)
    if not state.search.tokens(query):
        raise ApiError(
            422,
            f"the query {query!r} has no searchable words",
            "search for title words, genres or tags",
        )
    if user_id is None:
        return [
            state.item_view(state.item_ids[r], round(s, 6))
            for r, s in state.search.search(query, k)
        ]
    matches = state.search.search(query, max(k, RERANK_POOL))
    models = state.current()
    scores, _ = user_scores(state, models, model, user_id)
    chosen = models.get(model)
    vocab = chosen.items
    if vocab is None:
        raise chosen.not_fitted_error()
    values = scores.numpy()
    user_values = np.array(
        [
            values[vocab.index([state.item_ids[r]])[0]] if state.item_ids[r] in vocab else -np.inf
            for r, _ in matches
        ]
    )
    ranked = personalised(matches, user_values)[:k]
    return [state.item_view(state.item_ids[r], round(s, 6)) for r, s in ranked]


@router.get("/items/{item_id}", summary="An item's attributes")
def item(item_id: str, request: Request) -> dict[str, Any]:
    state = served(request)
    if check_id(request, item_id, "item ID") not in state.item_index:
        raise unknown_item(item_id)
    row = state.catalog.frame.row(state.item_index[item_id], named=True)
    row.pop("image", None)  # a path on the server's disk: the poster is at image_url
    return {
        **{k: finite(v) for k, v in row.items()},
        "image_url": state.item_view(item_id)["image_url"],
    }


def finite(value: Any) -> Any:
    """``value`` with NaN and infinite floats as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@router.get("/items/{item_id}/similar", response_model=list[ItemOut], summary="Similar items")
def similar(
    item_id: str, request: Request, k: Annotated[int, Query(ge=1)] = 10
) -> list[dict[str, Any]]:
    state = served(request)
    if check_id(request, item_id, "item ID") not in state.item_index:
        raise unknown_item(item_id)
    row, k = state.item_index[item_id], check_k(request, k)
    found = [(r, s, "co-occurrence") for r, s in state.similarity.most_similar(row, k)]
    if len(found) < k:  # a cold item has few or no co-occurrences: fill by its text
        taken = {r for r, _, _ in found}
        text = [(r, s, "text") for r, s in state.search.like(row, k + len(taken))]
        found += [f for f in text if f[0] not in taken][: k - len(found)]
    return [
        {**state.item_view(state.item_ids[r], round(s, 6)), "basis": basis} for r, s, basis in found
    ]


@router.get(
    "/items/{item_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
    summary="The item's poster (by item ID only)",
)
def image(item_id: str, request: Request) -> FileResponse:
    state = served(request)
    if check_id(request, item_id, "item ID") not in state.item_index:
        raise unknown_item(item_id)
    path = state.image_path(item_id)
    if path is None or not path.is_file():
        raise ApiError(404, f"item '{item_id}' has no poster", "show the title instead")
    return FileResponse(path)
