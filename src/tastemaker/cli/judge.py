"""``tastemaker generate train-judge``: the independent judge's aligned space from the command line.

A thin shell over :func:`tastemaker.generation.judge.judge_space`: the selector's
space (``--scorer aligned:FOLDER``) names the items it trained on, and the judge
learns on the others with another seed, for ``evaluate-generation --judge
aligned:OUT``. The item features come through the embedding store, as for
``tastemaker pretrain align``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tastemaker.atomic import ensure_writable_dir
from tastemaker.cli.common import console
from tastemaker.cli.scenario_flags import DataOpt, PathOpt, PostersOpt
from tastemaker.generation.judge import JUDGE_SEED


def train_judge(
    selector: Annotated[
        Path, typer.Option(help="The selector's aligned space (from `tastemaker pretrain align`).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the judge's aligned space.")],
    data: DataOpt = None,
    path: PathOpt = None,
    posters: PostersOpt = None,
    store: Annotated[
        Path | None, typer.Option(help="Embedding cache (default $TASTEMAKER_HOME/embeddings).")
    ] = None,
    seed: Annotated[int, typer.Option(help="The judge's seed (not the selector's).")] = JUDGE_SEED,
    epochs: Annotated[
        int | None, typer.Option(help="At most this many epochs (default: the selector's).")
    ] = None,
) -> None:
    """Train the judge's aligned space on the items the selector never trained on, with
    another seed: scores of chosen images that are not the selection's own."""
    from tastemaker import experiment
    from tastemaker.config import DataConfig, FeaturesConfig, validate
    from tastemaker.data.sources.registry import load_configured
    from tastemaker.generation.judge import judge_space
    from tastemaker.pretrain.alignment import AlignedSpace

    chosen = AlignedSpace.load(selector)  # a bad folder fails before any encoding
    flags = {"dataset": data, "path": path, "posters": posters}
    data_cfg = validate(DataConfig, {k: v for k, v in flags.items() if v is not None}, "data")
    ensure_writable_dir(out.parent)
    catalog = load_configured(data_cfg).catalog
    progress = sys.stderr.isatty()
    features = experiment.item_features(
        catalog, ("image", "text"), FeaturesConfig(store=store), progress=progress
    )
    settings = {"seed": seed} | ({"epochs": epochs} if epochs is not None else {})
    judge = judge_space(features["image"], features["text"], chosen, settings, progress=progress)
    judge.save(out)
    console.print(
        f"judge space: seed {judge.config.seed}, "
        f"{sum(len(p) for p in judge.split.values())} items the selector did not train on, "
        f"kept epoch {judge.best_epoch} of {len(judge.log)}; written to {out} "
        f"(evaluate-generation --judge aligned:{out})",
        soft_wrap=True,  # a path to copy is never broken across lines
    )
