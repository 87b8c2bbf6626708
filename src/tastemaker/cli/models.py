"""``tastemaker train``, ``evaluate`` and ``recommend``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.atomic import check_replaceable, ensure_writable_dir, output_lock
from tastemaker.cli.common import ConfigOpt, DataDirOpt, ModelDirOpt, console, parse_params
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
) -> None:
    """Train a model on the train part, early-stopping on validation; save it."""
    from tastemaker import config, experiment
    from tastemaker.data.dataset import Split

    tables = config.read_toml(config_file)
    spec = config.section(tables, "model", {"name": model})
    spec = spec.model_copy(update={"params": {**spec.params, **parse_params(param)}})
    ensure_writable_dir(out.parent)
    check_replaceable(out)  # a folder with the user's files: refused before training
    with output_lock(out):  # and no second run writes it meanwhile
        split = Split.load(data)
        fitted = experiment.train(split, spec, config.section(tables, "features"))
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
    user: Annotated[list[str], typer.Option("--user", help="Raw user ID (repeatable).")],
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
) -> None:
    """Top-k unseen items for users, shown with titles."""
    from tastemaker import experiment
    from tastemaker.data.dataset import Split
    from tastemaker.models.base import Recommender

    split = Split.load(data)
    recs = experiment.recommend(Recommender.load(model_dir), split, user, k)
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
