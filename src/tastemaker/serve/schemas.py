"""The request and answer bodies of the JSON API (they make the OpenAPI schema at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """Every error answer: what is wrong and what to do about it."""

    error: str
    fix: str


class FeedbackEvent(BaseModel):
    """One interaction: ``event_id`` makes resending it harmless."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=200, description="unique per event, e.g. a UUID")
    user_id: str = Field(min_length=1, max_length=200)
    item_id: str = Field(min_length=1, max_length=200)
    rating: float | None = Field(None, ge=-1e6, le=1e6)
    timestamp: int | None = Field(
        None, ge=0, le=2**53, description="Unix seconds; default: when the server received it"
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[FeedbackEvent] = Field(min_length=1)


class FeedbackStored(BaseModel):
    stored: int
    duplicates: int


class HistoryRequest(BaseModel):
    """An ad-hoc history (a new or anonymous user), oldest item first."""

    model_config = ConfigDict(extra="forbid")

    items: list[str] = Field(min_length=1, description="item IDs, oldest first")
    k: int = Field(10, ge=1)
    model: str | None = Field(None, min_length=1, max_length=200)
    exclude_seen: bool = True


class ItemOut(BaseModel):
    item_id: str
    title: str | None
    image_url: str | None
    score: float | None = None
    # Similar items only: "co-occurrence" (cosine of who interacted with both) or "text"
    # (BM25 of the item's own text; the fallback for items with few interactions).
    basis: str | None = None


class Recommendations(BaseModel):
    user_id: str | None
    model: str
    items: list[ItemOut]


class ModelOut(BaseModel):
    name: str
    model: str = Field(description="the kind of model (its registry name)")
    fold_in: bool = Field(description="scores a user from a list of items (ad-hoc histories)")
    default: bool


class UserOut(BaseModel):
    user_id: str
    history_length: int


class UserHistory(BaseModel):
    user_id: str
    history_length: int
    items: list[ItemOut] = Field(description="newest first; feedback events included")


class Reason(BaseModel):
    """An item of the user's history the explanation rests on."""

    item_id: str
    title: str | None
    similarity: float | None = Field(
        None, description="co-occurrence cosine (statistical); none for text methods"
    )


class Attribute(BaseModel):
    field: str
    value: str
    count: int = Field(description="items of the user's history that have it")


class Faithfulness(BaseModel):
    """The attributes (genres, tags) the text asserts, titles aside, checked against the item."""

    asserted: list[str]
    unsupported: list[str] = Field(description="asserted but not the item's own")
    faithful: bool


class Explanation(BaseModel):
    user_id: str
    item_id: str
    text: str
    because: list[Reason]
    attributes: list[Attribute]
    method: str = Field(description="statistical, template or llm-grounded: what wrote the text")
    model: str | None = Field(None, description="the language model (llm-grounded)")
    fallback: str | None = Field(None, description="set when the LLM's text was replaced")
    faithfulness: Faithfulness | None = Field(None, description="text methods only")


class Reloaded(BaseModel):
    models: list[str]
    default: str
    seconds: float
