"""The files of a saved model folder: JSON for settings, safetensors for tensors.

Every saved thing in tastemaker (recommenders, aligned spaces, UniSRec
checkpoints) is a folder written atomically (:func:`tastemaker.atomic.atomic_path`)
of these files; reading one that is missing or damaged is a ``DataError`` saying
how to get a good one, never a traceback from the file format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.errors import DataError

if TYPE_CHECKING:
    import torch
    from pydantic import BaseModel

_TENSOR, _KEYS = "__tensor__", "__items__"  # markers in a split state's JSON layout
# Recorded in a weights file's header and compared with config.json on load, so an
# edited config.json cannot silently make the weights run as another model or shape.
_MODEL_KEY, _CONFIG_KEY = "tastemaker.model", "tastemaker.config"
_EDITED = "the folder's config.json was edited; retrain or restore it"


def write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """``value`` as JSON text (a file inside a folder being written atomically)."""
    path.write_text(json.dumps(value, indent=indent) + "\n", encoding="utf-8")


def write_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """``tensors`` as one safetensors file (detached, contiguous: what safetensors needs);
    ``metadata`` is stored in its header, so what made the tensors travels with them."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata)


def read_json(path: Path, fix: str) -> Any:
    """The JSON value in ``path``; a missing or unreadable file is a DataError with ``fix``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing or invalid (no such file)", fix) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path} is missing or invalid (not valid JSON: truncated or edited?)", fix
        ) from exc


def read_metadata(path: Path, fix: str) -> dict[str, str]:
    """The header metadata of a safetensors file ({} when it has none)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as handle:
            return dict(handle.metadata() or {})
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path} is missing or unreadable ({exc})", fix) from exc


def read_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors in a safetensors file; a missing or damaged file is a DataError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path} is missing or unreadable ({exc})", fix) from exc


def split_state(state: dict[str, Any], prefix: str) -> tuple[dict[str, torch.Tensor], Any]:
    """A nested state (an optimiser's ``state_dict()``) as tensors named ``prefix.path``
    and the JSON-able rest, so it is saved without pickle; :func:`join_state` undoes it."""
    import torch

    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            tensors[path] = value
            return {_TENSOR: path}
        if isinstance(value, dict):
            return {_KEYS: [[k, walk(v, f"{path}.{k}")] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(value)]
        return value

    return tensors, walk(state, prefix)


def join_state(layout: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The nested state :func:`split_state` split (dict keys keep their int/str type)."""
    if isinstance(layout, dict) and _TENSOR in layout:
        return tensors[layout[_TENSOR]]
    if isinstance(layout, dict):
        return {k: join_state(v, tensors) for k, v in layout[_KEYS]}
    if isinstance(layout, list):
        return [join_state(v, tensors) for v in layout]
    return layout


def recorded(model: str, config: dict[str, Any]) -> dict[str, str]:
    """The weights file's header: which model and config made the weights."""
    return {_MODEL_KEY: model, _CONFIG_KEY: json.dumps(config)}


def check_recorded(
    folder: Path, config_file: str, weights_file: str, model: str, settings: BaseModel
) -> None:
    """The model and config in the weights' header (:func:`recorded`) are the ones the
    folder's config file names; a one-line DataError naming the field otherwise.

    ``settings`` are compared as JSON values (a path as its string), as they were
    recorded. A header without them (a folder saved before they were recorded) is not
    checked.
    """
    config = settings.model_dump(mode="json")
    where = folder / config_file
    header = read_metadata(folder / weights_file, _EDITED)
    if _MODEL_KEY in header and header[_MODEL_KEY] != model:
        raise DataError(
            f"{where} names model '{model}' but the weights are '{header[_MODEL_KEY]}' weights",
            _EDITED,
        )
    try:
        trained = json.loads(header.get(_CONFIG_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise DataError(f"the weights next to {where} have a damaged header", _EDITED) from exc
    for field in sorted(trained):
        if trained[field] != config.get(field):
            raise DataError(
                f"{where} says {field}={config.get(field)!r} but the weights were trained "
                f"with {field}={trained[field]!r}",
                _EDITED,
            )
