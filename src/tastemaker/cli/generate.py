"""``tastemaker generate`` (one user, ``batch``, ``missing``, ``train-soft``,
``train-judge``); the scenario flags they share with ``tastemaker evaluate-generation``
are declared once, in :mod:`tastemaker.cli.scenario_flags`.

Thin shells over :mod:`tastemaker.generation.pipeline` and
:mod:`tastemaker.generation.soft_training`: flags overlay a scenario file
(a preset such as ``movies``, or a TOML file), every input is checked (user, liked items, item
text, models) before anything is generated, and output folders are written
atomically, so a bad input leaves none behind. The pipeline's modules (torch,
diffusers) are imported inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastemaker.cli.common import console
from tastemaker.cli.generation_output import print_result, show_progress, write_batch
from tastemaker.cli.judge import train_judge
from tastemaker.cli.progress import progress_lines
from tastemaker.cli.scenario_flags import LLMModelOpt as LLMModelOpt  # cli.text uses it
from tastemaker.cli.scenario_flags import ScenarioFlags, scenario_flags
from tastemaker.cli.scenario_flags import build_config as build_config  # one home, re-exported
from tastemaker.errors import ConfigError

app = typer.Typer(
    help="Generate images for a user and an item (PMG): history → keywords → images → best by z.",
)

BatchOutOpt = Annotated[Path, typer.Option(help="Folder with one subfolder per pair.")]
MethodOpt = Annotated[
    str | None,
    typer.Option(help="none, hard, soft or both (default: both with --soft, else hard)."),
]


def parse_turns(turns: list[str]) -> list[tuple[str, str]]:
    """``["Alice: hi", "Bob: hello"]`` as (speaker, text); no speaker: the user's turn."""
    parsed = []
    for turn in turns:
        speaker, sep, text = turn.partition(":")
        parsed.append((speaker.strip(), text.strip()) if sep else ("User", turn.strip()))
    return parsed


@app.callback(invoke_without_command=True)
@scenario_flags()
def generate(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Raw user ID.")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Raw target item ID.")] = None,
    turn: Annotated[
        list[str] | None,
        typer.Option("--turn", help="Target conversation turn 'Speaker: text' (stickers)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for images, result.json, page.")] = None,
    method: MethodOpt = None,
    flags: ScenarioFlags = ScenarioFlags(),
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
    config, data_cfg = flags.build()
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
@scenario_flags()
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
    method: MethodOpt = None,
    flags: ScenarioFlags = ScenarioFlags(),
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
    config, data_cfg = flags.build()
    dataset = load_data(data_cfg)
    pipe = PersonalizedGenerationPipeline(config)
    write_batch(pipe, dataset, todo, out, method)


@app.command("missing")
@scenario_flags()
def missing(
    users: Annotated[list[str], typer.Option("--users", help="User IDs, comma-separated.")],
    out: BatchOutOpt = Path("generated-missing"),
    items: Annotated[
        list[str] | None,
        typer.Option("--items", help="Items without an image (default: the catalog's)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Items per user, the most interacted-with first.")] = 3,
    method: MethodOpt = None,
    flags: ScenarioFlags = ScenarioFlags(),
) -> None:
    """Images for items that have none (PMG's missing-image case), per user: the catalog's
    items without an image that each user has not met yet, written as batch writes them."""
    from tastemaker.generation.data import load_data
    from tastemaker.generation.missing import missing_pairs
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    config, data_cfg = flags.build()
    dataset = load_data(data_cfg)
    chosen = [u.strip() for flag in users for u in flag.split(",") if u.strip()]
    wanted = [i.strip() for flag in items for i in flag.split(",") if i.strip()] if items else None
    todo = missing_pairs(dataset, chosen, items=wanted, limit=limit)
    write_batch(PersonalizedGenerationPipeline(config), dataset, todo, out, method)


@app.command("train-soft")
@scenario_flags("config_file", "preset", "data", "path", "posters", "generator", "llm")
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
    flags: ScenarioFlags = ScenarioFlags(),
) -> None:
    """Train soft preference tokens (PMG 3.3) for --soft OUT: from each history, the next liked
    item's image; held-out users' loss before and after training in OUT/heldout.json."""
    from tastemaker.generation.components import PipelineComponents
    from tastemaker.generation.data import load_data
    from tastemaker.generation.soft_training import train_soft_tokens

    config, data_cfg = flags.build()
    given = {"steps": train_steps, "learning_rate": learning_rate, "batch_size": batch_size}
    settings = {k: v for k, v in given.items() if v is not None}
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


app.command("train-judge")(train_judge)
