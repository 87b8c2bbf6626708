"""PMG end to end: from a user's history to scored images made for that user and that item.

:class:`PersonalizedGenerationPipeline` composes the stages of PMG (Shen et al.,
"PMG: Personalized Multimodal Generation with Large Language Models", WWW 2024,
arXiv 2404.08677), each its own component with its own typed config, as diffusers
composes models and schedulers:

1. history → text (:mod:`~tastemaker.generation.history`);
2. preference keywords and 3. target-item keywords (:mod:`~tastemaker.generation.keywords`:
   an LLM, falling back to the statistical extractor when its replies stay
   unusable, which the result records; or the statistical extractor alone);
4. soft preference tokens from a trained checkpoint (:mod:`~tastemaker.generation.soft_prompt`);
5. one condition per weight w_p:w_t of a grid (:mod:`~tastemaker.generation.conditioning`);
6. candidate images, the same seeds for every weight (:mod:`~tastemaker.generation.generator`);
7. d_p, d_t and z = α·log d_p + (1−α)·log d_t per candidate, the best by z
   (:mod:`~tastemaker.generation.scoring`).

Every intermediate lands in the :class:`GenerationResult`, which
:meth:`GenerationResult.save` writes as JSON, PNGs and an HTML page, so one can
see why an image came out as it did. Without a generator the pipeline stops at
the prompts (a dry run); without a scorer the candidates stay unranked.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tastemaker.atomic import atomic_path
from tastemaker.config import DataConfig, read_toml, validate
from tastemaker.data.catalog import IMAGE, ITEM_ID, Catalog
from tastemaker.data.dataset import Dataset, Split
from tastemaker.data.interactions import RATING, USER_ID, Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.conditioning import (
    Composition,
    ConditionConfig,
    build_condition,
    compose_prompt,
    parse_weights,
)
from tastemaker.generation.generator import GeneratorConfig, ImageGenerator
from tastemaker.generation.history import (
    HistoryConfig,
    ItemText,
    UserHistory,
    build_history,
    describe_conversation,
    describe_item,
)
from tastemaker.generation.keywords import (
    KeywordExtractor,
    Keywords,
    LLMExtractorConfig,
    LLMKeywordExtractor,
    StatisticalConfig,
    StatisticalKeywordExtractor,
)
from tastemaker.llm.base import LLM, LLMConfig, create_llm

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from tastemaker.generation.scoring import ImageTextScorer, Selection
    from tastemaker.generation.soft_prompt import (
        SoftPreferenceTrainer,
        SoftPromptConfig,
        SoftPromptExample,
        SoftPromptRun,
    )

log = logging.getLogger("tastemaker.generation")

GenerationDomain = Literal["movies", "products", "stickers"]
HISTORY_DOMAINS = {"movies": "movies", "products": "products", "stickers": "conversation"}
# PMG's ablation: (preference keywords in the condition, soft tokens in the condition).
METHODS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "hard": (True, False),
    "soft": (False, True),
    "both": (True, True),
}
RESULT_FILE = "result.json"
PAGE_FILE = "index.html"
BEST_FILE = "best.png"
CANDIDATES = "candidates"
PROMPT_BUDGET = 75  # CLIP's 77 tokens minus start and end: a dry run's budget

Data = Dataset | Split


# ---------------------------------------------------------------------------- configuration


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


class ScorerConfig(BaseModel):
    """The image-text scorer behind d_p, d_t and z (``none``: candidates stay unranked)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["none", "clip", "aligned"] = "none"
    model: str | None = Field(None, description="CLIP id or folder; AlignedSpace folder")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="z's weight on log d_p")
    device: str = "cpu"

    @model_validator(mode="after")
    def _model_given(self) -> ScorerConfig:
        if self.kind != "none" and not self.model:
            raise ValueError(f"the {self.kind} scorer needs model (a hub id or folder)")
        return self

    @classmethod
    def parse(cls, spec: str, **fields: Any) -> ScorerConfig:
        """``none``, ``clip:ID_OR_FOLDER`` or ``aligned:FOLDER`` (as the CLI writes it)."""
        kind, sep, model = spec.partition(":")
        if spec.strip() == "none":
            return validate(cls, {**fields, "kind": "none", "model": None}, where="scorer")
        if not sep or kind not in ("clip", "aligned") or not model.strip():
            raise ConfigError(
                f"scorer '{spec}' is not none, clip:MODEL or aligned:FOLDER",
                "write e.g. clip:openai/clip-vit-base-patch32 or aligned:runs/align",
            )
        return validate(cls, {**fields, "kind": kind, "model": model.strip()}, where="scorer")


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


