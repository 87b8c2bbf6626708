"""``tastemaker demo``: the main job on the embedded data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker import config
from tastemaker.cli.common import ConfigOpt, console
from tastemaker.demo import DEMO_MODELS, SHOWN_METRICS, run_demo


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report, models and split.")] = Path(
        "tastemaker-demo"
    ),
    config_file: ConfigOpt = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (default: embedded).")] = None,
    posters: Annotated[Path | None, typer.Option(help="Folder of <item_id>.jpg.")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated registered model names.")] = ",".join(
        DEMO_MODELS
    ),
    users: Annotated[int, typer.Option(help="Users to show recommendations for.")] = 3,
) -> None:
    """Prepare the embedded data, train the baselines, print a leaderboard and recommendations."""
    start = time.perf_counter()
    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {"dataset": dataset, "posters": posters})
    split_cfg = config.section(tables, "split")
    names = [m.strip() for m in models.split(",") if m.strip()]
    result = run_demo(out, data=data_cfg, split=split_cfg, models=names, n_users=users)

    console.print(f"\n[bold]{result.split!r}[/bold]")
    board = Table("model", *SHOWN_METRICS, title="Test leaderboard (scored once, at the end)")
    for report in sorted(result.reports, key=lambda r: -r.metrics.get("ndcg@10", 0.0)):
        board.add_row(report.model, *(f"{report.metrics.get(m, 0.0):.4f}" for m in SHOWN_METRICS))
    console.print(board)
    for user, lists in result.samples.items():
        table = Table(*lists, title=f"user {user}")
        for row in zip(*lists.values(), strict=False):
            table.add_row(*row)
        console.print(table)
    console.print(
        f"report: {out / 'report.html'} · leaderboard: {out / 'leaderboard.md'} · "
        f"{time.perf_counter() - start:.0f} s"
    )
