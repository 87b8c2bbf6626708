"""The scenario flags that ``tastemaker generate`` (one user, ``batch``, ``missing``,
``train-soft``) and ``tastemaker evaluate-generation`` share, declared once.

:func:`scenario_flags` gives a command these Typer options (all, or the ones it
names) and hands them to it as one :class:`ScenarioFlags`, whose
:meth:`~ScenarioFlags.build` lays them over the scenario file (:func:`build_config`).
Plain types only, so ``--help`` imports neither torch nor diffusers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer

from tastemaker.cli.generator_flags import (
    DeviceOpt,
    DtypeOpt,
    OffloadOpt,
    SchedulerOpt,
    SlicingOpt,
    TilingOpt,
    generator_flags,
)

if TYPE_CHECKING:
    from tastemaker.config import DataConfig
    from tastemaker.generation.scenario import PipelineConfig

Command = TypeVar("Command", bound=Callable[..., Any])

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


@dataclass(frozen=True)
class ScenarioFlags:
    """The scenario flags a command was given (None: not given, the scenario's value)."""

    config_file: ScenarioOpt = None
    preset: PresetOpt = None
    data: DataOpt = None
    path: PathOpt = None
    posters: PostersOpt = None
    generator: GeneratorOpt = None
    llm: LLMOpt = None
    llm_model: LLMModelOpt = None
    scorer: ScorerOpt = None
    soft: SoftOpt = None
    weights: WeightsOpt = None
    candidates: CandidatesOpt = None
    steps: StepsOpt = None
    seed: SeedOpt = None
    device: DeviceOpt = None
    dtype: DtypeOpt = None
    attention_slicing: SlicingOpt = None
    vae_tiling: TilingOpt = None
    cpu_offload: OffloadOpt = None
    scheduler: SchedulerOpt = None

    def build(self) -> tuple[PipelineConfig, DataConfig]:
        """The pipeline and data configs: the scenario, the preset, then these flags."""
        hardware = generator_flags(
            self.device, self.dtype, self.attention_slicing, self.vae_tiling,
            self.cpu_offload, self.scheduler,
        )  # fmt: skip
        return build_config(
            self.config_file, generator=self.generator, llm=self.llm, llm_model=self.llm_model,
            scorer=self.scorer, soft=self.soft, weights=self.weights, candidates=self.candidates,
            steps=self.steps, seed=self.seed, data=self.data, path=self.path,
            posters=self.posters, preset=self.preset, hardware=hardware,
        )  # fmt: skip


def scenario_flags(*names: str) -> Callable[[Command], Command]:
    """Give a command the scenario flags (``names``, default all) as Typer options after
    its own, and call it with them gathered in its ``flags: ScenarioFlags`` parameter."""
    hints = get_type_hints(ScenarioFlags, include_extras=True)  # the Annotated Typer options
    options = {f.name: hints[f.name] for f in fields(ScenarioFlags) if not names or f.name in names}
    unknown = set(names) - set(options)
    if unknown:
        raise TypeError(f"no scenario flag(s) {sorted(unknown)}")

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "flags"]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
            for name, kind in options.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in options}
            return command(*args, flags=ScenarioFlags(**given), **kwargs)

        parameters = [*own, *added]
        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate
