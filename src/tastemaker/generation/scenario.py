"""What a personalized-generation run is configured with: every stage's typed config.

:class:`PipelineConfig` gathers the configs of PMG's stages (history, LLM,
keywords, soft tokens, condition, the grid of weights, generator, scorer);
:func:`load_scenario` reads one from a TOML scenario file with an optional
``[data]`` table, so a run is a file that can be reviewed and repeated. The
scenarios shipped with the package (``scenarios/*.toml``: movies, products,
stickers) are presets named by their stem, found from any folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tastemaker.config import DataConfig, read_toml, validate
from tastemaker.errors import ConfigError
from tastemaker.generation.conditioning import ConditionConfig, parse_weights
from tastemaker.generation.generator import GeneratorConfig
from tastemaker.generation.history import HistoryConfig
from tastemaker.generation.keywords import LLMExtractorConfig, StatisticalConfig
from tastemaker.generation.scorers import ScorerConfig
from tastemaker.llm.base import LLMConfig

GenerationDomain = Literal["movies", "products", "stickers"]
HISTORY_DOMAINS = {"movies": "movies", "products": "products", "stickers": "conversation"}
# PMG's ablation: (preference keywords in the condition, soft tokens in the condition).
METHODS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "hard": (True, False),
    "soft": (False, True),
    "both": (True, True),
}


class KeywordsConfig(BaseModel):
    """Which extractor finds the keywords, and whether the statistical one may stand in."""

    model_config = ConfigDict(extra="forbid")

    extractor: Literal["llm", "statistical"] = "llm"
    fallback: bool = Field(True, description="statistical keywords when the LLM's stay unusable")
    llm: LLMExtractorConfig = Field(default_factory=LLMExtractorConfig)
    statistical: StatisticalConfig = Field(default_factory=StatisticalConfig)


class SoftTokensConfig(BaseModel):
    """A trained soft-preference checkpoint, and the frozen LLM it was trained with."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: Path | None = Field(None, description="folder SoftPreferenceTrainer.train wrote")
    llm: LLMConfig | None = Field(None, description="None: the pipeline's [llm] (backend hf)")


class PipelineConfig(BaseModel):
    """Every stage's config; ``domain`` sets the history and prompt domains unless given."""

    model_config = ConfigDict(extra="forbid")

    domain: GenerationDomain = "movies"
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    keywords: KeywordsConfig = Field(default_factory=KeywordsConfig)
    soft: SoftTokensConfig = Field(default_factory=SoftTokensConfig)
    condition: ConditionConfig = Field(default_factory=ConditionConfig)
    weights: list[tuple[float, float]] = Field(
        default_factory=lambda: [(1.0, 3.0), (1.0, 1.0), (3.0, 1.0)],
        description="grid of w_p:w_t, one condition each",
    )
    generator: GeneratorConfig | None = Field(
        default_factory=GeneratorConfig, description="None: prompts only (a dry run)"
    )
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)

    @model_validator(mode="before")
    @classmethod
    def _domains(cls, values: Any) -> Any:
        """The history and condition domains follow ``domain`` unless set explicitly."""
        if not isinstance(values, dict):
            return values
        domain = values.get("domain", "movies")
        if domain not in HISTORY_DOMAINS:
            return values  # the field's own validation reports it
        values = dict(values)
        for name, value in (("history", HISTORY_DOMAINS[domain]), ("condition", domain)):
            section = values.get(name)
            if section is None or isinstance(section, dict):
                values[name] = {"domain": value, **(section or {})}
        return values

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> list[tuple[float, float]]:
        if isinstance(value, str):
            value = value.split(",")
        try:
            grid = [parse_weights(w) for w in value]
        except (ConfigError, TypeError) as exc:
            raise ValueError(getattr(exc, "problem", str(exc))) from exc
        if not grid:
            raise ValueError("the grid of weights is empty")
        return grid


@dataclass(frozen=True)
class Scenario:
    """A scenario file: the pipeline's config and, when it names one, the data set."""

    pipeline: PipelineConfig
    data: DataConfig | None


PRESETS = Path(__file__).with_name("scenarios")


def available_scenarios() -> list[str]:
    """The names of the shipped scenario presets (``movies``, ...)."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def scenario_path(name_or_path: Path | str) -> Path:
    """A scenario file: a path as given (its problems are reported when it is read), or
    for a bare name such as ``movies`` that is no file here, the preset of that name."""
    path = Path(name_or_path).expanduser()
    if path.is_file() or path.suffix or len(path.parts) != 1:
        return path
    preset = PRESETS / f"{path.name}.toml"
    if preset.is_file():
        return preset
    raise ConfigError(
        f"'{name_or_path}' is neither a scenario file nor a preset",
        f"give a TOML file that exists, or a preset: {', '.join(available_scenarios())}",
    )


def load_scenario(path: Path | str, overrides: dict[str, Any] | None = None) -> Scenario:
    """A TOML scenario (a file, or a preset name): pipeline tables plus an optional [data].

    ``overrides`` are pipeline fields (whole tables) that replace the file's.
    """
    path = scenario_path(path)
    tables = read_toml(path, known=[*PipelineConfig.model_fields, "data"])
    data = tables.pop("data", None)
    pipeline = validate(PipelineConfig, {**tables, **(overrides or {})}, where=str(path))
    data_cfg = None if data is None else validate(DataConfig, data, where=f"{path} [data]")
    return Scenario(pipeline, data_cfg)


__all__ = [
    "HISTORY_DOMAINS",
    "METHODS",
    "GenerationDomain",
    "KeywordsConfig",
    "PipelineConfig",
    "Scenario",
    "SoftTokensConfig",
    "available_scenarios",
    "load_scenario",
    "scenario_path",
]
