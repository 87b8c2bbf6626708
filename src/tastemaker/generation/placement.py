"""Where a diffusers pipeline runs and how: device, memory options, scheduler, VAE precision.

A GPU user picks the device (``auto``: CUDA, else Apple's MPS, else the CPU), the
dtype, and the memory options diffusers offers (attention slicing, VAE tiling,
model CPU offload); a scheduler replaces the model's by name, built from the
model's own scheduler config so the noise schedule stays the one it was trained with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch

from tastemaker.errors import ConfigError

Device = Literal["cpu", "cuda", "mps", "auto"]
# Short names of diffusers' schedulers (any diffusers class name ending in "Scheduler" works too).
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def resolve_device(device: str) -> str:
    """The device a pipeline runs on: ``auto`` is CUDA, else Apple's MPS, else the CPU; an
    asked-for accelerator that is not there is a ConfigError."""
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        kind = "CUDA GPU" if device == "cuda" else "Apple MPS device"
        raise ConfigError(f"device '{device}' was asked for but no {kind} is visible", "use cpu")
    return device


def scheduler_class(name: str) -> Any:
    """The diffusers scheduler class of a short name (``dpm++``) or class name."""
    import diffusers

    cls = getattr(diffusers, SCHEDULERS.get(name, name), None)
    if not (isinstance(cls, type) and hasattr(cls, "from_config")):
        raise ConfigError(
            f"diffusers has no scheduler '{name}'",
            f"use one of {', '.join(SCHEDULERS)} or a diffusers scheduler class name",
        )
    return cls


@contextmanager
def vae_precision(vae: Any) -> Iterator[torch.dtype]:
    """The dtype to run ``vae`` in, with the VAE in it meanwhile: float32 where a float16 VAE's
    config asks for ``force_upcast`` (SDXL's overflows in float16, as diffusers' SDXL pipeline
    knows when it decodes), else its own; a float16 VAE goes back to float16 afterwards."""
    if not (vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)):
        yield vae.dtype
        return
    vae.to(dtype=torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(dtype=torch.float16)


def configure(
    pipeline: Any,
    device: str,
    *,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
    cpu_offload: bool = False,
    scheduler: Any = None,
) -> Any:
    """``pipeline`` on ``device`` with diffusers' memory options and another scheduler
    (built ``from_config`` of the model's own, so its noise schedule stays the model's)."""
    if scheduler is not None:
        pipeline.scheduler = scheduler.from_config(pipeline.scheduler.config)
    if attention_slicing:
        pipeline.enable_attention_slicing()
    if vae_tiling:
        pipeline.vae.enable_tiling()
    if cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
        return pipeline
    return pipeline.to(device)


__all__ = [
    "SCHEDULERS",
    "Device",
    "configure",
    "resolve_device",
    "scheduler_class",
    "vae_precision",
]