def load_scenario(path: Path | str, overrides: dict[str, Any] | None = None) -> Scenario:
    """A TOML scenario (``configs/generation-*.toml``): pipeline tables plus an optional [data].

    ``overrides`` are pipeline fields (whole tables) that replace the file's.
    """
    tables = read_toml(Path(path), known=[*PipelineConfig.model_fields, "data"])
    data = tables.pop("data", None)
    pipeline = validate(PipelineConfig, {**tables, **(overrides or {})}, where=str(path))
    data_cfg = None if data is None else validate(DataConfig, data, where=f"{path} [data]")
    return Scenario(pipeline, data_cfg)


# ---------------------------------------------------------------------------- results


@dataclass
class Prepared:
    """Stages 1-4 for one (user, target): what every weight and method share."""

    history: UserHistory
    item: ItemText
    history_images: list[str | None]
    item_image: str | None
    preference: Keywords
    item_keywords: Keywords
    soft_tokens: torch.Tensor | None
    notes: list[str]
    seconds: dict[str, float]


@dataclass
class Candidate:
    """One generated (or, in a dry run, only composed) candidate."""

    index: int
    weights: tuple[float, float]
    seed: int
    condition: dict[str, Any]
    image: Image | None = None
    scores: dict[str, float] | None = None

    @property
    def file(self) -> str | None:
        return None if self.image is None else f"{CANDIDATES}/{self.index:02d}.png"

    @property
    def prompt(self) -> str:
        return str(self.condition["prompt"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "weights": list(self.weights),
            "seed": self.seed,
            "condition": self.condition,
            "scores": self.scores,
        }


@dataclass
class GenerationResult:
    """Everything the pipeline did for one (user, target), in order."""

    prepared: Prepared
    method: str
    candidates: list[Candidate]
    selection: dict[str, Any] | None  # {"alpha", "best", "scorer"} when scored
    components: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.prepared.history.user_id

    @property
    def item_id(self) -> str:
        return self.prepared.item.item_id

    @property
    def notes(self) -> list[str]:
        return self.prepared.notes

    @property
    def best(self) -> Candidate | None:
        """The candidate with the highest z (None when unscored)."""
        return None if self.selection is None else self.candidates[self.selection["best"]]

    @property
    def seeds(self) -> list[int]:
        return sorted({c.seed for c in self.candidates})

    def to_dict(self) -> dict[str, Any]:
        p = self.prepared
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "method": self.method,
            "preference_keywords_in_condition": METHODS[self.method][0],
            "soft_tokens_in_condition": METHODS[self.method][1],
            "history": {**p.history.to_dict(), "images": p.history_images},
            "item": {**p.item.to_dict(), "image": p.item_image},
            "preference_keywords": p.preference.to_dict(),
            "item_keywords": p.item_keywords.to_dict(),
            "notes": p.notes,
            "soft_tokens": _soft_summary(p.soft_tokens, self.components.get("soft_checkpoint")),
            "weights": [list(w) for w in dict.fromkeys(c.weights for c in self.candidates)],
            "seeds": self.seeds,
            "candidates": [c.to_dict() for c in self.candidates],
            "selection": self.selection,
            "best_file": BEST_FILE if self.best is not None and self.best.image else None,
            "components": self.components,
            "seconds": {**p.seconds, **self.seconds},
        }

    def save(self, folder: Path | str) -> Path:
        """Write ``result.json``, the candidate PNGs, ``best.png`` and ``index.html``, atomically
        (the folder appears complete or not at all; an existing one is replaced)."""
        from tastemaker.generation.html import result_page

        folder = Path(folder)
        with atomic_path(folder, directory=True) as tmp:
            for candidate in self.candidates:
                if candidate.image is not None and candidate.file is not None:
                    (tmp / CANDIDATES).mkdir(exist_ok=True)
                    candidate.image.save(tmp / candidate.file, format="PNG")
            best = self.best
            if best is not None and best.image is not None:
                best.image.save(tmp / BEST_FILE, format="PNG")
            record = self.to_dict()
            (tmp / RESULT_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            (tmp / PAGE_FILE).write_text(result_page(self), encoding="utf-8")
        return folder


def _soft_summary(tokens: torch.Tensor | None, checkpoint: str | None) -> dict[str, Any] | None:
    if tokens is None:
        return None
    norms = tokens.float().norm(dim=-1).cpu().tolist()
    return {"checkpoint": checkpoint, "shape": list(tokens.shape), "norms": norms}


# ---------------------------------------------------------------------------- the pipeline


def data_parts(data: Data) -> tuple[Catalog, Interactions | Split]:
    """(catalog, what histories read): a Split's train + valid, or all of a Dataset."""
    if isinstance(data, Split):
        return data.catalog, data
    if isinstance(data, Dataset):
        return data.catalog, data.interactions
    raise DataError(
        f"cannot generate from a {type(data).__name__}",
        "pass a Dataset (load_dataset) or a Split (Split.load, experiment.prepare)",
    )


def load_data(config: DataConfig) -> Data:
    """The data a pipeline reads: a folder saved by tastemaker (a Split or a Dataset, with
    ``posters`` pointed at when given), else a known data set or raw folder (a Dataset)."""
    from tastemaker.data.manifest import Manifest
    from tastemaker.data.sources.registry import load_dataset

    folder = Path(config.dataset).expanduser()
    if not (folder / "manifest.json").is_file():
        return load_dataset(config.dataset, config.path, posters=config.posters)
    if Manifest.read(folder / "manifest.json").split is None:
        ds = Dataset.load(folder)
        return ds.replace(catalog=ds.catalog.with_images(config.posters)) if config.posters else ds
    split = Split.load(folder)
    if config.posters is None:
        return split
    parts = (split.train.frame, split.valid.frame, split.test.frame)
    return Split(split.catalog.with_images(config.posters), *parts, manifest=split.manifest)


def _image_path(catalog: Catalog, item_id: str) -> str | None:
    value = catalog.item(item_id)[IMAGE]
    return str(value) if value else None


def conversation_attributes(
    catalog: Catalog, fields: Sequence[str], text: str
) -> dict[str, list[str]]:
    """Per field, the catalog's values that ``text`` mentions as whole words.

    A conversation has no genres or tags of its own; the ones it names are what a
    non-LLM extractor can describe it with.
    """
    words = " ".join(re.findall(r"[^\W_]+", text.casefold()))
    found: dict[str, list[str]] = {}
    for name in fields:
        values: dict[str, str] = {}
        for row in catalog.frame[name].to_list():
            for value in row or []:
                key = " ".join(re.findall(r"[^\W_]+", str(value).casefold()))
                if key and re.search(rf"\b{re.escape(key)}\b", words):
                    values.setdefault(key, str(value))
        if values:
            found[name] = list(values.values())
    return found


class PersonalizedGenerationPipeline:
    """PMG's stages composed; every component built lazily from :class:`PipelineConfig`.

    Components may also be passed in already built (``llm``, ``generator``,
    ``scorer``, ``soft``), e.g. to share a loaded generator between pipelines.
    """

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        llm: LLM | None = None,
        generator: ImageGenerator | None = None,
        scorer: ImageTextScorer | None = None,
        soft: SoftPreferenceTrainer | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self._llm = llm
        self._generator = generator
        self._scorer = scorer
        self._soft = soft
        self._statistical: tuple[Catalog, StatisticalKeywordExtractor] | None = None

    @classmethod
    def from_config(
        cls, config: PipelineConfig | dict[str, Any] | Path | str | None = None, **components: Any
    ) -> PersonalizedGenerationPipeline:
        """A pipeline from a config object, its fields as a dict, or a scenario TOML file."""
        if isinstance(config, Path | str):
            config = load_scenario(config).pipeline
        elif isinstance(config, dict):
            config = validate(PipelineConfig, config, where="pipeline")
        return cls(config, **components)

    def __repr__(self) -> str:
        c = self.config
        generator = c.generator.model if c.generator else None
        return (
            f"PersonalizedGenerationPipeline(domain={c.domain!r}, extractor={self.extractor_name!r}"
            f", generator={generator!r}, scorer={c.scorer.kind!r}, "
            f"soft={str(c.soft.checkpoint) if c.soft.checkpoint else None!r})"
        )

    # --- components -----------------------------------------------------------------------

    @property
    def extractor_name(self) -> str:
        c = self.config
        return "statistical" if c.keywords.extractor == "statistical" else f"llm:{c.llm.backend}"

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = create_llm(self.config.llm)
        return self._llm

    @property
    def generator(self) -> ImageGenerator | None:
        """The image generator, or None in a dry run (no ``generator`` configured)."""
        if self._generator is None and self.config.generator is not None:
            self._generator = ImageGenerator(self.config.generator)
        return self._generator

    @property
    def scorer(self) -> ImageTextScorer | None:
        if self._scorer is None:
            self._scorer = create_scorer(self.config.scorer)
        return self._scorer

    @property
    def soft(self) -> SoftPreferenceTrainer | None:
        """The trained soft-preference encoder, when the config names a checkpoint."""
        checkpoint = self.config.soft.checkpoint
        if self._soft is None and checkpoint is not None:
            from tastemaker.generation.soft_prompt import SoftPreferenceTrainer

            tokenizer, model = self._soft_llm()
            self._soft = SoftPreferenceTrainer.from_checkpoint(
                checkpoint, model, tokenizer, self._require_generator("soft tokens")
            )
        return self._soft

    def _soft_llm(self) -> tuple[Any, Any]:
        """(tokenizer, model) of the frozen LLM the soft tokens read histories with."""
        from tastemaker.llm.hf import HFChat

        config = self.config.soft.llm or self.config.llm
        llm = self._llm if self._llm is not None and self._llm.config == config else None
        llm = llm or create_llm(config)
        if not isinstance(llm, HFChat):
            raise ConfigError(
                f"soft tokens need a local transformers LLM, not {llm.name}",
                "set [soft.llm] (or [llm]) to backend = 'hf' with the model they were trained with",
            )
        return llm.load()

    def _require_generator(self, what: str) -> ImageGenerator:
        if self.generator is None:
            raise ConfigError(
                f"{what} need a generator, and none is configured",
                "set [generator] model (a Stable Diffusion id or folder, or 'tiny')",
            )
        return self.generator

    def load(self) -> PersonalizedGenerationPipeline:
        """Load every configured component now, so a bad model id fails before any work."""
        if self.generator is not None:
            _ = self.generator.pipeline
        _ = self.scorer
        _ = self.soft
        if self.config.keywords.extractor == "llm":
            load = getattr(self.llm, "load", None)  # local models; a server answers per call
            if load is not None:
                load()
        return self

    def extractor(self, data: Data) -> KeywordExtractor:
        """The configured keyword extractor for ``data`` (the statistical one counts over it)."""
        kw = self.config.keywords
        statistical = self._statistical_for(data) if kw.extractor == "statistical" else None
        if statistical is not None:
            return statistical
        fallback = self._statistical_for(data, quiet=True) if kw.fallback else None
        return LLMKeywordExtractor(self.llm, kw.llm, fallback=fallback)

    def _statistical_for(
        self, data: Data, *, quiet: bool = False
    ) -> StatisticalKeywordExtractor | None:
        catalog, interactions = data_parts(data)
        if self._statistical is None or self._statistical[0] is not catalog:
            try:
                extractor = StatisticalKeywordExtractor(
                    catalog, interactions, self.config.keywords.statistical
                )
            except ConfigError:
                if not quiet:
                    raise
                log.warning("no statistical fallback: the catalog has no list fields")
                return None
            self._statistical = (catalog, extractor)
        return self._statistical[1]

    # --- stages ---------------------------------------------------------------------------

    def describe(
        self,
        data: Data,
        user_id: object,
        item_id: object | None = None,
        *,
        conversation: Sequence[tuple[str, str]] | None = None,
    ) -> tuple[UserHistory, ItemText]:
        """Stage 1 and the target's text: cheap, and where every bad input shows up first
        (unknown user, a user without liked items, an unknown item or one without text)."""
        catalog, interactions = data_parts(data)
        history = build_history(catalog, interactions, user_id, self.config.history)
        if conversation is not None:
            item = describe_conversation(conversation)
            if self.config.keywords.extractor == "statistical" or self.config.keywords.fallback:
                fields = self.config.keywords.statistical.fields or catalog.categorical_fields
                mentioned = conversation_attributes(catalog, fields, item.text)
                item = ItemText(item.item_id, item.domain, item.title, item.text, mentioned)
        elif item_id is None:
            raise DataError("no target item", "pass an item ID, or a conversation for stickers")
        else:
            item = describe_item(catalog, item_id, self.config.history)
        return history, item

    def prepare(
        self,
        data: Data,
        user_id: object,
        item_id: object | None = None,
        *,
        conversation: Sequence[tuple[str, str]] | None = None,
    ) -> Prepared:
        """Stages 1-4: history, preference keywords, item keywords, soft tokens."""
        catalog, _ = data_parts(data)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        history, item = self.describe(data, user_id, item_id, conversation=conversation)
        seconds["history"] = time.perf_counter() - start
        extractor = self.extractor(data)
        start = time.perf_counter()
        preference = extractor.extract_user(history)
        item_keywords = extractor.extract_item(item)
        seconds["keywords"] = time.perf_counter() - start
        notes = [
            f"{kw.kind} keywords: {kw.fallback}; used the statistical extractor instead"
            for kw in (preference, item_keywords)
            if kw.fallback
        ]
        soft_tokens = None
        if self.soft is not None:
            start = time.perf_counter()
            soft_tokens = self.soft.soft_tokens(history.text)
            seconds["soft_tokens"] = time.perf_counter() - start
        known = conversation is None
        return Prepared(
            history=history,
            item=item,
            history_images=[_image_path(catalog, i) for i in history.item_ids],
            item_image=_image_path(catalog, item.item_id) if known else None,
            preference=preference,
            item_keywords=item_keywords,
            soft_tokens=soft_tokens,
            notes=notes,
            seconds=seconds,
        )

    def render(
        self,
        prepared: Prepared,
        *,
        weights: Sequence[Any] | None = None,
        n_candidates: int | None = None,
        method: str | None = None,
        progress: bool = False,
    ) -> GenerationResult:
        """Stages 5-7: a condition per weight, ``n_candidates`` seeds each, scores, the best.

        ``method`` is PMG's ablation: ``none`` (item keywords only), ``hard``
        (with preference keywords), ``soft`` (with soft tokens), ``both``; the
        default is ``both`` when soft tokens are at hand, else ``hard``. Every
        weight and method draws the same seeds, so candidates differ only by condition.
        """
        method = method or ("both" if prepared.soft_tokens is not None else "hard")
        if method not in METHODS:
            raise ConfigError(f"unknown method '{method}'", f"use one of: {', '.join(METHODS)}")
        use_keywords, use_soft = METHODS[method]
        if use_soft and prepared.soft_tokens is None:
            raise ConfigError(
                f"method '{method}' needs soft tokens, and no soft checkpoint is configured",
                "train them (PersonalizedGenerationPipeline.train_soft_tokens) and set "
                "[soft] checkpoint, or use method none or hard",
            )
        grid = [parse_weights(w) for w in (weights or self.config.weights)]
        if not grid:
            raise ConfigError("the grid of weights is empty", "pass at least one w_p:w_t")
        generator = self.generator
        n = n_candidates or (generator.config.num_images if generator else 1)
        if n < 1:
            raise ConfigError(f"n_candidates is {n}", "generate at least one candidate per weight")
        preference = prepared.preference.keywords if use_keywords else []
        soft = prepared.soft_tokens if use_soft else None
        item = prepared.item_keywords.keywords
        start = time.perf_counter()
        if generator is None:  # a dry run: one prompt per weight, nothing drawn
            candidates = [
                Candidate(i, w, 0, self._dry_condition(preference, item, w))
                for i, w in enumerate(grid)
            ]
            seconds = {"conditions": time.perf_counter() - start}
            return GenerationResult(prepared, method, candidates, None, self._components(), seconds)
        conditions = [
            build_condition(
                generator, preference, item, soft_tokens=soft, config=self._condition_config(w)
            )
            for w in grid
        ]
        seconds = {"conditions": time.perf_counter() - start}
        start = time.perf_counter()
        seeds = [generator.config.seed + i for i in range(n)]
        images = generator.generate(
            _stack([c.embeds for c in conditions]),
            _stack([c.negative for c in conditions]),
            seeds=seeds,
            progress=progress,
        )
        seconds["generate"] = time.perf_counter() - start
        candidates = [
            Candidate(k, grid[row], seed, conditions[row].summary(), image)
            for k, (image, seed, row) in enumerate(
                zip(images.images, images.seeds, images.rows, strict=True)
            )
        ]
        selection = None
        if self.scorer is not None:
            start = time.perf_counter()
            chosen = self._select(candidates, prepared)
            seconds["score"] = time.perf_counter() - start
            for candidate, score in zip(candidates, chosen.scores, strict=True):
                candidate.scores = {
                    "cos_p": score.cos_p,
                    "cos_t": score.cos_t,
                    "d_p": score.d_p,
                    "d_t": score.d_t,
                    "z": score.z,
                }
            selection = {"alpha": chosen.alpha, "best": chosen.best, "scorer": self._scorer_name()}
        return GenerationResult(
            prepared, method, candidates, selection, self._components(), seconds
        )

    def __call__(
        self,
        data: Data,
        user_id: object,
        item_id: object | None = None,
        *,
        conversation: Sequence[tuple[str, str]] | None = None,
        weights: Sequence[Any] | None = None,
        n_candidates: int | None = None,
        method: str | None = None,
        progress: bool = False,
    ) -> GenerationResult:
        """Every stage for ``user_id`` and a target item (or, for stickers, a conversation)."""
        prepared = self.prepare(data, user_id, item_id, conversation=conversation)
        return self.render(
            prepared, weights=weights, n_candidates=n_candidates, method=method, progress=progress
        )

    def _condition_config(self, weights: tuple[float, float]) -> ConditionConfig:
        return self.config.condition.model_copy(update={"weights": weights})

    def _dry_condition(
        self, preference: list[str], item: list[str], weights: tuple[float, float]
    ) -> dict[str, Any]:
        """What :meth:`Condition.summary` holds, for the prompt alone (no generator)."""
        c: Composition = compose_prompt(
            preference, item, self._condition_config(weights), budget=PROMPT_BUDGET
        )
        return {
            "prompt": c.prompt,
            "negative_prompt": c.negative_prompt,
            "order": list(c.order),
            "keywords": c.keywords,
            "dropped_keywords": c.dropped,
            "weights": {"preference": weights[0], "item": weights[1]},
            "token_counts": c.token_counts,
        }

    def _select(self, candidates: list[Candidate], prepared: Prepared) -> Selection:
        from tastemaker.generation.scoring import select_best

        assert self.scorer is not None
        return select_best(
            self.scorer,
            [c.image for c in candidates if c.image is not None],
            prepared.preference.text,
            prepared.item_keywords.text,
            self.config.scorer.alpha,
        )

    def _scorer_name(self) -> str:
        s = self.config.scorer
        return f"{s.kind}:{s.model}" if s.kind != "none" else type(self._scorer).__name__

    def _components(self) -> dict[str, Any]:
        c = self.config
        return {
            "domain": c.domain,
            "extractor": self.extractor_name,
            "llm": f"{c.llm.backend}:{c.llm.model}" if c.keywords.extractor == "llm" else None,
            "generator": c.generator.model_dump() if c.generator else None,
            "condition": c.condition.model_dump(mode="json"),
            "scorer": self._scorer_name() if self._scorer is not None else None,
            "soft_checkpoint": str(c.soft.checkpoint) if c.soft.checkpoint else None,
        }

    # --- soft tokens ----------------------------------------------------------------------

    def soft_examples(
        self, data: Data, users: Sequence[object], *, num_tokens: int = 4
    ) -> list[SoftPromptExample]:
        """Training examples of soft tokens: each user's history with every liked item's image,
        and that item's title and attributes as the prompt beside the ``num_tokens`` soft
        tokens."""
        from PIL import Image as PILImage

        from tastemaker.generation.soft_prompt import SoftPromptExample

        catalog, interactions = data_parts(data)
        generator = self._require_generator("soft tokens")
        budget = generator.max_length - 2 - num_tokens
        examples = []
        for user in users:
            history = build_history(catalog, interactions, user, self.config.history)
            for item_id, path in zip(
                history.item_ids, (_image_path(catalog, i) for i in history.item_ids), strict=True
            ):
                if path is None:
                    continue
                item = describe_item(catalog, item_id, self.config.history)
                words = [item.title, *(v for values in item.attributes.values() for v in values)]
                prompt = compose_prompt(
                    [],
                    words,
                    self._condition_config((0.0, 1.0)),
                    budget=budget,
                    count_tokens=generator.count_tokens,
                ).prompt
                with PILImage.open(path) as image:
                    examples.append(SoftPromptExample(history.text, image.convert("RGB"), prompt))
        if not examples:
            raise DataError(
                "none of these users' liked items has an image",
                "load the data with images (e.g. --posters) or choose other users",
            )
        return examples

    def train_soft_tokens(
        self,
        data: Data,
        users: Sequence[object],
        out_dir: Path | str,
        config: SoftPromptConfig | dict[str, Any] | None = None,
        *,
        resume: bool = False,
        progress: bool = True,
    ) -> SoftPromptRun:
        """Train soft preference tokens on ``users``' liked images (PMG 3.3); the pipeline then
        uses them (its config's ``soft.checkpoint`` becomes ``out_dir``)."""
        from tastemaker.generation.soft_prompt import SoftPreferenceTrainer, SoftPromptConfig

        if not isinstance(config, SoftPromptConfig):
            config = validate(SoftPromptConfig, dict(config or {}), where="soft prompt")
        examples = self.soft_examples(data, users, num_tokens=config.num_tokens)
        tokenizer, model = self._soft_llm()
        trainer = SoftPreferenceTrainer(model, tokenizer, self._require_generator("soft"), config)
        run = trainer.train(examples, Path(out_dir), resume=resume, progress=progress)
        self._soft = trainer
        soft = self.config.soft.model_copy(update={"checkpoint": Path(out_dir)})
        self.config = self.config.model_copy(update={"soft": soft})
        return run


def _stack(rows: Sequence[Any]) -> Any:
    """One PromptEmbeds of many single-row ones (pooled vectors too, for SDXL)."""
    import torch

    from tastemaker.generation.generator import PromptEmbeds

    embeds = torch.cat([r.embeds for r in rows])
    pooled = None if rows[0].pooled is None else torch.cat([r.pooled for r in rows])
    return PromptEmbeds(embeds, pooled)


def create_scorer(config: ScorerConfig) -> ImageTextScorer | None:
    """The configured image-text scorer (None for ``kind = "none"``)."""
    if config.kind == "none":
        return None
    from tastemaker.generation.scoring import AlignedScorer, ClipScorer

    assert config.model is not None
    if config.kind == "clip":
        return ClipScorer(config.model, device=config.device)
    if not Path(config.model).expanduser().is_dir():
        raise ConfigError(
            f"aligned space folder {config.model} does not exist",
            "train one with `tastemaker pretrain align --out DIR` and pass aligned:DIR",
        )
    return AlignedScorer(Path(config.model).expanduser())


# ---------------------------------------------------------------------------- the demo


def demo_user(split: Split, min_rating: float = 4.0, seed: int = 0) -> tuple[str, str]:
    """A seeded-random (user, item) whose item is a liked test item the history never saw."""
    liked = split.test.frame
    if liked[RATING].null_count() < liked.height:
        liked = liked.filter(pl.col(RATING) >= min_rating)
    known = set(split.train.frame[USER_ID].unique().to_list())
    liked = liked.filter(pl.col(USER_ID).is_in(pl.Series(sorted(known)).implode()))
    if liked.height == 0:
        raise DataError("no test interaction to generate for", "use a split with a test part")
    row = liked.sort([USER_ID, ITEM_ID]).row(
        int(np.random.default_rng(seed).integers(liked.height)), named=True
    )
    return str(row[USER_ID]), str(row[ITEM_ID])


def demo_generation(
    split: Split,
    out_dir: Path | str,
    config: PipelineConfig | None = None,
    *,
    user_id: object | None = None,
    item_id: object | None = None,
) -> dict[str, Any]:
    """One user's history, preference keywords and the prompt it would generate from, written
    to ``out_dir`` (result.json + index.html); the image too when a generator is configured.

    The default config is fast and offline: the statistical extractor, no generator.
    """
    config = config or PipelineConfig(
        keywords=KeywordsConfig(extractor="statistical"), generator=None
    )
    if config.generator is None:
        config = config.model_copy(update={"weights": config.weights[:1]})
    if user_id is None or item_id is None:
        user_id, item_id = demo_user(split, config.history.min_rating or 0.0)
    pipe = PersonalizedGenerationPipeline(config)
    result = pipe(split, user_id, item_id, n_candidates=1)
    result.save(out_dir)
    shown = result.best or result.candidates[0]
    return {
        "user_id": result.user_id,
        "item_id": result.item_id,
        "item_title": result.prepared.item.title,
        "history": result.prepared.history.titles,
        "preference_keywords": result.prepared.preference.keywords,
        "item_keywords": result.prepared.item_keywords.keywords,
        "extractor": result.prepared.preference.extractor,
        "prompt": shown.prompt,
        "image": str(Path(out_dir) / BEST_FILE) if shown.image is not None else None,
        "page": str(Path(out_dir) / PAGE_FILE),
        "notes": result.notes,
    }


__all__ = [
    "METHODS",
    "Candidate",
    "GenerationResult",
    "KeywordsConfig",
    "PersonalizedGenerationPipeline",
    "PipelineConfig",
    "Prepared",
    "Scenario",
    "ScorerConfig",
    "SoftTokensConfig",
    "create_scorer",
    "demo_generation",
    "load_data",
    "load_scenario",
]
