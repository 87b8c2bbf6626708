"""Typed configs shared by the Python API and the CLI.

Each CLI flag maps to one field here; a ``--config file.toml`` supplies the same
fields as tables (``[data]``, ``[split]``, ``[model]``, ``[eval]``). Flags given on
the command line win over the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tastemaker.errors import ConfigError


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, values: Any, handler: ModelWrapValidatorHandler[Any], info: Any) -> Any:
        """Python callers get the same one-line :class:`ConfigError` as config files; the
        validation context says where the values came from (see :func:`section`)."""
        try:
            return handler(values)
        except ValidationError as exc:
            context = info.context or {}
            where, flags = context.get("where", cls.__name__), context.get("flags", ())
            raise _config_error(cls, exc, where, flags) from None


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_path(value: Any, info: ValidationInfo) -> Any:
    """``~`` and ``$VAR`` / ``${VAR}`` in a path field, so one config file serves every
    machine (e.g. ``${TASTEMAKER_DATA}/ml-latest-small``); a variable left unset would
    otherwise become a folder literally named ``$VAR``, so it is an error instead."""
    if not isinstance(value, str | Path):
        return value
    expanded = os.path.expandvars(os.path.expanduser(str(value)))
    unset = _VARIABLE.search(expanded)
    if unset is not None:
        name = unset.group(1) or unset.group(2)
        raise ConfigError(
            f"'{info.field_name}' = {str(value)!r} uses the environment variable {name}, "
            "which is not set",
            f"set it (e.g. export {name}=/path/to/folder) or write the path out",
        )
    return Path(expanded)


class DataConfig(_Config):
    """Which data set, and how to clean it."""

    dataset: str = Field("ml-latest-small", description="known data set name or a folder")
    path: Path | None = Field(None, description="local folder with the raw files")
    posters: Path | None = Field(None, description="folder of <item_id>.jpg images")
    threshold: float | None = Field(None, description="ratings >= threshold are positives")
    min_user: int = Field(1, ge=1, description="k-core: minimum interactions per user")
    min_item: int = Field(1, ge=1, description="k-core: minimum interactions per item")
    dedupe: Literal["first", "last", "none"] = "last"
    drop_invalid: bool = Field(
        False, description="drop NaN/inf ratings and timestamps (recorded) instead of failing"
    )
    sep: str | None = Field(None, description="delimiter of CSV files, e.g. ';' or 'tab'")
    # A user's own table instead of a known data set (CSV, TSV or Parquet).
    table: Path | None = Field(None, description="interaction table: CSV, TSV or Parquet")
    user_col: str | None = Field(None, description="table: the user ID column")
    item_col: str | None = Field(None, description="table: the item ID column")
    rating_col: str | None = Field(None, description="table: the rating column")
    timestamp_col: str | None = Field(None, description="table: Unix seconds or ISO dates")
    items: Path | None = Field(None, description="table: an item table (CSV, TSV, Parquet)")
    item_id_col: str | None = Field(None, description="items: its item ID column (item_col)")
    item_cols: list[str] | None = Field(None, description="items: the columns kept (all)")

    _paths = field_validator("path", "posters", "table", "items", mode="before")(expand_path)

    @field_validator("item_cols", mode="before")
    @classmethod
    def _parse_columns(cls, value: Any) -> Any:
        """Accept ``"title,genres"`` as well as a list."""
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        """A table needs its ID columns, and the table options need a table."""
        table_only = ("user_col", "item_col", "rating_col", "timestamp_col", "items")
        if self.table is None:
            stray = [f for f in (*table_only, "item_id_col", "item_cols") if getattr(self, f)]
            if stray:
                raise ConfigError(
                    f"{flag_name(stray[0])} describes a table, but no --table was given",
                    "pass --table FILE (table = in [data]) or drop the column options",
                )
            return self
        if {"dataset", "path"} & self.model_fields_set:
            raise ConfigError(
                "both a table (--table) and a data set (--dataset/--path) were given",
                "give one: --table FILE for your own file, or --dataset NAME",
            )
        missing = [f for f in ("user_col", "item_col") if getattr(self, f) is None]
        if missing:
            raise ConfigError(
                f"--table {self.table} needs {' and '.join(map(flag_name, missing))}",
                "name the table's user and item ID columns, e.g. --user-col userId "
                "--item-col movieId",
            )
        if self.items is None and (self.item_id_col or self.item_cols):
            raise ConfigError(
                f"{flag_name('item_id_col' if self.item_id_col else 'item_cols')} describes "
                "an item table, but no --items was given",
                "pass --items FILE or drop the item table options",
            )
        return self

    @field_validator("sep", mode="before")
    @classmethod
    def _parse_sep(cls, value: Any) -> Any:
        """One character; ``tab`` and ``\\t`` (as typed in a shell) mean a tab."""
        if isinstance(value, str) and value.lower() in ("tab", "\\t"):
            return "\t"
        if isinstance(value, str) and len(value) != 1:
            raise ValueError("a separator is one character, e.g. ';' or tab")
        return value


class SplitConfig(_Config):
    """How to split into train / validation / test."""

    kind: Literal["loo", "ratio", "temporal", "cold_start"] = "ratio"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    cold_items: float | None = Field(
        None, gt=0, lt=1, description="cold_start: hold out this share of items, split the rest"
    )

    @field_validator("ratios", mode="before")
    @classmethod
    def _parse_ratios(cls, value: Any) -> Any:
        """Accept ``"8:1:1"`` as well as a list."""
        if isinstance(value, str):
            try:
                return tuple(float(v) for v in value.split(":"))
            except ValueError as exc:
                raise ValueError("ratios look like 8:1:1") from exc
        return value


class EvalConfig(_Config):
    """Full-ranking evaluation settings."""

    ks: list[int] = Field(default_factory=lambda: [10, 20])
    metrics: list[str] = Field(
        default_factory=lambda: ["recall", "ndcg", "hit", "mrr", "precision", "map"]
    )
    batch_size: int = Field(1024, gt=0)


class ModelSpec(_Config):
    """A model by registry name, with its hyper-parameters (validated by the model)."""

    name: str = "bpr"
    params: dict[str, Any] = Field(default_factory=dict)


class FeaturesConfig(_Config):
    """How item content becomes vectors for multimodal models (cached in an embedding store)."""

    text_model: str | None = Field(None, description="sentence-transformers id or path")
    image_model: str | None = Field(None, description="vision model id or path")
    template: str | None = Field(None, description="item text template, e.g. '{title}. {genres}'")
    store: Path | None = Field(
        None, description="embedding cache folder (default $TASTEMAKER_HOME/embeddings)"
    )

    _paths = field_validator("store", mode="before")(expand_path)


SECTIONS: dict[str, type[_Config]] = {
    "data": DataConfig,
    "split": SplitConfig,
    "eval": EvalConfig,
    "model": ModelSpec,
    "features": FeaturesConfig,
}


def validate(cls: type[_Config], values: dict[str, Any], where: str = "config") -> Any:
    """Build ``cls`` from ``values``; a bad value becomes a one-line ConfigError."""
    try:
        return cls.model_validate(values, context={"where": where})
    except ValidationError as exc:  # a plain pydantic model, not a _Config
        raise _config_error(cls, exc, where) from exc


#: Fields whose command-line flag is not ``--`` + the field name with dashes.
FLAGS = {"ks": "-k", "kind": "--split", "name": "--model"}


def flag_name(field: str) -> str:
    """The command-line flag that sets a config field: ``min_user`` → ``--min-user``."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def _config_error(
    cls: type[BaseModel], exc: ValidationError, where: str, flags: Collection[str] = ()
) -> ConfigError:
    """The first validation error as one line; a field in ``flags`` came from the command
    line, so it is named by its flag (the user never typed the field's Python name)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "?"
    if field in flags:
        flag = flag_name(field)
        return ConfigError(
            f"invalid value for {flag}: {err['msg']} (got {err.get('input')!r})",
            f"pass a valid {flag} (see --help)",
        )
    return ConfigError(
        f"invalid {where} value for '{field}': {err['msg']} (got {err.get('input')!r})",
        f"fix '{field}' ({cls.__name__} fields: {', '.join(cls.model_fields)})",
    )


def read_toml(path: Path | None, known: Sequence[str] | None = None) -> dict[str, Any]:
    """The tables of a TOML config file (empty when ``path`` is None); ``known``: the keys
    allowed at the top level (default: the run sections and ``tune``)."""
    if path is None:
        return {}
    path = Path(path)
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist", "pass an existing .toml") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc})", "fix its syntax"
        ) from exc
    known = [*SECTIONS, "tune"] if known is None else list(known)
    unknown = set(tables) - set(known)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown table(s): {', '.join(sorted(unknown))}",
            f"use tables {', '.join(known)}",
        )
    return tables


def section(tables: dict[str, Any], name: str, flags: dict[str, Any] | None = None) -> Any:
    """One config section: the file's table overlaid with the flags actually given (keyed
    by field); a bad flag value is reported under its flag, a bad file value as ``[name]``."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    context = {"where": f"[{name}]", "flags": list(given)}
    return SECTIONS[name].model_validate({**tables.get(name, {}), **given}, context=context)
