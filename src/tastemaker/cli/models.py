"""``tastemaker train``, ``evaluate`` and ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.atomic import ensure_writable_dir, output_lock
from tastemaker.cli.common import ConfigOpt, DataDirOpt, ModelDirOpt, console, parse_params
from tastemaker.cli.progress import interrupt_on_signals, progress_lines
from tastemaker.errors import ConfigError
from tastemaker.reporting.values import format_metric

# torch, polars and the models are imported inside each command, so that `--help` and
# the commands that do not train start without them (tests/test_cli_imports.py).


def train(
    data: DataDirOpt,
    out: Annotated[Path, typer.Option(help="Folder to save the trained model to.")],
    config_file: ConfigOpt = None,
    model: Annotated[str | None, typer.Option(help="Registered model name, e.g. bpr.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Model hyper-parameter KEY=VALUE (repeatable).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run saved in OUT (interrupted, or out of epochs: raise "
            "--param epochs=N) with its settings, split, optimiser and random state.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Show only the final result.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Also show per-epoch timings and patience.")
    ] = False,
) -> None:
    """Train a model on the train part, early-stopping on validation; save it.

    One line per epoch goes to stderr (piped or not). Ctrl-C or SIGTERM saves the best
    model so far to OUT (exit code 130 or 143); --resume continues it.
    """
    from tastemaker import config, experiment
    from tastemaker.data.dataset import Split
    from tastemaker.models.base import TrainingInterrupted

    tables = config.read_toml(config_file)
    spec = config.section(tables, "model", {"name": model})
    spec = spec.model_copy(update={"params": {**spec.params, **parse_params(param)}})
    if resume and model is None and not param and "model" not in tables:
        spec = None  # resume the saved run as it was
    ensure_writable_dir(out.parent)
    # The lock refuses a folder holding the user's files before training, and a second run.
    with output_lock(out), progress_lines(quiet, verbose), interrupt_on_signals() as caught:
        split = Split.load(data)
        features = config.section(tables, "features")
        try:
            fitted = experiment.train(split, spec, features, resume=out if resume else None)
        except TrainingInterrupted as exc:
            exc.model.save(out)
            typer.echo(
                f"{caught.name}: stopped after epoch {exc.epoch}; the best model so far "
                f"(epoch {exc.model.best_epoch}) is saved to {out}; continue with --resume",
                err=True,
            )
            raise typer.Exit(caught.exit_code) from None
        except KeyboardInterrupt:
            typer.echo(f"{caught.name}: stopped before an epoch ended; nothing saved", err=True)
            raise typer.Exit(caught.exit_code) from None
        fitted.save(out)
        if len(split.valid):
            report = experiment.evaluate(fitted, split, "valid", config.section(tables, "eval"))
            report.write(out)
            _print_metrics(report.metrics, "validation")
    console.print(f"model saved to {out}")


def evaluate(
    data: DataDirOpt,
    model_dir: ModelDirOpt,
    config_file: ConfigOpt = None,
    part: Annotated[
        str, typer.Option(help="valid, or test (score test once, at the end).")
    ] = "test",
    k: Annotated[list[int] | None, typer.Option("-k", help="Cut-offs (repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json/.md.")] = None,
) -> None:
    """Full-ranking evaluation of a saved model; writes metrics.json and metrics.md."""
    from tastemaker import config, experiment
    from tastemaker.data.dataset import Split
    from tastemaker.models.base import Recommender

    tables = config.read_toml(config_file)
    eval_cfg = config.section(tables, "eval", {"ks": k or None})
    out = out or model_dir / f"eval-{part}"
    ensure_writable_dir(out.parent)
    split = Split.load(data)
    report = experiment.evaluate(Recommender.load(model_dir), split, part, eval_cfg)
    report.write(out)
    _print_metrics(report.metrics, part)
    console.print(f"written to {out}")


def recommend(
    data: DataDirOpt,
    model_dir: ModelDirOpt,
    user: Annotated[
        list[str] | None, typer.Option("--user", help="Raw user ID (repeatable).")
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(
            "--items",
            help="A new user's item IDs, comma-separated, oldest first: recommendations "
            "without retraining (fold-in).",
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
) -> None:
    """Top-k unseen items for users (or for a new user given by --items), with titles."""
    import polars as pl

    from tastemaker import experiment
    from tastemaker.data.dataset import Split
    from tastemaker.models.base import Recommender

    if (user is None) == (items is None):
        raise ConfigError(
            "recommend needs either --user (known users) or --items (a new user's items)",
            "e.g. --user 196, or --items 50,172,181",
        )
    split = Split.load(data)
    model = Recommender.load(model_dir)
    if items is not None:
        wanted = [i.strip() for i in items.split(",") if i.strip()]
        recs = experiment.recommend_new_user(model, split, wanted, k)
        recs = recs.with_columns(user_id=pl.lit("(new user)"))
    else:
        recs = experiment.recommend(model, split, user or [], k)
    table = Table("user", "rank", "item", "title", "score")
    for row in recs.iter_rows(named=True):
        table.add_row(
            row["user_id"], str(row["rank"]), row["item_id"], row["title"], f"{row['score']:.4f}"
        )
    console.print(table)


def _print_metrics(metrics: dict[str, float], part: str) -> None:
    table = Table("metric", part)
    for name, value in metrics.items():
        table.add_row(name, format_metric(name, value))
    console.print(table)
