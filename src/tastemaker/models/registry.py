"""Model names -> classes, so configs, the CLI and saved folders can name a model.

Models register themselves with :func:`register` when their module is imported;
``tastemaker.models`` imports every built-in model module explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from tastemaker.errors import ConfigError

if TYPE_CHECKING:  # base imports this module at runtime; avoid the cycle
    from tastemaker.models.base import Recommender

_REGISTRY: dict[str, type[Recommender]] = {}
ModelClass = TypeVar("ModelClass", bound="type[Recommender]")


def register(cls: ModelClass) -> ModelClass:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = cls.name
    known = _REGISTRY.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"model name '{name}' is used by both {known!r} and {cls!r}")
    _REGISTRY[name] = cls
    return cls


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[Recommender]:
    """The class registered as ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown model '{name}'", f"use one of: {', '.join(available_models())}"
        ) from None


def create_model(name: str, **params: Any) -> Recommender:
    """A new, unfitted model ``name`` with ``params`` validated by its config class."""
    return get_model_class(name)(**params)
