"""``tastemaker evaluate-generation``: PMG's ablation over (user, item) pairs.

A thin shell over :mod:`tastemaker.generation.evaluation`, with the scenario flags
of ``tastemaker generate`` (:mod:`tastemaker.cli.scenario_flags`). ``--judge`` names a
second scorer, independent of the selector (``--scorer``), whose scores of each
chosen image are reported beside the selector's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.cli.common import console
from tastemaker.cli.generation_output import show_progress
from tastemaker.cli.scenario_flags import ScenarioFlags, scenario_flags
from tastemaker.errors import ConfigError


@scenario_flags()
def evaluate_generation(
    out: Annotated[Path, typer.Option(help="Folder for table.md/.json, images, page.")] = Path(
        "generation-eval"
    ),
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help="CSV with user_id,item_id columns.")
    ] = None,
    n_pairs: Annotated[
        int, typer.Option("--n-pairs", help="Without --pairs: this many liked test pairs.")
    ] = 10,
    methods: Annotated[
        str | None,
        typer.Option(help="Comma-separated: none,hard,soft,both (default: all that apply)."),
    ] = None,
    pair_seed: Annotated[int, typer.Option(help="Seed of the sampled pairs.")] = 0,
    judge: Annotated[
        str | None,
        typer.Option(
            help="Independent judge: clip:ID_OR_FOLDER or aligned:FOLDER (other weights than "
            "--scorer, e.g. a space from `tastemaker generate train-judge`)."
        ),
    ] = None,
    flags: ScenarioFlags = ScenarioFlags(),
) -> None:
    """PMG's ablation (item keywords only, + preference keywords, + soft tokens, both) over
    (user, item) pairs: d_p, d_t, z and similarity to history and target images per method."""
    from tastemaker.data.dataset import Split
    from tastemaker.data.splits import make_split
    from tastemaker.generation import evaluation
    from tastemaker.generation.data import load_data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
    from tastemaker.generation.scorers import ScorerConfig, create_scorer

    config, data_cfg = flags.build()
    judge_cfg = ScorerConfig.parse(judge, device=config.scorer.device) if judge else None
    if judge_cfg is not None and (judge_cfg.kind, judge_cfg.model) == (
        config.scorer.kind,
        config.scorer.model,
    ):
        raise ConfigError(
            f"the judge {judge} is the selector itself",
            "give --judge another model than --scorer (its scores would be the selection's own)",
        )
    loaded = load_data(data_cfg)
    split = loaded if isinstance(loaded, Split) else make_split(loaded, "loo")
    todo = (
        evaluation.read_pairs(pairs)
        if pairs is not None
        else evaluation.sample_pairs(
            split, n_pairs, seed=pair_seed, min_rating=config.history.min_rating
        )
    )
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    pipe = PersonalizedGenerationPipeline(config)
    for u, i in todo:
        pipe.describe(split, u, i)
    pipe.load()
    judge_scorer = create_scorer(judge_cfg) if judge_cfg is not None else None
    result = evaluation.evaluate_generation(
        pipe, split, todo, chosen, judge=judge_scorer, progress=show_progress()
    )
    result.write(out)
    header, rows = result.table_rows()
    table = Table(*header, title=f"PMG ablation over {len(result.pairs)} pairs")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"written to {out} (page: {out / 'index.html'})")
