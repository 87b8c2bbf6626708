"""The models a personalized-generation pipeline runs, built lazily from its config.

:class:`PipelineComponents` holds the LLM, the keyword extractor, the image
generator, the scorer and the trained soft tokens, each created on first use
from :class:`~tastemaker.generation.scenario.PipelineConfig` (or passed in
already built), so a dry run loads no model and :meth:`PipelineComponents.load`
can fail on a bad model id before any work. The stages that use them are
:class:`~tastemaker.generation.pipeline.PersonalizedGenerationPipeline`'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tastemaker.config import validate
from tastemaker.data.catalog import Catalog
from tastemaker.errors import ConfigError
from tastemaker.generation.data import Data, data_parts
from tastemaker.generation.generator import ImageGenerator
from tastemaker.generation.keywords import (
    KeywordExtractor,
    LLMKeywordExtractor,
    StatisticalKeywordExtractor,
)
from tastemaker.generation.scenario import PipelineConfig, load_scenario
from tastemaker.generation.scorers import create_scorer
from tastemaker.llm.base import LLM, create_llm

if TYPE_CHECKING:
    from tastemaker.generation.scoring import ImageTextScorer
    from tastemaker.generation.soft_prompt import SoftPreferenceModel

log = logging.getLogger("tastemaker.generation")


class PipelineComponents:
    """Every component of a pipeline, built lazily from its config (or passed in built)."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        *,
        llm: LLM | None = None,
        generator: ImageGenerator | None = None,
        scorer: ImageTextScorer | None = None,
        soft: SoftPreferenceModel | None = None,
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
    ) -> Self:
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
            f"{type(self).__name__}(domain={c.domain!r}, extractor={self.extractor_name!r}"
            f", generator={generator!r}, scorer={c.scorer.kind!r}, "
            f"soft={str(c.soft.checkpoint) if c.soft.checkpoint else None!r})"
        )

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
    def scorer_name(self) -> str:
        s = self.config.scorer
        return f"{s.kind}:{s.model}" if s.kind != "none" else type(self._scorer).__name__

    @property
    def soft(self) -> SoftPreferenceModel | None:
        """The trained soft-preference encoder, when the config names a checkpoint."""
        checkpoint = self.config.soft.checkpoint
        if self._soft is None and checkpoint is not None:
            from tastemaker.generation.soft_prompt import SoftPreferenceModel

            tokenizer, model = self.soft_llm()
            self._soft = SoftPreferenceModel.from_checkpoint(
                checkpoint, model, tokenizer, self.require_generator("soft tokens")
            )
        return self._soft

    def use_soft_tokens(self, model: SoftPreferenceModel, checkpoint: Path | str) -> None:
        """Condition with these trained soft tokens from now on, recording ``checkpoint`` (the
        folder they were saved to, as ``soft_training.train_soft_tokens`` wrote it) in the
        config, so results name the tokens they used."""
        self._soft = model
        soft = self.config.soft.model_copy(update={"checkpoint": Path(checkpoint)})
        self.config = self.config.model_copy(update={"soft": soft})

    def soft_llm(self) -> tuple[Any, Any]:
        """(tokenizer, model) of the frozen LLM the soft tokens read histories with."""
        from tastemaker.llm.hf import HFChat
        from tastemaker.llm.memo import unwrap

        config = self.config.soft.llm or self.config.llm
        llm = self._llm if self._llm is not None and self._llm.config == config else None
        llm = unwrap(llm or create_llm(config))  # a remembering wrapper reads the same model
        if not isinstance(llm, HFChat):
            raise ConfigError(
                f"soft tokens need a local transformers LLM, not {llm.name}",
                "set [soft.llm] (or [llm]) to backend = 'hf' with the model they were trained with",
            )
        return llm.load()

    def require_generator(self, what: str) -> ImageGenerator:
        """The generator, for ``what`` cannot do without one (a dry run has none)."""
        if self.generator is None:
            raise ConfigError(
                f"{what} need a generator, and none is configured",
                "set [generator] model (a Stable Diffusion id or folder, or 'tiny')",
            )
        return self.generator

    def load(self) -> Self:
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

    def describe_components(self) -> dict[str, Any]:
        """Which components made a result, as its ``components`` field records them."""
        c = self.config
        return {
            "domain": c.domain,
            "extractor": self.extractor_name,
            "llm": f"{c.llm.backend}:{c.llm.model}" if c.keywords.extractor == "llm" else None,
            "generator": c.generator.model_dump() if c.generator else None,
            "condition": c.condition.model_dump(mode="json"),
            "scorer": self.scorer_name if self._scorer is not None else None,
            "soft_checkpoint": str(c.soft.checkpoint) if c.soft.checkpoint else None,
        }


__all__ = ["PipelineComponents"]
