"""The image generator's hardware flags (``--device``, ``--dtype``, memory options,
``--scheduler``) that ``tastemaker generate`` and its subcommands share.

Plain types only, so ``--help`` imports neither torch nor diffusers; the values are
checked by :class:`~tastemaker.generation.generator.GeneratorConfig` (a bad one is one
line and exit code 2) and by loading the pipeline before any work (a device that is
not there, float16 on the CPU, an unknown scheduler).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="Where the generator runs: cpu, cuda, mps, or auto."),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option("--dtype", help="Generator precision: float32, float16 (GPU) or bfloat16."),
]
SlicingOpt = Annotated[
    bool | None,
    typer.Option(
        "--attention-slicing/--no-attention-slicing", help="Attention in slices: less memory."
    ),
]
TilingOpt = Annotated[
    bool | None,
    typer.Option(
        "--vae-tiling/--no-vae-tiling", help="Decode in tiles: large images, less memory."
    ),
]
OffloadOpt = Annotated[
    bool | None,
    typer.Option(
        "--cpu-offload/--no-cpu-offload",
        help="Keep models on the CPU, each on the GPU while it runs (CUDA).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="ddim, ddpm, pndm, lms, euler, euler-a, heun, dpm++, unipc, or a diffusers "
        "scheduler class (default: the model's).",
    ),
]


def generator_flags(
    device: str | None = None,
    dtype: str | None = None,
    attention_slicing: bool | None = None,
    vae_tiling: bool | None = None,
    cpu_offload: bool | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """The flags that were given, as :class:`GeneratorConfig` fields."""
    fields = {
        "device": device,
        "torch_dtype": dtype,
        "attention_slicing": attention_slicing,
        "vae_tiling": vae_tiling,
        "cpu_offload": cpu_offload,
        "scheduler": scheduler,
    }
    return {k: v for k, v in fields.items() if v is not None}


__all__ = [
    "DeviceOpt",
    "DtypeOpt",
    "OffloadOpt",
    "SchedulerOpt",
    "SlicingOpt",
    "TilingOpt",
    "generator_flags",
]
