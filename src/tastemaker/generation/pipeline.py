"""PMG end to end: from a user's history to scored images made for that user and that item.

:class:`PersonalizedGenerationPipeline` composes the stages of PMG (Shen et al.,
"PMG: Personalized Multimodal Generation with Large Language Models", WWW 2024,
arXiv 2404.08677), each its own component with its own typed config
(:class:`~tastemaker.generation.scenario.PipelineConfig`), as diffusers composes
models and schedulers:

1. history → text (:mod:`~tastemaker.generation.history`);
2. preference keywords and 3. target-item keywords (:mod:`~tastemaker.generation.keywords`:
   an LLM, falling back to the statistical extractor when its replies stay
   unusable, which the result records; or the statistical extractor alone);
4. soft preference tokens from a trained checkpoint (:mod:`~tastemaker.generation.soft_prompt`);
5. one condition per weight w_p:w_t of a grid (:mod:`~tastemaker.generation.conditioning`);
6. candidate images, the same seeds for every weight (:mod:`~tastemaker.generation.generator`);
7. d_p, d_t and z = α·log d_p + (1−α)·log d_t per candidate, the best by z
   (:mod:`~tastemaker.generation.scoring`).

Every intermediate lands in the :class:`~tastemaker.generation.result.GenerationResult`.
Without a generator the pipeline stops at the prompts (a dry run); without a
scorer the candidates stay unranked. As in diffusers, the pipeline does not
train: soft tokens are trained by :mod:`~tastemaker.generation.soft_training`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.components import PipelineComponents
from tastemaker.generation.conditioning import (
    Composition,
    ConditionConfig,
    build_condition,
    compose_prompt,
    parse_weights,
)
from tastemaker.generation.data import Data, conversation_attributes, data_parts, item_image
from tastemaker.generation.history import (
    ItemText,
    UserHistory,
    build_history,
    describe_conversation,
    describe_item,
)
from tastemaker.generation.result import Candidate, GenerationResult, Prepared
from tastemaker.generation.scenario import METHODS
from tastemaker.reporting.values import plural

log = logging.getLogger("tastemaker.generation")  # progress lines; the CLI shows them

if TYPE_CHECKING:
    from tastemaker.generation.scoring import ImageTextScorer

PROMPT_BUDGET = 75  # CLIP's 77 tokens minus start and end: a dry run's budget


class PersonalizedGenerationPipeline(PipelineComponents):
    """PMG's stages over components built lazily from the config (:class:`PipelineComponents`).

    Components may also be passed in already built (``llm``, ``generator``,
    ``scorer``, ``soft``), e.g. to share a loaded generator between pipelines.
    """

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
            history_images=[item_image(catalog, i) for i in history.item_ids],
            item_image=item_image(catalog, item.item_id) if known else None,
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
        on_stage: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Stages 5-7: a condition per weight, ``n_candidates`` seeds each, scores, the best.

        ``on_stage`` is told each stage's name (``conditions``, ``generate``, ``score``) as it
        begins, so a caller (the service's job queue) can show where a long render is.

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
                "train them (soft_training.train_soft_tokens) and set [soft] checkpoint, "
                "or use method none or hard",
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
        stage = on_stage or (lambda name: None)
        stage("conditions")
        start = time.perf_counter()
        if generator is None:  # a dry run: one prompt per weight, nothing drawn
            candidates = [
                Candidate(i, w, 0, self._dry_condition(preference, item, w))
                for i, w in enumerate(grid)
            ]
            seconds = {"conditions": time.perf_counter() - start}
            return GenerationResult(
                prepared, method, candidates, None, self.describe_components(), seconds
            )
        conditions = [
            build_condition(
                generator, preference, item, soft_tokens=soft, config=self._condition_config(w)
            )
            for w in grid
        ]
        seconds = {"conditions": time.perf_counter() - start}
        stage("generate")
        start = time.perf_counter()
        seeds = [generator.config.seed + i for i in range(n)]
        log.info(
            "%s x %s = %s, %s each",
            plural(len(grid), "weight"), plural(n, "seed"), plural(len(grid) * n, "image"),
            plural(generator.config.num_inference_steps, "denoising step"),
        )  # fmt: skip
        images = generator.generate(
            _stack([c.embeds for c in conditions]),
            _stack([c.negative for c in conditions]),
            seeds=seeds,
            progress=progress,
        )
        seconds["generate"] = time.perf_counter() - start
        candidates = [
            Candidate(k, grid[row], seed, conditions[row].summary(), image, nsfw=flag)
            for k, (image, seed, row, flag) in enumerate(
                zip(images.images, images.seeds, images.rows, images.nsfw, strict=True)
            )
        ]
        selection, scorer = None, self.scorer
        if scorer is not None:
            stage("score")
            start = time.perf_counter()
            selection = self._score(scorer, candidates, prepared)
            seconds["score"] = time.perf_counter() - start
        return GenerationResult(
            prepared, method, candidates, selection, self.describe_components(), seconds
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

    def _score(
        self, scorer: ImageTextScorer, candidates: list[Candidate], prepared: Prepared
    ) -> dict[str, Any]:
        """Stage 7: each candidate's d_p, d_t and z; the selection (alpha, best, scorer, and
        the candidates the safety checker flagged: never scored nor chosen; ``best`` is None
        when it flagged every one)."""
        from tastemaker.generation.scoring import select_best

        flagged = [c.index for c in candidates if c.nsfw]
        eligible = [c for c in candidates if c.image is not None and not c.nsfw]
        selection: dict[str, Any] = {
            "alpha": self.config.scorer.alpha,
            "best": None,
            "scorer": self.scorer_name,
            "flagged": flagged,
        }
        if flagged:
            log.warning(
                "the safety checker flagged %s; excluded from the selection",
                plural(len(flagged), "candidate"),
            )
        if not eligible:
            return selection
        chosen = select_best(
            scorer,
            [c.image for c in eligible],
            prepared.preference.text,
            prepared.item_keywords.text,
            self.config.scorer.alpha,
        )
        for candidate, score in zip(eligible, chosen.scores, strict=True):
            candidate.scores = {
                "cos_p": score.cos_p,
                "cos_t": score.cos_t,
                "d_p": score.d_p,
                "d_t": score.d_t,
                "z": score.z,
            }
        return {**selection, "alpha": chosen.alpha, "best": eligible[chosen.best].index}


def _stack(rows: Sequence[Any]) -> Any:
    """One PromptEmbeds of many single-row ones (pooled vectors too, for SDXL)."""
    import torch

    from tastemaker.generation.generator import PromptEmbeds

    embeds = torch.cat([r.embeds for r in rows])
    pooled = None if rows[0].pooled is None else torch.cat([r.pooled for r in rows])
    return PromptEmbeds(embeds, pooled)


__all__ = ["PersonalizedGenerationPipeline"]
