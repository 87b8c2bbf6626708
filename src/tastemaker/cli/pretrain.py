"""``tastemaker pretrain``: multimodal pretraining commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.atomic import ensure_writable_dir
from tastemaker.cli.common import ConfigOpt, console, parse_params

app = typer.Typer(help="Multimodal pretraining on a catalog's own content.", no_args_is_help=True)


@app.command("align")
def align(
    out: Annotated[Path, typer.Option(help="Folder for the aligned space, log, plot, metrics.")],
    config_file: ConfigOpt = None,
    data: Annotated[str | None, typer.Option(help="Known data set name or folder.")] = None,
    path: Annotated[Path | None, typer.Option(help="Local folder with the raw files.")] = None,
    posters: Annotated[Path | None, typer.Option(help="Folder of <item_id>.jpg.")] = None,
    store: Annotated[
        Path | None, typer.Option(help="Embedding cache (default $TASTEMAKER_HOME/embeddings).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="At most this many epochs.")] = None,
    dim: Annotated[int | None, typer.Option(help="Width of the shared space.")] = None,
    hidden: Annotated[
        int | None, typer.Option(help="Hidden width of the heads (0: linear).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per batch.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    valid_fraction: Annotated[float | None, typer.Option(help="Items for early stopping.")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Items held out to report.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split and the heads.")] = None,
) -> None:
    """Align image and text item features with a symmetric InfoNCE loss (CLIP-style heads)."""
    from tastemaker import config, experiment
    from tastemaker.data.sources.registry import load_configured
    from tastemaker.pretrain.alignment import AlignmentConfig, metric_table, train_alignment

    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {"dataset": data, "path": path, "posters": posters})
    features_cfg = config.section(tables, "features", {"store": store})
    flags = {
        "epochs": epochs, "dim": dim, "hidden": hidden, "batch_size": batch_size,
        "learning_rate": learning_rate, "valid_fraction": valid_fraction,
        "test_fraction": test_fraction, "seed": seed,
    }  # fmt: skip
    values = {**tables.get("align", {}), **{k: v for k, v in flags.items() if v is not None}}
    align_cfg = config.validate(AlignmentConfig, values, where="[align]")
    ensure_writable_dir(out.parent)
    catalog = load_configured(data_cfg).catalog
    progress = sys.stderr.isatty()
    features = experiment.item_features(catalog, ("image", "text"), features_cfg, progress=progress)
    space = train_alignment(features["image"], features["text"], align_cfg, progress=progress)
    space.save(out)

    header, rows = metric_table(space.metrics)
    table = Table(*header, title=f"Held-out retrieval ({space.n_test} items)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"kept epoch {space.best_epoch} of {len(space.log)} ({space.train_seconds:.1f} s, "
        f"temperature {space.temperature:.3f}); written to {out}"
    )


@app.command("unisrec")
def unisrec(
    out: Annotated[Path, typer.Option(help="Folder for the pretrained checkpoint.")],
    config_file: ConfigOpt = None,
    data: Annotated[str | None, typer.Option(help="Known data set name or folder.")] = None,
    path: Annotated[Path | None, typer.Option(help="Local folder with the raw files.")] = None,
    store: Annotated[
        Path | None, typer.Option(help="Embedding cache (default $TASTEMAKER_HOME/embeddings).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Item text template, e.g. '{title}. Genres: {genres}'.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Pretraining setting KEY=VALUE (repeatable), e.g. epochs=20."),
    ] = None,
) -> None:
    """Pretrain UniSRec on a data set's sequences (leave-one-out unless \\[split] says
    otherwise; early-stopped on validation), for `train --model unisrec --param pretrained=OUT`."""
    from tastemaker import config, experiment
    from tastemaker.models.config import validate_config
    from tastemaker.pretrain.unisrec import UniSRecPretrainConfig, pretrain_unisrec

    tables = config.read_toml(config_file)
    data_cfg = config.section(tables, "data", {"dataset": data, "path": path})
    split_cfg = config.validate(config.SplitConfig, {"kind": "loo", **tables.get("split", {})})
    features_cfg = config.section(tables, "features", {"store": store, "template": template})
    settings = validate_config(UniSRecPretrainConfig, "unisrec pretraining", parse_params(param))
    ensure_writable_dir(out.parent)
    split = experiment.prepare(data_cfg, split_cfg)
    progress = sys.stderr.isatty()
    features = experiment.item_features(
        split.catalog, settings.modalities, features_cfg, progress=progress
    )
    checkpoint = pretrain_unisrec(split, features, settings)  # type: ignore[arg-type]
    checkpoint.save(out)
    log = checkpoint.training_log
    best = max((row.get("ndcg@10") or 0.0 for row in log), default=0.0)
    console.print(
        f"kept epoch {checkpoint.best_epoch} of {len(log)} (valid NDCG@10 {best:.4f}); "
        f"written to {out}"
    )
