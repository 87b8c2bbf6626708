"""What ``POST /generations`` accepts, checked before a job is queued.

A job is (user or ad-hoc history, target item) plus the page's edits: keyword lists
that replace the extracted ones (the toggles), the grid of w_p:w_t weights and the
seed; ``parent`` links an edit to the job it edits, so a session's steps form a chain.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tastemaker.errors import ConfigError

AD_HOC_USER = "(ad-hoc history)"  # no data set names a user so; the history is the request's


class GenerationRequest(BaseModel):
    """What ``POST /generations`` accepts; keyword lists replace the extracted ones."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(
        None, min_length=1, max_length=100, description="a known user; None: `history` alone"
    )
    item_id: str = Field(min_length=1, max_length=100)
    history: list[str] | None = Field(
        None, max_length=200, description="item IDs liked after the data (an ad-hoc history)"
    )
    preference_keywords: list[str] | None = Field(None, max_length=24)
    item_keywords: list[str] | None = Field(None, max_length=24)
    weights: list[tuple[float, float]] | None = Field(
        None, min_length=1, max_length=6, description="w_p:w_t pairs, one condition each"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    parent: str | None = Field(None, description="the job this one edits (keywords, weights)")
    dry_run: bool = Field(False, description="keywords only (no images): for the toggles")

    @field_validator("preference_keywords", "item_keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [" ".join(k.split()) for k in value]
        if any(not k or len(k) > 60 for k in cleaned):
            raise ValueError("each keyword must have 1 to 60 characters")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _someone(self) -> GenerationRequest:
        if self.user_id is None and not self.history:
            raise ValueError("give a user_id, or a history of item IDs (or both)")
        return self

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        from tastemaker.generation.conditioning import parse_weights

        try:
            return None if value is None else [parse_weights(w) for w in value]
        except ConfigError as exc:
            raise ValueError(exc.problem) from exc

    @property
    def user(self) -> str:
        """The user whose history the job reads (:data:`AD_HOC_USER` for a history alone)."""
        return self.user_id if self.user_id is not None else AD_HOC_USER


__all__ = ["AD_HOC_USER", "GenerationRequest"]
