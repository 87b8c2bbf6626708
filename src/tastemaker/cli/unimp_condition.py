"""``tastemaker unimp condition-train|generate``: UniMP's user state as soft tokens for
PMG's image generator (:mod:`tastemaker.unimp.image_conditioning`).

They take the generation commands' scenario flags (:mod:`tastemaker.cli.scenario_flags`:
data, posters, generator, ``--soft`` for PMG's tokens in ``join`` mode) plus the UniMP
model folder. Flags are checked before any model loads, so a bad one is one line and
exit code 2; output folders are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastemaker.cli.common import console
from tastemaker.cli.generation_output import print_result, show_progress
from tastemaker.cli.progress import progress_lines
from tastemaker.cli.scenario_flags import ScenarioFlags, scenario_flags
from tastemaker.errors import ConfigError

if TYPE_CHECKING:
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

ModelDir = Annotated[Path, typer.Option("--model-dir", help="OUT/model of tastemaker unimp train.")]
MODES = ("replace", "join")
TRAIN_FLAGS = ("config_file", "preset", "data", "path", "posters", "generator", "llm", "soft",
               "device", "dtype")  # fmt: skip


def _check_model(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise ConfigError(
            f"{model_dir} holds no UniMP model", "pass OUT/model of tastemaker unimp train"
        )


def _setup(flags: ScenarioFlags, model_dir: Path) -> tuple[PersonalizedGenerationPipeline, Any]:
    """The pipeline and its data set, checked before the UniMP model loads."""
    from tastemaker.data.dataset import Dataset
    from tastemaker.generation.data import load_data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

    _check_model(model_dir)
    config, data_cfg = flags.build()
    if config.generator is None:
        raise ConfigError("UniMP soft tokens need a generator", "pass --generator tiny or an id")
    dataset = load_data(data_cfg)
    if not isinstance(dataset, Dataset):
        raise ConfigError(
            "UniMP reads a raw data set, not a saved split", "pass the data folder or its name"
        )
    return PersonalizedGenerationPipeline(config), dataset


@scenario_flags(*TRAIN_FLAGS)
def condition_train(
    model_dir: ModelDir,
    out: Annotated[Path, typer.Option(help="Folder for the checkpoint, loss log and plot.")],
    users: Annotated[list[str], typer.Option("--users", help="Users whose liked images train.")],
    mode: Annotated[str, typer.Option(help="replace (PMG's tokens) or join (after them).")] = (
        "replace"
    ),
    num_tokens: Annotated[int, typer.Option(help="Soft tokens from the UniMP state.")] = 4,
    train_steps: Annotated[int, typer.Option("--train-steps", help="Steps.")] = 200,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 4,
    heldout: Annotated[float, typer.Option(help="Share of users held out (loss only).")] = 0.2,
    per_user: Annotated[
        int | None, typer.Option("--per-user", help="Each user's latest examples only.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT's checkpoint.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the map and the draws.")] = 0,
    flags: ScenarioFlags = ScenarioFlags(),
) -> None:
    """Train the map from UniMP's user state to soft tokens by PMG's diffusion loss, on each
    history's next liked image; held-out users' loss in OUT/heldout.json."""
    from tastemaker.config import validate
    from tastemaker.unimp.image_conditioning import UniMPConditionConfig

    if mode not in MODES:
        raise ConfigError(f"unknown mode '{mode}'", "use replace or join")
    if mode == "join" and flags.soft is None and flags.config_file is None:
        raise ConfigError("join mode needs PMG's trained soft tokens", "pass --soft DIR")
    settings = validate(
        UniMPConditionConfig,
        {"mode": mode, "num_tokens": num_tokens, "steps": train_steps, "seed": seed,
         "learning_rate": learning_rate, "batch_size": batch_size},
        where="unimp condition-train",
    )  # fmt: skip
    chosen = [u.strip() for flag in users for u in flag.split(",") if u.strip()]
    pipe, dataset = _setup(flags, model_dir)
    from tastemaker.unimp.image_conditioning import load_for_conditioning, train_unimp_conditioning

    with progress_lines(quiet=False, verbose=False):
        device = str(pipe.require_generator("UniMP soft tokens").device)
        unimp, describer = load_for_conditioning(model_dir, dataset, device=device)
        _, run = train_unimp_conditioning(
            pipe, dataset, chosen, unimp, describer, out, settings, heldout=heldout,
            per_user=per_user, resume=resume, progress=show_progress(),
        )  # fmt: skip
    console.print(
        f"steps {run.first_step}-{run.last_step}: loss {run.losses[0]:.4f} → {run.losses[-1]:.4f}"
        f"; checkpoint {run.checkpoint}; generate with tastemaker unimp generate --condition {out}"
    )
    if run.heldout_before is not None and run.heldout_after is not None:
        console.print(
            f"held-out users ({len(run.heldout_users)}): loss {run.heldout_before:.4f} untrained"
            f" → {run.heldout_after:.4f} trained"
        )


@scenario_flags()
def generate(
    model_dir: ModelDir,
    condition: Annotated[
        Path, typer.Option("--condition", help="OUT of tastemaker unimp condition-train.")
    ],
    user: Annotated[str, typer.Option("--user", help="Raw user ID.")],
    item: Annotated[str, typer.Option("--item", help="Raw target item ID.")],
    out: Annotated[Path | None, typer.Option(help="Folder for images, result.json, page.")] = None,
    method: Annotated[
        str, typer.Option(help="soft (tokens + item keywords) or both (+ preference keywords).")
    ] = "both",
    flags: ScenarioFlags = ScenarioFlags(),
) -> None:
    """PMG's images for one user and item, conditioned on UniMP's user state (replacing or
    joining PMG's soft tokens, as the conditioning was trained)."""
    from tastemaker.generation.soft_checkpoint import STATE_FILE, checkpoint_folder

    if method not in ("soft", "both"):
        raise ConfigError(f"unknown method '{method}'", "use soft or both")
    if not (checkpoint_folder(condition) / STATE_FILE).is_file():
        raise ConfigError(
            f"{condition} holds no UniMP conditioning",
            "pass OUT of tastemaker unimp condition-train",
        )
    pipe, dataset = _setup(flags, model_dir)
    pipe.describe(dataset, user, item)  # bad user or item: fail before loading models
    from tastemaker.unimp.image_conditioning import UniMPImageConditioner, load_for_conditioning

    with progress_lines(quiet=False, verbose=False):
        pipe.load()
        generator = pipe.require_generator("UniMP soft tokens")
        unimp, describer = load_for_conditioning(model_dir, dataset, device=str(generator.device))
        conditioner = UniMPImageConditioner.from_checkpoint(
            condition, unimp, describer, generator, pmg=pipe.soft
        )
        prepared = conditioner.condition(pipe.prepare(dataset, user, item))
        result = pipe.render(prepared, method=method)
    target = out or Path("generated") / f"user{user}-{result.item_id}-unimp"
    result.save(target)
    print_result(result, target)
