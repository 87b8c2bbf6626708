"""``tastemaker generate`` (one user, ``batch``, ``train-soft``) and the flags they share
with ``tastemaker evaluate-generation`` (:mod:`tastemaker.cli.generation_eval`).

Thin shells over :mod:`tastemaker.generation.pipeline` and
:mod:`tastemaker.generation.soft_training`: flags overlay a scenario file
(a preset such as ``movies``, or a TOML file), every input is checked (user, liked items, item
text, models) before anything is generated, and output folders are written
atomically, so a bad input leaves none behind. The pipeline's modules (torch,
diffusers) are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastemaker.cli.common import console
from tastemaker.cli.generation_output import print_result, show_progress, write_batch
from tastemaker.cli.generator_flags import (
    DeviceOpt,
    DtypeOpt,
    OffloadOpt,
    SchedulerOpt,
    SlicingOpt,
    TilingOpt,
    generator_flags,
)
from tastemaker.cli.progress import progress_lines
from tastemaker.errors import ConfigError

if TYPE_CHECKING:
    from tastemaker.config import DataConfig
    from tastemaker.generation.scenario import PipelineConfig

app = typer.Typer(
    help="Generate images for a user and an item (PMG): history → keywords → images → best by z.",
)

ScenarioOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Scenario: a preset (movies, products, stickers) or TOML file; flags win."
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data", help="Known data set, raw folder, or a folder saved by tastemaker (split)."
    ),
]
PathOpt = Annotated[Path | None, typer.Option(help="Local folder with the raw files.")]
PostersOpt = Annotated[Path | None, typer.Option(help="Folder of <item_id>.jpg images.")]
GeneratorOpt = Annotated[
    str | None,
    typer.Option(
        help="Diffusers model id or folder (drawn at its native size), 'tiny' (random, "
        "offline), or 'none' (prompts only)."
    ),
]
LLMOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="Keyword LLM: HF id, folder or .gguf; an OpenAI-compatible base URL; or "
        "'statistical' (no LLM).",
    ),
]
LLMModelOpt = Annotated[
    str | None, typer.Option("--llm-model", help="Model name the server knows (with a URL).")
]
ScorerOpt = Annotated[
    str | None, typer.Option(help="clip:ID_OR_FOLDER, aligned:FOLDER, or none (unranked).")
]
SoftOpt = Annotated[
    Path | None, typer.Option("--soft", help="Trained soft-preference checkpoint folder.")
]
WeightsOpt = Annotated[
    list[str] | None,
    typer.Option("--weights", help="w_p:w_t, repeatable or comma-separated, e.g. 1:3,1:1."),
]
CandidatesOpt = Annotated[
    int | None, typer.Option("--candidates", help="Images (seeds) per weight.")
]
StepsOpt = Annotated[int | None, typer.Option("--steps", help="Denoising steps.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="First seed.")]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        help="Named settings under the flags: default, or pmg-paper (PMG's release: history "
        "order and length, repeated keywords, CLIP-logit z; docs/pmg_presets.md)."
    ),
]
BatchOutOpt = Annotated[Path, typer.Option(help="Folder with one subfolder per pair.")]
MethodOpt = Annotated[
    str | None,
    typer.Option(help="none, hard, soft or both (default: both with --soft, else hard)."),
]


def build_config(
    config_file: Path | None,
    *,
    generator: str | None = None,
    llm: str | None = None,
    llm_model: str | None = None,
    scorer: str | None = None,
    soft: Path | None = None,
    weights: list[str] | None = None,
    candidates: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    data: str | None = None,
    path: Path | None = None,
    posters: Path | None = None,
    preset: str | None = None,
    hardware: dict[str, Any] | None = None,
) -> tuple[PipelineConfig, DataConfig]:
    """The scenario file (or the defaults), the preset laid over it, then the flags given
    (``hardware``: generator fields, from :func:`generator_flags`)."""
    from tastemaker.config import DataConfig, validate
    from tastemaker.generation.presets import apply_preset
    from tastemaker.generation.scenario import PipelineConfig, load_scenario
    from tastemaker.generation.scorers import ScorerConfig

    scenario = load_scenario(config_file) if config_file else None
    base = apply_preset(scenario.pipeline if scenario else PipelineConfig(), preset)
    values: dict[str, Any] = base.model_dump()
    if generator == "none":
        values["generator"] = None
    else:
        flags = {"num_inference_steps": steps, "seed": seed, "num_images": candidates}
        given = {k: v for k, v in flags.items() if v is not None} | (hardware or {})
        if generator:  # another model draws at its own native size
            given.update(model=generator, height=None, width=None)
        if given:
            values["generator"] = {**(values["generator"] or {}), **given}
    if llm == "statistical":
        values["keywords"]["extractor"] = "statistical"
    elif llm is not None:
        values["keywords"]["extractor"] = "llm"
        remote = llm.startswith(("http://", "https://"))
        values["llm"] = {
            **values["llm"],
            "backend": "openai" if remote else "hf",
            "base_url": llm if remote else None,
            "model": (llm_model or values["llm"]["model"]) if remote else llm,
            "gguf_file": None,
        }
    if scorer is not None:
        kept = base.scorer.model_dump(include={"alpha", "device", "similarity"})
        values["scorer"] = ScorerConfig.parse(scorer, **kept).model_dump()
    if soft is not None:
        values["soft"]["checkpoint"] = soft
    if weights:
        values["weights"] = [w for flag in weights for w in flag.split(",") if w.strip()]
    pipeline = validate(PipelineConfig, values, where="generation config")
    data_values = scenario.data.model_dump() if scenario and scenario.data else {}
    flags = {"dataset": data, "path": path, "posters": posters}
    data_values.update({k: v for k, v in flags.items() if v is not None})
    return pipeline, validate(DataConfig, data_values, where="[data]")


def parse_turns(turns: list[str]) -> list[tuple[str, str]]:
    """``["Alice: hi", "Bob: hello"]`` as (speaker, text); no speaker: the user's turn."""
    parsed = []
    for turn in turns:
        speaker, sep, text = turn.partition(":")
        parsed.append((speaker.strip(), text.strip()) if sep else ("User", turn.strip()))
    return parsed


