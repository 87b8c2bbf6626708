"""``tastemaker ray``: jobs on a Ray cluster (``pip install 'tastemaker[ray]'``).

Thin shells over :mod:`tastemaker.distributed`; ``--ray HOST:PORT`` joins a cluster
started with ``ray start --head`` (without it, Ray starts on this machine alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastemaker.atomic import ensure_writable_dir, output_lock
from tastemaker.cli.common import ConfigOpt, DataDirOpt, ModelDirOpt, console, parse_params
from tastemaker.cli.progress import progress_lines
from tastemaker.reporting.values import format_metric

app = typer.Typer(help="Jobs spread over a Ray cluster.", no_args_is_help=True)

AddressOpt = Annotated[
    str | None,
    typer.Option("--ray", help="HOST:PORT of a cluster's head (`ray start --head`), or auto."),
]
WorkersOpt = Annotated[int, typer.Option(help="Ray workers (one CPU each).")]


@app.command("evaluate")
def evaluate(
    data: DataDirOpt,
    model_dir: ModelDirOpt,
    config_file: ConfigOpt = None,
    part: Annotated[str, typer.Option(help="valid, or test (score test once, at the end).")] = (
        "test"
    ),
    k: Annotated[list[int] | None, typer.Option("-k", help="Cut-offs (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json/.md.")] = None,
    workers: WorkersOpt = 2,
    address: AddressOpt = None,
) -> None:
    """`tastemaker evaluate` with the users sharded over Ray workers (same metrics)."""
    from tastemaker import config
    from tastemaker.data.dataset import Split
    from tastemaker.distributed import connect, evaluate_split_on_ray
    from tastemaker.evaluation.report import EvaluationReport
    from tastemaker.models.base import Recommender

    eval_cfg = config.section(config.read_toml(config_file), "eval", {"ks": k or None})
    out = out or model_dir / f"eval-{part}"
    ensure_writable_dir(out.parent)
    split, model = Split.load(data), Recommender.load(model_dir)
    connect(address)
    metrics = evaluate_split_on_ray(
        model, split, part, ks=eval_cfg.ks, metrics=eval_cfg.metrics,
        batch_size=eval_cfg.batch_size, workers=workers,
    )  # fmt: skip
    report = EvaluationReport.from_split(
        split, part, model.name, model.config.model_dump(mode="json"), metrics, list(eval_cfg.ks)
    )
    report.write(out)
    for name, value in metrics.items():
        console.print(f"{name}: {format_metric(name, value)}")
    console.print(f"written to {out}")


@app.command("train")
def train(
    data: DataDirOpt,
    out: Annotated[Path, typer.Option(help="Folder to save the trained model to.")],
    model: Annotated[str, typer.Option(help="A sequential model, e.g. sasrec.")] = "sasrec",
    param: Annotated[
        list[str] | None, typer.Option(help="Model hyper-parameter KEY=VALUE (repeatable).")
    ] = None,
    workers: WorkersOpt = 2,
    address: AddressOpt = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Checkpoint storage reachable by every machine (folder or URI)."),
    ] = None,
) -> None:
    """Data-parallel training (Ray Train, DDP on gloo) of a sequential model; saves it."""
    from tastemaker.config import ModelSpec
    from tastemaker.data.dataset import Split
    from tastemaker.distributed import connect, train_on_ray

    spec = ModelSpec(name=model, params=parse_params(param))
    ensure_writable_dir(out.parent)
    with output_lock(out), progress_lines(quiet=False, verbose=False):
        split = Split.load(data)
        connect(address)
        fitted = train_on_ray(split, spec, workers=workers, storage=storage)
        fitted.save(out)
    console.print(f"{fitted.name} trained on {workers} Ray workers, saved to {out}")
