"""``tastemaker datasets`` and ``tastemaker data prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.atomic import ensure_writable_dir
from tastemaker.cli.common import ConfigOpt, console

app = typer.Typer(help="Prepare data sets.", no_args_is_help=True)


def datasets() -> None:
    """List the known data sets and where each is available locally."""
    from tastemaker.data.sources.registry import list_datasets

    statuses = list_datasets()
    if not console.is_terminal:
        # Piped or redirected: one tab-separated line per data set, so no URL or path is
        # wrapped or cut at the 80 columns Rich assumes without a terminal.
        for row in [("name", "description", "local copy")] + [
            (s.name, s.description, s.location) for s in statuses
        ]:
            typer.echo("\t".join(row))
        return
    table = Table("name", "description")
    table.add_column("local copy", overflow="fold")
    for status in statuses:
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
    drop_invalid: Annotated[
        bool, typer.Option(help="Drop NaN/inf ratings and timestamps (recorded), not fail.")
    ] = False,
    sep: Annotated[
        str | None, typer.Option(help="Delimiter of the CSV files, e.g. ';' or tab (default ,).")
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(help="Feedback file of tastemaker serve: its events are appended."),
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Your own interaction table (CSV, TSV, Parquet).")
    ] = None,
    user_col: Annotated[str | None, typer.Option(help="--table: user ID column.")] = None,
    item_col: Annotated[str | None, typer.Option(help="--table: item ID column.")] = None,
    rating_col: Annotated[str | None, typer.Option(help="--table: rating column.")] = None,
    timestamp_col: Annotated[
        str | None, typer.Option(help="--table: time column (Unix seconds or ISO 8601).")
    ] = None,
    items: Annotated[
        Path | None, typer.Option(help="--table: an item table (CSV, TSV, Parquet).")
    ] = None,
    item_id_col: Annotated[
        str | None, typer.Option(help="--items: its item ID column (default --item-col).")
    ] = None,
    item_cols: Annotated[
        str | None,
        typer.Option(
            help="--items: columns kept (default all), COLUMN or COLUMN:title|image|list, "
            "e.g. name:title,genres:list,year."
        ),
    ] = None,
) -> None:
    """Load, clean and split a data set, or your own table, into a folder (Parquet +
    manifest.json)."""
    from tastemaker import config, experiment

    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {
        "dataset": dataset, "path": path, "posters": posters, "threshold": threshold,
        "min_user": min_user, "min_item": min_item, "dedupe": dedupe,
        "drop_invalid": drop_invalid or None, "sep": sep, "table": table,
        "user_col": user_col, "item_col": item_col, "rating_col": rating_col,
        "timestamp_col": timestamp_col, "items": items, "item_id_col": item_id_col,
        "item_cols": item_cols,
    })  # fmt: skip
    split_cfg = config.section(tables, "split", {"kind": split, "ratios": ratios, "seed": seed})
    ensure_writable_dir(out.parent)
    result = experiment.prepare(data_cfg, split_cfg, events)
    result.save(out)
    console.print(f"{result!r}\nwritten to {out}")
