"""PMG's own settings as a preset: history, repetition weighting, CLIP-logit z; the judge space."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.conditioning import ConditionConfig, compose_prompt, repeats
from tastemaker.generation.judge import judge_space, without_items
from tastemaker.generation.presets import apply_preset
from tastemaker.generation.scenario import PipelineConfig
from tastemaker.generation.scoring import EPS, logit_similarity, select_best
from tastemaker.pretrain import train_alignment

from .test_scoring import FixedScorer, blank


def test_pmg_paper_sets_the_release_settings_per_domain() -> None:
    movies = apply_preset(PipelineConfig(), "pmg-paper")
    assert (movies.history.order, movies.history.max_items) == ("rating", 3)
    assert movies.condition.repeat and not movies.condition.scale_embeddings
    assert movies.weights == [(1.0, 1.0), (2.0, 1.0)]
    assert (movies.scorer.similarity, movies.scorer.alpha) == ("logit", pytest.approx(2 / 3))
    products = apply_preset(PipelineConfig(domain="products"), "pmg-paper")
    assert products.history.max_items == 5 and products.history.domain == "products"
    assert products.weights == [(2.0, 1.0), (3.0, 1.0)]
    stickers = apply_preset(PipelineConfig(domain="stickers"), "pmg-paper")
    assert stickers.history == PipelineConfig(domain="stickers").history
    # Settings the preset does not name stay as the scenario had them.
    custom = PipelineConfig.model_validate({"history": {"min_rating": 3.5, "tags_per_item": 2}})
    laid = apply_preset(custom, "pmg-paper")
    assert (laid.history.min_rating, laid.history.tags_per_item) == (3.5, 2)
    assert apply_preset(custom, "default") == custom and apply_preset(custom, None) == custom
    with pytest.raises(ConfigError, match="unknown preset 'pmg'"):
        apply_preset(custom, "pmg")


def test_repeat_weighting_says_the_item_first_then_the_preferences_w_times() -> None:
    assert repeats((2.0, 1.0), ("preference", "item")) == {"preference": 2, "item": 1}
    assert repeats((1.0, 3.0), ("item", "preference")) == {"item": 3, "preference": 1}
    assert repeats((2.5, 1.0), ("preference",)) == {"preference": 1}  # alone: said once
    config = ConditionConfig(weights="2:1", repeat=True, scale_embeddings=False)
    comp = compose_prompt(["dark", "neon"], ["alien", "space ship"], config)
    assert comp.prompt == "a movie poster, alien, space ship, dark, neon, dark, neon"
    assert comp.order == ("item", "preference") and comp.repeats["preference"] == 2
    lo, hi = comp.char_spans["preference"]
    assert comp.prompt[lo:hi] == "dark, neon, dark, neon"
    # Without repeat the heavier segment comes first, said once.
    plain = compose_prompt(["dark", "neon"], ["alien"], ConditionConfig(weights="2:1"))
    assert plain.prompt == "a movie poster, dark, neon, alien"
    # Repeats count against the budget: a long list is cut so that both sayings fit.
    many = [f"word{i}" for i in range(40)]
    tight = compose_prompt(many, ["alien"], config, budget=30)
    assert tight.token_counts["prompt"] <= 30 and tight.keywords["item"] == ["alien"]
    kept = tight.keywords["preference"]
    assert 1 <= len(kept) < 40 and tight.prompt.count(kept[-1] + ",") >= 1
    assert tight.prompt.endswith(", ".join(kept) + ", " + ", ".join(kept))


class LogitFixed(FixedScorer):
    def to_d(self, cosines: np.ndarray) -> np.ndarray:
        return logit_similarity(cosines, 100.0)


def test_logit_z_picks_what_the_release_picks() -> None:
    np.testing.assert_allclose(logit_similarity([0.3, 0.0, -0.5], 100.0), [30.0, EPS, EPS])
    scorer = LogitFixed()
    candidates = [blank(1), blank(2), blank(3)]
    chosen = select_best(scorer, candidates, "space opera", "a cat", alpha=2 / 3)
    # cosines to (pref, item): (1, 0), (0.6, 0.8), (-1, 0); logits 100·cos floored at EPS.
    release = [
        math.log(max(100 * ct, EPS)) + 2 * math.log(max(100 * cp, EPS))
        for cp, ct in ((1.0, 0.0), (0.6, 0.8), (-1.0, 0.0))
    ]
    assert chosen.best == int(np.argmax(release)) == 1
    for score, want in zip(chosen.scores, release, strict=True):
        assert score.z == pytest.approx(want / 3)
    assert chosen.scores[1].d_t == pytest.approx(80.0)


def features(n: int, dim: int, modality: str, seed: int) -> ItemEmbeddings:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    ids = [f"i{k}" for k in range(n)]
    return ItemEmbeddings(ids, vectors, np.ones(n, bool), f"{modality}-enc", modality)


def test_the_judge_space_trains_on_items_the_selector_never_saw() -> None:
    image, text = features(120, 6, "image", 0), features(120, 5, "text", 1)
    small = {"dim": 4, "hidden": 0, "epochs": 3, "batch_size": 8}
    selector = train_alignment(image, text, {**small, "seed": 0}, progress=False)
    judge = judge_space(image, text, selector, progress=False)
    assert judge.config.seed == 1 and judge.config.dim == 4
    judged = {i for part in judge.split.values() for i in part}
    assert judged and judged.isdisjoint(selector.split["train"])
    assert judged == set(image.item_ids) - set(selector.split["train"])
    state_s, state_j = selector.module.state_dict(), judge.module.state_dict()
    assert not np.allclose(state_s["image.net.weight"], state_j["image.net.weight"])
    masked = without_items(image, {"i0"})
    assert not masked.mask[0] and not masked.vectors[0].any() and masked.mask[1:].all()
    with pytest.raises(DataError, match="selector's seed"):
        judge_space(image, text, selector, {"seed": 0}, progress=False)
