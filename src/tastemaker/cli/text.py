"""``tastemaker text run`` and ``tastemaker explain``: thin shells over :mod:`tastemaker.text`.

Inputs (task, retriever, k, data) are checked before any model loads; polars, torch
and transformers load inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastemaker.cli.common import console
from tastemaker.cli.generate import LLMModelOpt
from tastemaker.cli.progress import progress_lines
from tastemaker.errors import ConfigError, DataError

app = typer.Typer(help="Personalized text generation (LaMP-style tasks).", no_args_is_help=True)

TASK_NAMES = ("tagging", "tag-generation", "rating", "explanation")
RETRIEVER_NAMES = ("bm25", "dense", "recency", "random")

DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="MovieLens folder (ml-latest-small with tags.csv), ml-100k folder, or a name.",
    ),
]
LLMOpt = Annotated[
    str | None,
    typer.Option(
        "--llm", help="HF id, folder or .gguf; an OpenAI-compatible base URL. Default SmolLM2."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="Warnings only.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="Debug lines too.")]


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} '{value}'", f"use one of: {', '.join(choices)}")


def _check_data(data: str) -> None:
    path = Path(data).expanduser()
    looks_like_path = "/" in data or data.startswith(".")
    if looks_like_path and not path.is_dir():
        raise DataError(f"data folder {data} does not exist", "pass an existing data folder")


def _check_adapter(adapter: Path | None, llm: str | None) -> None:
    if adapter is None:
        return
    if llm is not None and llm.startswith(("http://", "https://")):
        raise ConfigError(
            "--adapter needs a local model, not a server", "drop --adapter or --llm URL"
        )
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter} holds no LoRA adapter (no adapter_config.json)",
            "pass the adapter folder written by tastemaker text finetune (OUT/adapter)",
        )


def _llm(llm: str | None, llm_model: str | None, adapter: Path | None = None) -> object:
    from tastemaker.llm import create_llm

    local = {"adapter": str(adapter)} if adapter is not None else {}
    if llm is None:
        return create_llm(**local)
    if llm.startswith(("http://", "https://")):
        return create_llm(backend="openai", base_url=llm, model=llm_model or "default")
    return create_llm(model=llm, **local)


@app.command("run")
def run(
    task: Annotated[
        str, typer.Option("--task", help="tagging, tag-generation, rating or explanation.")
    ],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for predictions, metrics and page.")],
    llm: LLMOpt = None,
    llm_model: LLMModelOpt = None,
    method: Annotated[
        str,
        typer.Option(
            help="llm; llm-score (tagging: the most likely label); llm-grounded (explanation: "
            "unsupported clauses cut); or a baseline (e.g. user-most-frequent, template)."
        ),
    ] = "llm",
    adapter: Annotated[
        Path | None,
        typer.Option(help="LoRA adapter folder from text finetune (OUT/adapter), local LLM."),
    ] = None,
    retriever: Annotated[str, typer.Option(help="bm25, dense, recency or random.")] = "bm25",
    k: Annotated[
        int, typer.Option("--k", help="Profile entries in the prompt (0: none; -1: all that fit).")
    ] = 4,
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    users: Annotated[
        int | None, typer.Option("--users", help="Sample this many users (seeded).")
    ] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(help="Cap on prompt tokens.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of sampling, random retrieval, bootstrap.")] = 0,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run one task × method: predictions.jsonl, metrics.json/.md and page.html in --out."""
    _check_choice(task, TASK_NAMES, "task")
    _check_choice(retriever, RETRIEVER_NAMES, "retriever")
    _check_choice(part, ("test", "valid"), "part")
    if k < -1:
        raise ConfigError(f"--k must be -1 (all that fit), 0 or more, got {k}", "pass e.g. --k 4")
    _check_data(data)
    _check_adapter(adapter, llm)
    from tastemaker.text.runner import LLM_METHODS, run_task
    from tastemaker.text.sources import load_text_data
    from tastemaker.text.tasks import build_task

    with progress_lines(quiet, verbose):
        built = build_task(task, load_text_data(data), n_users=users, seed=seed)
        model = _llm(llm, llm_model, adapter) if method in LLM_METHODS else None
        result = run_task(
            built, model, method=method, retriever=retriever, k=None if k == -1 else k,
            out=out, part=part, max_prompt_tokens=max_prompt_tokens, seed=seed,  # type: ignore[arg-type]
        )  # fmt: skip
    for name, value in result.metrics.items():
        if isinstance(value, dict):
            console.print(f"{name}: {value['value']:.4f} [{value['low']:.4f}, {value['high']:.4f}]")
    console.print(f"wrote {out}")


def explain(
    user: Annotated[str, typer.Option("--user", help="User ID.")],
    item: Annotated[str, typer.Option("--item", help="Item ID.")],
    data: DataOpt = "ml-latest-small",
    method: Annotated[
        str, typer.Option(help="template (no model), llm, or llm-grounded (claims checked).")
    ] = "template",
    llm: LLMOpt = None,
    llm_model: LLMModelOpt = None,
    k: Annotated[int, typer.Option("--k", help="Liked movies retrieved into the prompt.")] = 4,
) -> None:
    """Why this movie, for this user: an explanation grounded in their liked movies."""
    _check_choice(method, ("template", "llm", "llm-grounded"), "explanation method")
    if k < 0:
        raise ConfigError(f"--k must be 0 or more, got {k}", "pass e.g. --k 4")
    _check_data(data)
    from tastemaker.text.explanations import explain as make_explanation
    from tastemaker.text.sources import load_text_data

    model = _llm(llm, llm_model) if method != "template" else None
    result = make_explanation(user, item, load_text_data(data), method=method, llm=model, k=k)  # type: ignore[arg-type]
    console.print(result.text)
    if result.fallback:
        console.print(f"(fallback: {result.fallback})")
