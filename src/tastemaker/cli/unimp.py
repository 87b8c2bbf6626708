"""``tastemaker unimp train|evaluate|ask``: a thin shell over :mod:`tastemaker.unimp.pipeline`.

torch, transformers and the data load inside the commands; inputs are checked
before any work, so a bad flag is one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tastemaker.cli.common import console
from tastemaker.cli.progress import progress_lines
from tastemaker.cli.unimp_condition import condition_train, generate
from tastemaker.errors import ConfigError

app = typer.Typer(help="UniMP: one multimodal model for recommendation, rating, "
                  "explanation, poster selection and search.", no_args_is_help=True)  # fmt: skip

DTYPES = ("float32", "bfloat16", "float16")
Data = Annotated[str, typer.Option("--data", help="MovieLens folder (or data set name).")]
Posters = Annotated[Path | None, typer.Option("--posters", help="Folder of <item_id>.jpg posters.")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps.")]
Dtype = Annotated[str, typer.Option("--dtype", help="float32, bfloat16 (GPU) or float16.")]


def _check(device: str, dtype: str, posters: Path | None) -> None:
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype '{dtype}'", f"use one of: {', '.join(DTYPES)}")
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device '{device}'", "use cpu, cuda, cuda:N or mps")
    if posters is not None and not posters.is_dir():
        raise ConfigError(f"poster folder {posters} does not exist", "pass an existing folder")


def _tags_folder(data: str) -> Path | None:
    path = Path(data).expanduser()
    return path if path.is_dir() else None


@app.command("train")
def train_command(
    data: Data,
    out: Annotated[Path, typer.Option("--out", help="Folder for model, checkpoint, log, plot.")],
    posters: Posters = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Tasks to train (repeat); default all.")
    ] = None,
    lm: Annotated[
        str, typer.Option("--lm", help="HF id, folder, .gguf, or 'tiny'.")
    ] = "SmolLM2-135M-Instruct",
    lm_layers: Annotated[int | None, typer.Option(help="Keep the first N decoder layers.")] = None,
    fusion: Annotated[str, typer.Option(help="masked, coarse or none.")] = "masked",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 8,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank (0: frozen backbone).")] = 8,
    item_init: Annotated[
        str, typer.Option(help="Retrieval item table: 'id' (from a quick BPR) or 'random'.")
    ] = "id",
    pool_history: Annotated[
        bool, typer.Option(help="Add the history items' table rows to the user vector.")
    ] = True,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and sampling.")] = 0,
    device: Device = "cpu",
    dtype: Dtype = "float32",
    quiet: Annotated[bool, typer.Option("--quiet", help="Warnings only.")] = False,
) -> None:
    """Train UniMP jointly on its tasks (leave-one-out train part)."""
    from pydantic import ValidationError

    from tastemaker.unimp.config import TASKS, UniMPConfig

    _check(device, dtype, posters)
    try:
        config = UniMPConfig(
            lm=lm, lm_layers=lm_layers, fusion=fusion, steps=steps, batch_size=batch_size,
            lora_rank=lora_rank, seed=seed, tasks=tuple(task or TASKS), item_init=item_init,
            pool_history=pool_history,
        )  # fmt: skip
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(
            f"bad value for {'.'.join(str(p) for p in error['loc'])}: {error['msg']}",
            "see tastemaker unimp train --help",
        ) from None
    from tastemaker.unimp.pipeline import load_data, prepare, train_unimp

    with progress_lines(quiet, False):
        prepared = prepare(
            load_data(data, posters), config, tags_folder=_tags_folder(data), device=device
        )
        _, result = train_unimp(prepared, config, out, device=device, dtype=dtype, resume=resume)
    last = result.log[-1] if result.log else {}
    console.print(
        f"trained {config.steps} steps in {result.seconds:.0f} s; last loss {last}; "
        f"model in {result.model_dir}"
    )


@app.command("evaluate")
def evaluate_command(
    data: Data,
    model_dir: Annotated[Path, typer.Option("--model-dir", help="OUT/model of unimp train.")],
    posters: Posters = None,
    users: Annotated[int, typer.Option(help="Test users (seeded sample).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of users and candidates.")] = 0,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """HR/NDCG/MRR@3,5,10 over 100 sampled candidates, rating MAE/RMSE, selection accuracy."""
    import json

    from tastemaker.unimp.report import evaluate_all

    model, prepared = _load(data, model_dir, posters, device, dtype)
    console.print(json.dumps(evaluate_all(model, prepared, users=users, seed=seed), indent=2))


@app.command("ask")
def ask_command(
    data: Data,
    model_dir: Annotated[Path, typer.Option("--model-dir", help="OUT/model of unimp train.")],
    task: Annotated[
        str, typer.Option("--task", help="recommend, rating, explain, select, search.")
    ],
    user: Annotated[str, typer.Option("--user", help="A user ID of the data.")],
    posters: Posters = None,
    item: Annotated[
        str | None, typer.Option("--item", help="Item for rating/explain/select.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="Search phrase.")] = None,
    k: Annotated[int, typer.Option("-k", help="Answers to show.")] = 10,
    device: Device = "cpu",
    dtype: Dtype = "float32",
) -> None:
    """One task's answer for one user."""
    from tastemaker.unimp.pipeline import ASK_TASKS

    if task not in ASK_TASKS:
        raise ConfigError(f"unknown task '{task}'", f"use one of: {', '.join(ASK_TASKS)}")
    from tastemaker.unimp.pipeline import ask

    model, prepared = _load(data, model_dir, posters, device, dtype)
    for answer, score in ask(model, prepared, task, user, item=item, query=query, k=k):
        console.print(f"{answer}\t{score:.4f}")


def _load(
    data: str, model_dir: Path, posters: Path | None, device: str, dtype: str
) -> tuple[Any, Any]:
    """A saved UniMP model and the data prepared as it was trained (checked first)."""
    _check(device, dtype, posters)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(
            f"{model_dir} holds no UniMP model", "pass OUT/model of tastemaker unimp train"
        )
    from tastemaker.unimp.pipeline import load_data, load_unimp, prepare
    from tastemaker.unimp.saved import read_config

    config = read_config(model_dir)
    prepared = prepare(
        load_data(data, posters), config, tags_folder=_tags_folder(data), device=device
    )
    return load_unimp(model_dir, prepared, device=device, dtype=dtype), prepared


app.command("condition-train")(condition_train)
app.command("generate")(generate)
