"""The files of a soft-preference training run: resumable checkpoints, loss log and plot.

A checkpoint holds the trainable tensors and the optimizer's moments as
safetensors, and the scalars (step, config, data hash, losses) as JSON; nothing
is pickled. It is replaced atomically, so an interrupted run resumes from the
last complete one; a checkpoint of another configuration or of other examples
is refused rather than mixed in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tastemaker.atomic import atomic_path, write_bytes, write_text
from tastemaker.errors import ConfigError, DataError
from tastemaker.reporting.plots import png_bytes, pyplot

if TYPE_CHECKING:
    import torch

    from tastemaker.generation.soft_prompt import SoftPromptConfig

CHECKPOINT = "checkpoint"
TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
LOG_FILE = "training_log.json"
PLOT_FILE = "loss.png"
# Fields a resumed run may change; any other change makes the checkpoint a different run.
RESUMABLE = frozenset({"steps", "checkpoint_every"})


def checkpoint_folder(folder: Path | str) -> Path:
    """The checkpoint folder itself, given it or the run folder holding it."""
    folder = Path(folder)
    return folder / CHECKPOINT if (folder / CHECKPOINT).is_dir() else folder


def save_checkpoint(
    out_dir: Path,
    encoder: torch.nn.Module,
    config: SoftPromptConfig,
    losses: list[float],
    data_hash: str,
    optimizer: torch.optim.Optimizer,
) -> None:
    """The checkpoint folder (replaced atomically), the loss log and the loss plot."""
    from safetensors.torch import save_file

    state = optimizer.state_dict()
    moments = {
        f"{index}.{name}": value.detach().cpu()
        for index, values in state["state"].items()
        for name, value in values.items()
    }
    scalars = {
        "step": len(losses),
        "config": config.model_dump(),
        "data_hash": data_hash,
        "losses": losses,
        "param_groups": state["param_groups"],
    }
    with atomic_path(out_dir / CHECKPOINT, directory=True) as tmp:
        trainable = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
        save_file(trainable, str(tmp / TRAINABLE_FILE))
        save_file(moments, str(tmp / OPTIMIZER_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(scalars, indent=1), encoding="utf-8")
    log = [{"step": i, "loss": loss} for i, loss in enumerate(losses, 1)]
    write_text(out_dir / LOG_FILE, json.dumps(log, indent=1))
    write_bytes(out_dir / PLOT_FILE, loss_plot(losses))


def check_config(saved: dict[str, Any], config: SoftPromptConfig, where: Path) -> None:
    """A checkpoint of another configuration is another run: refuse to mix them."""
    mine = config.model_dump()
    changed = sorted(k for k in mine if k not in RESUMABLE and saved.get(k) != mine[k])
    if changed:
        raise ConfigError(
            f"checkpoint {where} was trained with other {', '.join(changed)}",
            "use the same settings (only steps and checkpoint_every may change), or another folder",
        )


def saved_config(folder: Path) -> dict[str, Any]:
    """The config a checkpoint folder was trained with, as saved."""
    try:
        saved: dict[str, Any] = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        return saved["config"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{folder} holds no readable soft prompt checkpoint ({type(exc).__name__})",
            "pass the folder SoftPreferenceTrainer.train wrote",
        ) from exc


def load_parameters(folder: Path | str, encoder: torch.nn.Module, config: SoftPromptConfig) -> None:
    """Trained parameters into ``encoder``, from a checkpoint folder (or its run folder)."""
    from safetensors.torch import load_file

    folder = checkpoint_folder(folder)
    if not (folder / TRAINABLE_FILE).is_file():
        raise DataError(
            f"{folder} holds no soft prompt checkpoint ({TRAINABLE_FILE})",
            "pass the folder SoftPreferenceTrainer.train wrote",
        )
    saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))["config"]
    check_config(saved, config, folder)
    device = next(encoder.parameters()).device
    encoder.load_state_dict(load_file(str(folder / TRAINABLE_FILE), device=str(device)))


def restore_checkpoint(
    folder: Path,
    encoder: torch.nn.Module,
    config: SoftPromptConfig,
    data_hash: str,
    optimizer: torch.optim.Optimizer,
) -> list[float]:
    """Load parameters and optimizer state from ``folder``; the losses so far."""
    from safetensors.torch import load_file

    scalars = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    check_config(scalars["config"], config, folder)
    if scalars["data_hash"] != data_hash:
        raise DataError(
            f"checkpoint {folder} was trained on other examples",
            "resume with the same examples, or train without resume",
        )
    load_parameters(folder, encoder, config)
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(folder / OPTIMIZER_FILE)).items():
        index, name = key.split(".", 1)
        moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": scalars["param_groups"]})
    return [float(x) for x in scalars["losses"]][: scalars["step"]]


def loss_plot(losses: Sequence[float]) -> bytes:
    """PNG of the per-step loss and its moving average."""
    plt = pyplot()
    steps = np.arange(1, len(losses) + 1)
    window = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(steps, losses, alpha=0.35, label="loss per step")
    ax.plot(steps[window - 1 :], smooth, label=f"mean of {window} steps")
    ax.set(xlabel="step", ylabel="diffusion loss (MSE)", title="soft preference tokens")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return png_bytes(fig)


__all__ = [
    "CHECKPOINT",
    "LOG_FILE",
    "PLOT_FILE",
    "STATE_FILE",
    "TRAINABLE_FILE",
    "check_config",
    "checkpoint_folder",
    "load_parameters",
    "loss_plot",
    "restore_checkpoint",
    "save_checkpoint",
    "saved_config",
]
