"""The state of an iterative training run, kept after every epoch and saved with the model.

``training_state.json`` says how the run stopped (``early_stopping``, ``epochs`` or
``interrupted``), at which epoch, and its patience and best score;
``resume.safetensors`` holds what resuming needs beyond the best weights: the live
weights after that epoch, the optimiser's state (tensors in safetensors, the rest in
the JSON, never pickle) and the generator's state (a uint8 tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tastemaker.checkpoint import (
    join_state,
    read_json,
    read_tensors,
    split_state,
    write_json,
    write_tensors,
)
from tastemaker.errors import DataError

STATE_FILE, RESUME_FILE = "training_state.json", "resume.safetensors"
StopReason = Literal["early_stopping", "epochs", "interrupted"]
_GENERATOR, _WEIGHTS, _OPTIMIZER = "generator", "weights", "optimizer"


@dataclass(frozen=True)
class TrainingState:
    """Where a run stands after its last finished epoch: everything resuming needs."""

    epoch: int
    stopped: StopReason | None  # None while running
    best_value: float | None
    stale: int
    weights: dict[str, torch.Tensor]  # the live weights after ``epoch`` (not the best)
    optimizer: dict[str, Any] | None  # the optimiser's state_dict
    generator: torch.Tensor  # the model generator's state (uint8)
    hashes: dict[str, str | None]  # content hashes of the train and valid parts
    best_weights: dict[str, torch.Tensor] | None = None  # in memory only: the model's


def save_state(folder: Path, state: TrainingState, best_epoch: int | None) -> None:
    """Write ``state`` into a model folder being saved (atomically, by the caller)."""
    tensors, layout = split_state(state.optimizer or {}, _OPTIMIZER)
    tensors |= {f"{_WEIGHTS}.{k}": v for k, v in state.weights.items()}
    tensors[_GENERATOR] = state.generator
    write_tensors(folder / RESUME_FILE, tensors)
    record = {
        "stopped": state.stopped,
        "epoch": state.epoch,
        "best_epoch": best_epoch,
        "best_value": state.best_value,
        "stale": state.stale,
        "hashes": state.hashes,
        "optimizer": layout if state.optimizer is not None else None,
    }
    write_json(folder / STATE_FILE, record)


def load_state(folder: Path, fix: str) -> TrainingState | None:
    """What :func:`save_state` wrote; None for a folder without it (nothing to resume)."""
    if not (folder / STATE_FILE).is_file():
        return None
    record = read_json(folder / STATE_FILE, fix)
    tensors = read_tensors(folder / RESUME_FILE, fix)
    prefix = f"{_WEIGHTS}."
    try:
        layout = record["optimizer"]
        return TrainingState(
            epoch=int(record["epoch"]),
            stopped=record["stopped"],
            best_value=record["best_value"],
            stale=int(record["stale"]),
            weights={k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)},
            optimizer=None if layout is None else join_state(layout, tensors),
            generator=tensors[_GENERATOR],
            hashes=dict(record["hashes"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{folder / STATE_FILE} is damaged ({exc!r})", fix) from exc
