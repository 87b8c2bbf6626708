"""What a ``tastemaker serve`` process is configured with (one frozen Pydantic object).

Where state goes: ``state_dir`` defaults to ``serve-state`` next to ``model_dir``
(``tastemaker-demo/models`` → ``tastemaker-demo/serve-state``), never inside it, so
``/admin/reload`` never mistakes it for a model and a model folder stays what
``tastemaker train`` wrote. The feedback events go to ``<state_dir>/feedback.sqlite``
unless ``events_db`` says otherwise; generation jobs to ``<state_dir>/generations``.

Finished generation jobs: the newest ``keep_jobs`` stay in memory (``GET /generations``
lists those); older ones are answered from their ``job.json`` on disk. No job folder is
ever deleted: they are the user's outputs, removed by the user, not by the server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from tastemaker.errors import ConfigError

API_KEY_ENV = "TASTEMAKER_API_KEY"
STATE_DIR_NAME = "serve-state"
EVENTS_FILE = "feedback.sqlite"
ExplainMethod = Literal["statistical", "template", "llm-grounded"]
EXPLAIN_METHODS: tuple[str, ...] = get_args(ExplainMethod)


class Limits(BaseModel):
    """Bounds on what one request may ask, so no request can exhaust the server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: PositiveInt = 1_000_000
    max_history: PositiveInt = Field(500, description="items in an ad-hoc history")
    max_k: PositiveInt = Field(1000, description="items in one answer")
    max_events: PositiveInt = Field(1000, description="events in one feedback request")
    max_id_length: PositiveInt = 200


class ServeSettings(BaseModel):
    """Data, models and the service's policies; paths are resolved at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path = Field(description="a Split or Dataset folder written by tastemaker")
    model_dir: Path = Field(description="a folder of saved models, or one model folder")
    generation_config: str | None = Field(None, description="scenario TOML or preset name")
    state_dir: Path | None = Field(None, description="default: serve-state next to model_dir")
    events_db: Path | None = Field(None, description="default: <state_dir>/feedback.sqlite")
    default_model: str | None = Field(None, description="default: bpr if served, else first")
    api_key: str | None = Field(None, repr=False, description="bearer key for write endpoints")
    limits: Limits = Limits()
    cors_origins: tuple[str, ...] = ()
    generation_rate: PositiveFloat = Field(6.0, description="generations per minute per key")
    generation_burst: PositiveInt = Field(3, description="generations allowed at once per key")
    keep_jobs: PositiveInt = Field(200, description="finished generation jobs kept in memory")
    explain_method: ExplainMethod = Field(
        "statistical", description="the explanation method when a request names none"
    )
    explain_llm: str | None = Field(
        None, description="language model for llm-grounded explanations (HF id, folder, .gguf, URL)"
    )

    @model_validator(mode="after")
    def _defaults(self) -> ServeSettings:
        state = self.state_dir or self.model_dir.resolve().parent / STATE_DIR_NAME
        object.__setattr__(self, "state_dir", state)
        object.__setattr__(self, "events_db", self.events_db or state / EVENTS_FILE)
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty")
        if self.explain_method == "llm-grounded" and self.explain_llm is None:
            raise ValueError("the explanation method llm-grounded needs explain_llm (a model)")
        return self

    @property
    def state(self) -> Path:
        """The state folder (always set after validation)."""
        if self.state_dir is None:
            raise ConfigError("settings have no state folder", "construct ServeSettings")
        return self.state_dir

    @property
    def events_path(self) -> Path:
        """The feedback SQLite file (always set after validation)."""
        if self.events_db is None:
            raise ConfigError("settings have no events file", "construct ServeSettings")
        return self.events_db


def read_api_key(key_file: Path | None) -> str | None:
    """The API key from ``key_file`` (first line) or else ``$TASTEMAKER_API_KEY``; None
    when neither is set (write endpoints are then open: fine on loopback only)."""
    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the API key file {key_file} ({exc.__class__.__name__})",
                "pass a readable text file whose first line is the key",
            ) from None
        if not key or not key[0].strip():
            raise ConfigError(f"API key file {key_file} is empty", "write the key on line 1")
        return key[0].strip()
    return os.environ.get(API_KEY_ENV) or None


__all__ = [
    "API_KEY_ENV",
    "EVENTS_FILE",
    "EXPLAIN_METHODS",
    "ExplainMethod",
    "Limits",
    "ServeSettings",
    "read_api_key",
]