@app.callback(invoke_without_command=True)
def generate(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Raw user ID.")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Raw target item ID.")] = None,
    turn: Annotated[
        list[str] | None,
        typer.Option("--turn", help="Target conversation turn 'Speaker: text' (stickers)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for images, result.json, page.")] = None,
    config_file: ScenarioOpt = None,
    preset: PresetOpt = None,
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
    method: MethodOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    attention_slicing: SlicingOpt = None,
    vae_tiling: TilingOpt = None,
    cpu_offload: OffloadOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Images for one user and one item (or conversation), over a grid of weights; the best
    by z, and a page with the history, keywords, prompts and every candidate's scores."""
    if ctx.invoked_subcommand is not None:
        return
    from tastemaker.generation.data import load_data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    if user is None or (item is None and not turn):
        raise ConfigError(
            "generate needs --user and --item (or --turn for a conversation)",
            "e.g. tastemaker generate --user 1 --item 260, or tastemaker generate batch ...",
        )
    config, data_cfg = build_config(
        config_file, generator=generator, llm=llm, llm_model=llm_model, scorer=scorer,
        soft=soft, weights=weights, candidates=candidates, steps=steps, seed=seed,
        data=data, path=path, posters=posters, preset=preset,
        hardware=generator_flags(device, dtype, attention_slicing, vae_tiling, cpu_offload,
                                 scheduler),
    )  # fmt: skip
    dataset = load_data(data_cfg)
    pipe = PersonalizedGenerationPipeline(config)
    conversation = parse_turns(turn) if turn else None
    pipe.describe(dataset, user, item, conversation=conversation)  # bad input: fail before loading
    with progress_lines(quiet=False, verbose=False):  # stage and image lines, piped or not
        pipe.load()
        result = pipe(dataset, user, item, conversation=conversation, method=method)
    target = out or Path("generated") / f"user{user}-{result.item_id}"
    result.save(target)
    print_result(result, target)


