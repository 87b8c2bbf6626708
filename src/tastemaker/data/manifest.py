"""The ``manifest.json`` of a data set folder: where the data came from and what was done.

Two runs that print the same content hashes used the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from tastemaker.errors import DataError
from tastemaker.reporting.values import plural

SCHEMA_VERSION = 1


class Step(BaseModel):
    """One preprocessing step, with its parameters and the rows it left."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    rows_after: int | None = None


class SplitInfo(BaseModel):
    """How train/valid/test were made, and hashes that prove it."""

    kind: str
    seed: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    content_hash: str
    part_hashes: dict[str, str]
    part_files: dict[str, str] = Field(
        default_factory=dict,
        description="part -> sha256 of its Parquet file's bytes as written: a match on load "
        "proves the content hash without recomputing it",
    )


class Manifest(BaseModel):
    schema_version: int = SCHEMA_VERSION
    name: str
    source: dict[str, Any] = Field(default_factory=dict)
    source_files: dict[str, str] = Field(default_factory=dict, description="file -> sha256")
    steps: list[Step] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    split: SplitInfo | None = None

    def with_step(self, name: str, rows_after: int, **params: Any) -> Manifest:
        return self.model_copy(
            update={"steps": [*self.steps, Step(name=name, params=params, rows_after=rows_after)]}
        )

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            manifest = cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(
                f"{path} is missing", "point to a folder written by `tastemaker data prepare`"
            ) from exc
        except ValidationError as exc:
            raise DataError(
                f"{path} is not a valid manifest ({plural(exc.error_count(), 'problem')})",
                "re-create the data set folder with `tastemaker data prepare`",
            ) from exc
        if manifest.schema_version > SCHEMA_VERSION:
            raise DataError(
                f"{path} has schema version {manifest.schema_version}, newer than this "
                f"tastemaker understands ({SCHEMA_VERSION})",
                "upgrade tastemaker",
            )
        return manifest
