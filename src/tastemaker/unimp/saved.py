"""A trained UniMP on disk, and the checkpoint a run resumes from.

``model/``: ``config.json`` (the :class:`UniMPConfig`), ``weights.safetensors``
(only what trains: the added modules and LoRA; the backbone is reloaded from its
source, the visual features from the store), ``items.json`` (the item IDs the
retrieval head's rows stand for). The weights' header records the config, so an
edited ``config.json`` is refused. ``checkpoint/``: the same weights, the
optimiser state (safetensors via ``split_state``, no pickle), the step, the
sampling generator and the loss log, so a resumed run continues exactly.
Every folder is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tastemaker.atomic import atomic_path
from tastemaker.checkpoint import (
    check_recorded,
    join_state,
    read_json,
    read_tensors,
    recorded,
    split_state,
    write_json,
    write_tensors,
)
from tastemaker.errors import ConfigError, DataError
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.model import UniMP

MODEL_NAME = "unimp"
CONFIG, WEIGHTS, ITEMS = "config.json", "weights.safetensors", "items.json"
STATE, OPTIMIZER = "state.json", "optimizer.safetensors"


def load_trainable(model: UniMP, tensors: dict[str, torch.Tensor], where: Path) -> None:
    """Copy saved tensors into the model's trainable parameters (names must match)."""
    params = model.trainable()
    if set(params) != set(tensors):
        missing = sorted(set(params) ^ set(tensors))[:3]
        raise DataError(
            f"{where} does not fit this model (differs in {', '.join(missing)})",
            "load it with the config and backbone it was trained with",
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name].to(param.dtype))


def save_model(model: UniMP, folder: Path) -> Path:
    """``folder`` with config, trainable weights and item IDs (atomically)."""
    settings = model.config.model_dump(mode="json")
    with atomic_path(folder, directory=True) as tmp:
        write_json(tmp / CONFIG, settings)
        write_tensors(tmp / WEIGHTS, dict(model.trainable()), recorded(MODEL_NAME, settings))
        write_json(tmp / ITEMS, list(model.bank.vocab.ids))
    return folder


def read_config(folder: Path) -> UniMPConfig:
    """The config of a saved model folder, checked against its weights' header."""
    fix = "pass a folder written by tastemaker unimp train (OUT/model)"
    settings = read_json(Path(folder) / CONFIG, fix)
    config = UniMPConfig.model_validate(settings)
    check_recorded(Path(folder), CONFIG, WEIGHTS, MODEL_NAME, config)
    return config


def load_weights(model: UniMP, folder: Path) -> None:
    """The saved trainable weights into ``model`` (built from the same config and items)."""
    fix = "pass a folder written by tastemaker unimp train (OUT/model)"
    items = read_json(Path(folder) / ITEMS, fix)
    if list(items) != list(model.bank.vocab.ids):
        raise DataError(
            f"{folder} was trained on other items ({len(items)}) than these "
            f"({len(model.bank.vocab)})",
            "use the data set the model was trained on",
        )
    load_trainable(model, read_tensors(Path(folder) / WEIGHTS, fix), Path(folder))


def save_checkpoint(folder: Path, model: UniMP, optimizer: Any, state: dict[str, Any]) -> None:
    """Trainable weights, optimiser and loop state, all a resumed run needs."""
    tensors, layout = split_state(optimizer.state_dict(), "optimizer")
    with atomic_path(folder, directory=True) as tmp:
        write_tensors(tmp / WEIGHTS, dict(model.trainable()))
        write_tensors(tmp / OPTIMIZER, tensors)
        write_json(tmp / STATE, {**state, "optimizer": layout})


def restore_checkpoint(folder: Path, model: UniMP, optimizer: Any) -> dict[str, Any]:
    """The loop state saved in ``folder`` after loading its weights and optimiser."""
    fix = f"remove {folder} to start afresh"
    state = read_json(folder / STATE, fix)
    if state.get("config") != model.config.resume_key():
        raise ConfigError(
            f"{folder} was made with other UniMP settings",
            f"resume with the same settings (only --steps may change), or {fix}",
        )
    load_trainable(model, read_tensors(folder / WEIGHTS, fix), folder)
    optimizer.load_state_dict(
        join_state(state.pop("optimizer"), read_tensors(folder / OPTIMIZER, fix))
    )
    state["generator"] = torch.tensor(state["generator"], dtype=torch.uint8)
    return state
