"""Which image-text scorer a pipeline ranks its candidates with, and building it.

The scorers themselves live in :mod:`tastemaker.generation.scoring`; this module
holds their typed config (as scenario files and the CLI write it) and the
factory, so configuring a pipeline imports no model code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tastemaker.config import validate
from tastemaker.errors import ConfigError

if TYPE_CHECKING:
    from tastemaker.generation.scoring import ImageTextScorer


class ScorerConfig(BaseModel):
    """The image-text scorer behind d_p, d_t and z (``none``: candidates stay unranked)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "clip", "aligned"] = "none"
    model: str | None = Field(None, description="CLIP id or folder; AlignedSpace folder")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="z's weight on log d_p")
    similarity: Literal["unit", "logit"] = Field(
        "unit", description="d = (1 + cos) / 2, or CLIP-style logits (PMG's release)"
    )
    device: str = "cpu"

    @model_validator(mode="after")
    def _model_given(self) -> ScorerConfig:
        if self.kind != "none" and not self.model:
            raise ValueError(f"the {self.kind} scorer needs model (a hub id or folder)")
        return self

    @classmethod
    def parse(cls, spec: str, **fields: Any) -> ScorerConfig:
        """``none``, ``clip:ID_OR_FOLDER`` or ``aligned:FOLDER`` (as the CLI writes it)."""
        kind, sep, model = spec.partition(":")
        if spec.strip() == "none":
            return validate(cls, {**fields, "kind": "none", "model": None}, where="scorer")
        if not sep or kind not in ("clip", "aligned") or not model.strip():
            raise ConfigError(
                f"scorer '{spec}' is not none, clip:MODEL or aligned:FOLDER",
                "write e.g. clip:openai/clip-vit-base-patch32 or aligned:runs/align",
            )
        return validate(cls, {**fields, "kind": kind, "model": model.strip()}, where="scorer")


def create_scorer(config: ScorerConfig) -> ImageTextScorer | None:
    """The configured image-text scorer (None for ``kind = "none"``)."""
    if config.kind == "none":
        return None
    from tastemaker.generation.scoring import AlignedScorer, ClipScorer

    if not config.model:  # model_copy skips the validator: check again before loading
        raise ConfigError(
            f"the {config.kind} scorer has no model",
            "set [scorer] model (a CLIP id or folder, or an AlignedSpace folder)",
        )
    if config.kind == "clip":
        return ClipScorer(config.model, device=config.device, similarity=config.similarity)
    if not Path(config.model).expanduser().is_dir():
        raise ConfigError(
            f"aligned space folder {config.model} does not exist",
            "train one with `tastemaker pretrain align --out DIR` and pass aligned:DIR",
        )
    return AlignedScorer(Path(config.model).expanduser(), similarity=config.similarity)


__all__ = ["ScorerConfig", "create_scorer"]
