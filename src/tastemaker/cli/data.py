"""``tastemaker datasets`` and ``tastemaker data prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker import config, experiment
from tastemaker.atomic import ensure_writable_dir
from tastemaker.cli.common import ConfigOpt, console
from tastemaker.data.sources.registry import list_datasets

app = typer.Typer(help="Prepare data sets.", no_args_is_help=True)


def datasets() -> None:
    """List the known data sets and where each is available locally."""
    table = Table("name", "description", "local copy")
    for status in list_datasets():
        table.add_row(status.name, status.description, status.location)
    console.print(table)


@app.command("prepare")
def prepare(
    out: Annotated[Path, typer.Option(help="Folder to write the split to.")],
    config_file: ConfigOpt = None,
    dataset: Annotated[str | None, typer.Option(help="Known data set name or folder.")] = None,
    path: Annotated[Path | None, typer.Option(help="Local folder with the raw files.")] = None,
    posters: Annotated[Path | None, typer.Option(help="Folder of <item_id>.jpg.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Ratings >= this are kept.")] = None,
    min_user: Annotated[int | None, typer.Option(help="k-core: min interactions/user.")] = None,
    min_item: Annotated[int | None, typer.Option(help="k-core: min interactions/item.")] = None,
    dedupe: Annotated[str | None, typer.Option(help="first, last or none.")] = None,
    split: Annotated[str | None, typer.Option(help="loo, ratio, temporal, cold_start.")] = None,
    ratios: Annotated[str | None, typer.Option(help="train:valid:test, e.g. 8:1:1.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of random splits.")] = None,
) -> None:
    """Load, clean and split a data set into a folder (Parquet + manifest.json)."""
    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {
        "dataset": dataset, "path": path, "posters": posters, "threshold": threshold,
        "min_user": min_user, "min_item": min_item, "dedupe": dedupe,
    })  # fmt: skip
    split_cfg = config.section(tables, "split", {"kind": split, "ratios": ratios, "seed": seed})
    ensure_writable_dir(out.parent)
    result = experiment.prepare(data_cfg, split_cfg)
    result.save(out)
    console.print(f"{result!r}\nwritten to {out}")