@app.command("batch")
def batch(
    out: BatchOutOpt = Path("generated-batch"),
    users: Annotated[
        list[str] | None,
        typer.Option("--users", help="User IDs, repeatable or comma-separated (with --item)."),
    ] = None,
    item: Annotated[str | None, typer.Option("--item", help="Target item for --users.")] = None,
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help="CSV with user_id,item_id columns.")
    ] = None,
    config_file: ScenarioOpt = None,
    preset: PresetOpt = None,
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
    method: MethodOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    attention_slicing: SlicingOpt = None,
    vae_tiling: TilingOpt = None,
    cpu_offload: OffloadOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Many (user, item) pairs with a progress bar: one result folder each and an index page."""
    from tastemaker.generation.data import load_data
    from tastemaker.generation.evaluation import read_pairs
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    if (pairs is None) == (not users):
        raise ConfigError(
            "batch needs either --pairs FILE.csv or --users (with --item)", "pass one of them"
        )
    if users and item is None:
        raise ConfigError("--users needs --item (the target for every user)", "add --item ID")
    todo = (
        read_pairs(pairs)
        if pairs is not None
        else [(u.strip(), str(item)) for flag in users or [] for u in flag.split(",") if u.strip()]
    )
    config, data_cfg = build_config(
        config_file, generator=generator, llm=llm, llm_model=llm_model, scorer=scorer,
        soft=soft, weights=weights, candidates=candidates, steps=steps, seed=seed,
        data=data, path=path, posters=posters, preset=preset,
        hardware=generator_flags(device, dtype, attention_slicing, vae_tiling, cpu_offload,
                                 scheduler),
    )  # fmt: skip
    dataset = load_data(data_cfg)
    pipe = PersonalizedGenerationPipeline(config)
    write_batch(pipe, dataset, todo, out, method)


@app.command("missing")
def missing(
    users: Annotated[list[str], typer.Option("--users", help="User IDs, comma-separated.")],
    out: BatchOutOpt = Path("generated-missing"),
    items: Annotated[
        list[str] | None,
        typer.Option("--items", help="Items without an image (default: the catalog's)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Items per user, the most interacted-with first.")] = 3,
    config_file: ScenarioOpt = None,
    preset: PresetOpt = None,
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
    method: MethodOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    attention_slicing: SlicingOpt = None,
    vae_tiling: TilingOpt = None,
    cpu_offload: OffloadOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Images for items that have none (PMG's missing-image case), per user: the catalog's
    items without an image that each user has not met yet, written as batch writes them."""
    from tastemaker.generation.data import load_data
    from tastemaker.generation.missing import missing_pairs
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    config, data_cfg = build_config(
        config_file, generator=generator, llm=llm, llm_model=llm_model, scorer=scorer,
        soft=soft, weights=weights, candidates=candidates, steps=steps, seed=seed,
        data=data, path=path, posters=posters, preset=preset,
        hardware=generator_flags(device, dtype, attention_slicing, vae_tiling, cpu_offload,
                                 scheduler),
    )  # fmt: skip
    dataset = load_data(data_cfg)
    chosen = [u.strip() for flag in users for u in flag.split(",") if u.strip()]
    wanted = [i.strip() for flag in items for i in flag.split(",") if i.strip()] if items else None
    todo = missing_pairs(dataset, chosen, items=wanted, limit=limit)
    write_batch(PersonalizedGenerationPipeline(config), dataset, todo, out, method)


@app.command("train-soft")
def train_soft(
    out: Annotated[Path, typer.Option(help="Folder for the checkpoint, loss log and plot.")],
    users: Annotated[
        list[str], typer.Option("--users", help="Users whose liked images train the tokens.")
    ],
    train_steps: Annotated[int | None, typer.Option("--train-steps", help="Steps.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="AdamW learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT's checkpoint.")] = False,
    heldout: Annotated[
        float, typer.Option(help="Share of the users held out: their loss is reported, untrained.")
    ] = 0.2,
    per_user: Annotated[
        int | None, typer.Option("--per-user", help="Each user's latest next-item examples only.")
    ] = None,
    config_file: ScenarioOpt = None,
    preset: PresetOpt = None,
    data: DataOpt = None,
    path: PathOpt = None,
    posters: PostersOpt = None,
    generator: GeneratorOpt = None,
    llm: LLMOpt = None,
) -> None:
    """Train soft preference tokens (PMG 3.3) for --soft OUT: from each history, the next liked
    item's image; held-out users' loss before and after training in OUT/heldout.json."""
    from tastemaker.generation.components import PipelineComponents
    from tastemaker.generation.data import load_data
    from tastemaker.generation.soft_training import train_soft_tokens

    config, data_cfg = build_config(
        config_file, generator=generator, llm=llm, data=data, path=path, posters=posters,
        preset=preset,
    )  # fmt: skip
    flags = {"steps": train_steps, "learning_rate": learning_rate, "batch_size": batch_size}
    settings = {k: v for k, v in flags.items() if v is not None}
    chosen = [u.strip() for flag in users for u in flag.split(",") if u.strip()]
    dataset = load_data(data_cfg)
    parts = PipelineComponents(config)  # a pipeline's parts: training needs no stages
    run = train_soft_tokens(
        parts, dataset, chosen, out, settings, heldout=heldout, per_user=per_user,
        resume=resume, progress=show_progress(),
    )  # fmt: skip
    console.print(
        f"steps {run.first_step}-{run.last_step}: loss {run.losses[0]:.4f} → {run.losses[-1]:.4f}"
        f"; checkpoint {run.checkpoint}, plot {run.plot}; generate with --soft {out}"
    )
    if run.heldout_before is not None and run.heldout_after is not None:
        console.print(
            f"held-out users ({len(run.heldout_users)}): loss {run.heldout_before:.4f} untrained"
            f" → {run.heldout_after:.4f} trained"
        )
