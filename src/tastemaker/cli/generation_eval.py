"""``tastemaker evaluate-generation``: PMG's ablation over (user, item) pairs.

A thin shell over :mod:`tastemaker.generation.evaluation`, with the scenario flags
of ``tastemaker generate`` (:mod:`tastemaker.cli.generate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tastemaker.cli.common import console
from tastemaker.cli.generate import (
    CandidatesOpt,
    DataOpt,
    GeneratorOpt,
    LLMModelOpt,
    LLMOpt,
    PathOpt,
    PostersOpt,
    ScenarioOpt,
    ScorerOpt,
    SeedOpt,
    SoftOpt,
    StepsOpt,
    WeightsOpt,
    build_config,
    show_progress,
)


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
    config_file: ScenarioOpt = None,
    data: DataOpt = None,
    path: PathOpt = None,
    posters: PostersOpt = None,
    generator: GeneratorOpt = None,
    llm: LLMOpt = None,
    llm_model: LLMModelOpt = None,
    scorer: ScorerOpt = None,
    soft: SoftOpt = None,
    weights: WeightsOpt = None,
    candidates: CandidatesOpt = None,
    steps: StepsOpt = None,
    seed: SeedOpt = None,
) -> None:
    """PMG's ablation (item keywords only, + preference keywords, + soft tokens, both) over
    (user, item) pairs: d_p, d_t, z and similarity to history and target images per method."""
    from tastemaker.data.dataset import Split
    from tastemaker.data.splits import make_split
    from tastemaker.generation import evaluation
    from tastemaker.generation.data import load_data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    config, data_cfg = build_config(
        config_file, generator=generator, llm=llm, llm_model=llm_model, scorer=scorer,
        soft=soft, weights=weights, candidates=candidates, steps=steps, seed=seed,
        data=data, path=path, posters=posters,
    )  # fmt: skip
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
    result = evaluation.evaluate_generation(pipe, split, todo, chosen, progress=show_progress())
    result.write(out)
    header, rows = result.table_rows()
    table = Table(*header, title=f"PMG ablation over {len(result.pairs)} pairs")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"written to {out} (page: {out / 'index.html'})")
