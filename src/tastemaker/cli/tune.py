"""``tastemaker tune`` (hyper-parameter search) and ``tastemaker report`` (training curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.cli.common import ConfigOpt, DataDirOpt, console, parse_params
from tastemaker.cli.progress import progress_lines

# optuna, torch and the models are imported inside each command (tests/test_cli_imports.py).


def tune(
    data: DataDirOpt,
    out: Annotated[Path, typer.Option(help="Folder for trials.csv/.md/.png and best.json.")],
    config_file: ConfigOpt = None,
    model: Annotated[str | None, typer.Option(help="Registered model name, e.g. bpr.")] = None,
    space: Annotated[
        list[str] | None,
        typer.Option(
            help="Searched hyper-parameter NAME=SPEC (repeatable): log:1e-4..1e-2, "
            "choice:32,64,128, 1e-3..1e-1 or int:1..3."
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Fixed hyper-parameter KEY=VALUE (repeatable).")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="At most this many trials.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Start no trial after this many seconds.")
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric to maximise.")] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe (seeded) or grid.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the sampler.")] = None,
    save_best: Annotated[
        bool | None, typer.Option("--save-best", help="Save the best model to OUT/best-model.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Show only the final result.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also show every trial's per-epoch lines.")
    ] = False,
) -> None:
    """Search hyper-parameters, each trial selected on validation only (test is never read).

    Content models (vbpr, bm3, ...) read item features encoded once, as the \\[features]
    table of --config says (the same table `train` reads), and shared by every trial.
    One line per finished trial goes to stderr (piped or not).
    """
    from tastemaker import config, tuning
    from tastemaker.data.dataset import Split

    tables = config.read_toml(config_file)
    spec = config.section(tables, "model", {"name": model})
    flags = {
        "trials": trials,
        "timeout": timeout,
        "metric": metric,
        "sampler": sampler,
        "seed": seed,
        "save_best": save_best,
    }
    values = {**tables.get("tune", {}), **{k: v for k, v in flags.items() if v is not None}}
    cfg = config.validate(tuning.TuneConfig, values, where="[tune]")
    searched = {**tuning.parse_space(cfg.space), **tuning.parse_space(space or [])}
    with progress_lines(quiet, verbose, epochs=False):
        result = tuning.tune(
            Split.load(data),
            spec.name,
            searched,
            params={**spec.params, **parse_params(param)},
            n_trials=cfg.trials,
            timeout_s=cfg.timeout,
            metric=cfg.metric,
            sampler=cfg.sampler,
            seed=cfg.seed,
            out=out,
            save_best=cfg.save_best,
            features=config.section(tables, "features"),
        )
    table = Table("trial", f"valid {result.metric}", "epochs", "seconds", "params")
    for t in result.top(5):
        table.add_row(
            str(t.number),
            f"{t.value:.4f}",
            str(t.epochs or "-"),
            f"{t.seconds:.1f}",
            tuning.format_params(t.params),
        )
    console.print(table)
    failed = sum(t.value is None for t in result.trials)
    console.print(
        f"{len(result.trials)} trials ({failed} failed); best trial {result.best.number}; "
        f"written to {out}"
    )


def report(
    model_dir: Annotated[
        list[Path],
        typer.Option("--model-dir", help="Folder written by `train` (repeat to overlay curves)."),
    ],
    out: Annotated[
        Path | None, typer.Option(help="HTML page to write (default MODEL_DIR/training.html).")
    ] = None,
) -> None:
    """Training curves of saved models: a PNG, an HTML page and a summary."""
    from tastemaker.evaluation.training_curves import training_report
    from tastemaker.models.base import Recommender

    out = out or model_dir[0] / "training.html"
    names = [d.name for d in model_dir]
    labels = names if len(set(names)) == len(names) else [str(d) for d in model_dir]
    models = {label: Recommender.load(d) for label, d in zip(labels, model_dir, strict=True)}
    summaries = training_report(models, out)
    table = Table("model folder", "model", "epochs", "best epoch", "best metric", "s/epoch")
    for s in summaries:
        best = "-" if s.best_value is None else f"{s.metric} {s.best_value:.4f}"
        table.add_row(
            s.label, s.model, str(s.epochs), str(s.best_epoch), best, f"{s.mean_seconds:.2f}"
        )
    console.print(table)
    console.print(f"written to {out} and {out.with_suffix('.png')}")
