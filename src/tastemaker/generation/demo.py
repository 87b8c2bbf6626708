"""The generation part of ``tastemaker demo``: one user's keywords and prompt, offline and fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tastemaker.data.catalog import ITEM_ID
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import RATING, USER_ID
from tastemaker.errors import DataError
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.result import BEST_FILE, PAGE_FILE
from tastemaker.generation.scenario import KeywordsConfig, PipelineConfig


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


__all__ = ["demo_generation", "demo_user"]
