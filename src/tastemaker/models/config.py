"""What every model's settings are: typed, frozen, and wrong values one line long.

A model's config is a pydantic model whose unknown fields are errors, not silently
ignored. Built from a model (``BPR(factors=8)``), through the registry or directly
(``BPRConfig(factors="x")``), a bad value is the same one-line :class:`ConfigError`.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from tastemaker.errors import ConfigError


class ModelConfig(BaseModel):
    """Base of every model's typed config; unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(
        cls, values: Any, handler: ModelWrapValidatorHandler[Any], info: ValidationInfo
    ) -> Any:
        """Python callers get the one-line error the CLI prints, named after the model
        (:func:`validate_config` passes its name) or else after the config class."""
        try:
            return handler(values)
        except ValidationError as exc:
            name = (info.context or {}).get("model", cls.__name__)
            raise config_error(cls, name, exc) from None


class TrainableConfig(ModelConfig):
    """Settings of models trained for several epochs with early stopping on validation."""

    epochs: PositiveInt = 100
    patience: PositiveInt = 10
    eval_every: PositiveInt = 1
    valid_users: PositiveInt | None = 2000  # validation's seeded user sample (training.py)
    early_stopping_metric: str = Field("ndcg@10", pattern=r"^[a-z_]+@[1-9][0-9]*$")
    learning_rate: PositiveFloat = 1e-3
    batch_size: PositiveInt = 2048


def validate_config(
    config_class: type[ModelConfig], name: str, values: dict[str, Any]
) -> ModelConfig:
    """``config_class(**values)`` for model ``name``; a bad value is a one-line ConfigError
    (also for a plain pydantic config that is no :class:`ModelConfig`)."""
    try:
        return config_class.model_validate(values, context={"model": name})
    except ValidationError as exc:
        raise config_error(config_class, name, exc) from None


def config_error(config_class: type[BaseModel], name: str, exc: ValidationError) -> ConfigError:
    """Every problem pydantic found, as one line naming the model and each field."""
    problems, fixes = [], []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown parameter '{field}'")
            fixes.append(f"use only {', '.join(config_class.model_fields)}")
        else:
            problems.append(f"{field}={err['input']!r} is invalid")
            fixes.append(err["msg"].replace("Input", field, 1))
    return ConfigError(f"model '{name}': {'; '.join(problems)}", "; ".join(fixes))
