"""``tastemaker serve``: the HTTP service (FastAPI under uvicorn) over a data and model folder.

``--demo`` serves what ``tastemaker demo`` wrote (``<out>/split``, ``<out>/models``),
running the demo first when the folder does not exist, and adds a SASRec model when
the demo did not train one, so a sequential model is always served next to BPR.
Inputs are checked before the server starts (one line, exit 2). The server binds
127.0.0.1 unless told otherwise. FastAPI, uvicorn and torch load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tastemaker.cli.common import console
from tastemaker.errors import ConfigError

SEQUENTIAL_MODEL = "sasrec"
# A short patience: on the demo's split SASRec's validation NDCG@10 peaks within a few
# epochs (~20 s each on 2 cores), so the default patience of 10 only adds minutes.
SEQUENTIAL_PARAMS = {"patience": 3}


def serve(
    data: Annotated[
        Path | None, typer.Option("--data", help="Split or Dataset folder written by tastemaker.")
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Folder of saved models (or one model folder)."),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Serve the demo's folder (running the demo if absent).")
    ] = False,
    out: Annotated[Path, typer.Option(help="The demo's folder, with --demo.")] = Path(
        "tastemaker-demo"
    ),
    generation_config: Annotated[
        str | None, typer.Option(help="Generation scenario: a TOML file or a preset name.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    api_key_file: Annotated[
        Path | None,
        typer.Option(help="File whose first line is the API key (else $TASTEMAKER_API_KEY)."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(help="Feedback SQLite file (default: serve-state/feedback.sqlite)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Folder for feedback and generation jobs.")
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeatable).")
    ] = None,
    explain_method: Annotated[
        str,
        typer.Option(
            help="Explanations when a request names none: statistical, template or "
            "llm-grounded (needs --explain-llm)."
        ),
    ] = "statistical",
    explain_llm: Annotated[
        str | None,
        typer.Option(
            help="Language model for llm-grounded explanations: HF id, folder, .gguf "
            "or an OpenAI-compatible base URL (loaded once at start-up)."
        ),
    ] = None,
    keep_jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Finished generation jobs kept in memory; older ones are read "
            "from disk (their folders are never deleted).",
        ),
    ] = 200,
) -> None:
    """Serve recommendations, explanations, feedback and generation over HTTP (docs at /docs)."""
    from tastemaker.cli.progress import progress_lines
    from tastemaker.serve.settings import EXPLAIN_METHODS

    if explain_method not in EXPLAIN_METHODS:
        raise ConfigError(
            f"unknown --explain-method '{explain_method}'",
            f"use one of: {', '.join(EXPLAIN_METHODS)}",
        )
    if explain_method == "llm-grounded" and explain_llm is None:
        raise ConfigError(
            "--explain-method llm-grounded needs a language model",
            "add --explain-llm MODEL (an HF id, folder, .gguf or server URL)",
        )
    if demo:
        if data is not None or model_dir is not None:
            raise ConfigError(
                "--demo serves the demo's folder, so --data and --model-dir do not apply",
                "drop --demo, or drop --data and --model-dir (use --out for the demo's folder)",
            )
        with progress_lines(quiet=False, verbose=False):
            data, model_dir = prepared_demo(out)
    if data is None or model_dir is None:
        raise ConfigError(
            "tastemaker serve needs --data and --model-dir (or --demo)",
            "e.g. tastemaker serve --data tastemaker-demo/split "
            "--model-dir tastemaker-demo/models, or tastemaker serve --demo",
        )
    fields = {"generation_config": generation_config, "events_db": events,
              "state_dir": state_dir, "cors_origins": tuple(cors_origin or []),
              "explain_method": explain_method, "explain_llm": explain_llm,
              "keep_jobs": keep_jobs}  # fmt: skip
    run_server(data, model_dir, host, port, api_key_file, fields)


def prepared_demo(out: Path) -> tuple[Path, Path]:
    """The demo's split and models folders, running the demo (with SASRec) if needed."""
    from tastemaker.demo import DEMO_MODELS, run_demo

    if not out.exists():
        console.print(f"{out} does not exist: running tastemaker demo first (a few minutes)")
        from tastemaker.config import ModelSpec

        sequential = ModelSpec(name=SEQUENTIAL_MODEL, params=SEQUENTIAL_PARAMS)
        run_demo(out, models=[*DEMO_MODELS, sequential])
    split, models = out / "split", out / "models"
    if not (split / "manifest.json").is_file() or not models.is_dir():
        raise ConfigError(
            f"{out} is not a folder written by tastemaker demo (no split/ and models/)",
            "pass --out the demo's folder, or a new folder name to run the demo into",
        )
    if not (models / SEQUENTIAL_MODEL / "config.json").is_file():
        train_sequential(split, models / SEQUENTIAL_MODEL)
    return split, models


def train_sequential(split_dir: Path, target: Path) -> None:
    """Train SASRec on the demo's split (early stopping on validation) into ``target``."""
    from tastemaker import experiment
    from tastemaker.config import ModelSpec
    from tastemaker.data.dataset import Split

    console.print(f"training {SEQUENTIAL_MODEL} for the demo's server into {target}")
    spec = ModelSpec(name=SEQUENTIAL_MODEL, params=SEQUENTIAL_PARAMS)
    model = experiment.train(Split.load(split_dir), spec)
    model.save(target)


def run_server(
    data: Path,
    model_dir: Path,
    host: str,
    port: int,
    api_key_file: Path | None,
    fields: dict[str, Any],
) -> None:
    """Check the inputs, then run uvicorn until SIGTERM / Ctrl-C (graceful shutdown);
    ``fields`` are the remaining :class:`ServeSettings`."""
    import torch
    import uvicorn

    from tastemaker.generation.scenario import load_scenario
    from tastemaker.serve.app import create_app
    from tastemaker.serve.settings import ServeSettings, read_api_key
    from tastemaker.serve.state import load_served_data, model_folders

    load_served_data(data)  # fails here, as one line, rather than in the server
    names = model_folders(model_dir)
    if fields["generation_config"] is not None:
        load_scenario(fields["generation_config"])  # one line here, not a traceback later
    settings = ServeSettings(
        data=data, model_dir=model_dir, api_key=read_api_key(api_key_file), **fields
    )
    console.print(
        f"serving {', '.join(names)} on http://{host}:{port} (docs: /docs; "
        f"writes {'need the API key' if settings.api_key else 'are open: no API key set'}; "
        f"feedback in {settings.events_path})"
    )
    # Requests run concurrently in the server's thread pool: torch's intra-op threads on
    # top of them thrash the cores that the pool already keeps busy.
    torch.set_num_threads(1)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=30,
    )


__all__ = ["serve"]
