"""``POST /feedback``: interactions appended to the embedded database, durable on reply."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from tastemaker.serve.context import check_id, limits, served
from tastemaker.serve.feedback import Event
from tastemaker.serve.problems import ApiError, unknown_item
from tastemaker.serve.schemas import FeedbackRequest, FeedbackStored
from tastemaker.serve.security import require_write_key

router = APIRouter(tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackStored,
    dependencies=[Depends(require_write_key)],
    summary="Store interactions (idempotent by event_id); seen at once in recommendations",
)
def feedback(body: FeedbackRequest, request: Request) -> dict[str, int]:
    state = served(request)
    most = limits(request).max_events
    if len(body.events) > most:
        raise ApiError(
            422, f"{len(body.events)} events in one request (at most {most})", "send them in parts"
        )
    now = int(time.time())
    events = []
    for e in body.events:
        if e.item_id not in state.item_index:
            raise unknown_item(e.item_id)  # nothing of the request is stored
        check_id(request, e.user_id, "user ID")
        timestamp = now if e.timestamp is None else e.timestamp
        events.append(Event(e.event_id, e.user_id, e.item_id, e.rating, timestamp))
    stored, duplicates = state.feedback.add(events)
    return {"stored": stored, "duplicates": duplicates}
