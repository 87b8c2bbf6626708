"""``tastemaker demo``: the main job on the embedded data.

The demo (models, torch) is imported inside the command, so ``--help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tastemaker.cli.common import ConfigOpt, console

if TYPE_CHECKING:
    from tastemaker.demo import DemoResult

# tastemaker.demo.DEMO_MODELS, spelled out so that the option's default needs no
# import of the demo (torch); tests/test_cli_imports.py checks that the two agree.
DEFAULT_MODELS = "most_popular,itemknn,bpr,vbpr"


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report, models and split.")] = Path(
        "tastemaker-demo"
    ),
    config_file: ConfigOpt = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (default: embedded).")] = None,
    posters: Annotated[
        Path | None, typer.Option(help="Folder of <item_id>.jpg posters (adds image features).")
    ] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated registered model names.")
    ] = DEFAULT_MODELS,
    users: Annotated[int, typer.Option(help="Users to show recommendations for.")] = 3,
) -> None:
    """Prepare the embedded data, encode item text (and posters), train the baselines and a
    multimodal model, print a leaderboard, a cold-start line and recommendations."""
    from tastemaker import config
    from tastemaker.cli.progress import progress_lines
    from tastemaker.demo import SHOWN_METRICS, run_demo
    from tastemaker.reporting.values import shown

    start = time.perf_counter()
    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {"dataset": dataset, "posters": posters})
    split_cfg = config.section(tables, "split")
    features = config.section(tables, "features")
    names = [m.strip() for m in models.split(",") if m.strip()]
    with progress_lines(quiet=False, verbose=False):  # each model's epochs, piped or not
        result = run_demo(
            out, data=data_cfg, split=split_cfg, models=names, features=features, n_users=users
        )

    console.print(f"\n[bold]{result.split!r}[/bold]")
    board = Table("model", *SHOWN_METRICS, title="Test leaderboard (scored once, at the end)")
    for report in sorted(result.reports, key=lambda r: -r.metrics.get("ndcg@10", 0.0)):
        board.add_row(report.model, *(shown(report.metrics.get(m)) for m in SHOWN_METRICS))
    console.print(board)
    _print_cold_start(result)
    for user, lists in result.samples.items():
        table = Table(*lists, title=f"user {user}")
        for row in zip(*lists.values(), strict=False):
            table.add_row(*row)
        console.print(table)
    _print_generation(result.generation)
    console.print(
        f"report: {out / 'report.html'} · leaderboard: {out / 'leaderboard.md'} · "
        f"{time.perf_counter() - start:.0f} s"
    )


def _print_cold_start(result: DemoResult) -> None:
    """One line: each model's Recall@20 / NDCG@20 on test items never seen in training."""
    from tastemaker.evaluation.cold_start import chance_recall

    cold = [r for r in result.cold_start if "cold/recall@20" in r.metrics]
    if not cold:
        return
    n_items = cold[0].metrics["cold/n_items"]
    scores = " · ".join(
        f"{r.model} {r.metrics['cold/recall@20']:.3f} / {r.metrics['cold/ndcg@20']:.3f}"
        for r in cold
    )
    console.print(
        f"[bold]cold start[/bold] ({n_items:.0f} test items without training interactions, "
        f"ranked among themselves; Recall@20 / NDCG@20, chance Recall@20 "
        f"{chance_recall(20, n_items):.3f}): {scores}"
    )


def _print_generation(info: dict[str, Any]) -> None:
    """The personalized-generation step: whose history, which keywords, which prompt."""
    console.print(
        f"\n[bold]personalized generation[/bold] for user {info['user_id']} and "
        f"{info['item_title']!r} ({info['extractor']} keywords)"
    )
    console.print("  liked: " + "; ".join(info["history"][:5]))
    console.print("  preference keywords: " + ", ".join(info["preference_keywords"]))
    console.print("  item keywords: " + ", ".join(info["item_keywords"]))
    console.print(f"  prompt: {info['prompt']}")
    image = info["image"] or "no generator configured: add one with `tastemaker generate`"
    console.print(f"  image: {image} · page: {info['page']}")
