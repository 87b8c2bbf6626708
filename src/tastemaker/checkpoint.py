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


def write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """``value`` as JSON text (a file inside a folder being written atomically)."""
    path.write_text(json.dumps(value, indent=indent) + "\n", encoding="utf-8")


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """``tensors`` as one safetensors file (detached, contiguous: what safetensors needs)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


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


def read_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors in a safetensors file; a missing or damaged file is a DataError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path} is missing or unreadable ({exc})", fix) from exc
