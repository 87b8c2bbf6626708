"""The image generator and PMG's conditioning, on tiny random pipelines built offline."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tastemaker.config import validate
from tastemaker.encoders.base import PIL_FALLBACK_NOTICE, quiet_pil_fallback
from tastemaker.errors import ConfigError
from tastemaker.generation.conditioning import (
    DOMAINS,
    ConditionConfig,
    approx_tokens,
    build_condition,
    compose_prompt,
    parse_weights,
)
from tastemaker.generation.generator import ImageGenerator, load_pipeline
from tastemaker.generation.tiny import tiny_stable_diffusion_xl

PROMPT = "a movie poster, astronaut, space"
PREFERENCE = ["dark", "neon city at night", "moody lighting", "retro"]
ITEM = ["astronaut", "space", "robot"]


@pytest.fixture(scope="module")
def generator() -> ImageGenerator:
    return ImageGenerator(model="tiny", num_inference_steps=4, guidance_scale=7.5)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# --- generation ---------------------------------------------------------------------------


def test_generation_is_seeded_per_image(generator: ImageGenerator) -> None:
    embeds = generator.encode([PROMPT])
    first = generator.generate(embeds, seeds=[3, 4], progress=False)
    again = generator.generate(embeds, seeds=[3, 4], progress=False)
    assert first.seeds == [3, 4] and first.rows == [0, 0]
    assert first.images[0].size == (32, 32)
    for a, b in zip(first.images, again.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(first.images[0]) - pixels(first.images[1])).mean() > 5
    # An image depends on its own seed only, not on the batch it was drawn in.
    alone = generator.generate(embeds, seeds=[4], progress=False)
    assert np.abs(pixels(alone.images[0]) - pixels(first.images[1])).max() <= 1


def test_default_seeds_follow_the_config() -> None:
    gen = ImageGenerator(model="tiny", num_inference_steps=2, seed=7, num_images=3, batch_size=2)
    out = gen.generate(gen.encode([PROMPT]), progress=False)
    assert out.seeds == [7, 8, 9] and len(out.images) == 3


def test_prompt_embeds_path_equals_the_prompt_path(generator: ImageGenerator) -> None:
    ours = generator.generate(generator.encode([PROMPT]), seeds=[0], progress=False).images[0]
    theirs = generator.pipeline(
        prompt=PROMPT,
        negative_prompt="",
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert np.array_equal(pixels(ours), pixels(theirs))


def test_rows_share_seeds_and_differ_by_condition(generator: ImageGenerator, tmp_path) -> None:
    out = generator.generate(generator.encode([PROMPT, "a cat"]), seeds=[1, 2], progress=False)
    assert out.rows == [0, 0, 1, 1] and out.seeds == [1, 2, 1, 2]
    single = generator.generate(generator.encode([PROMPT]), seeds=[1], progress=False)
    assert np.abs(pixels(out.images[0]) - pixels(single.images[0])).max() <= 1
    assert np.abs(pixels(out.images[0]) - pixels(out.images[2])).mean() > 1
    paths = out.save(tmp_path, stem="poster")
    assert [p.name for p in paths] == [
        "poster-0-1.png",
        "poster-0-2.png",
        "poster-1-1.png",
        "poster-1-2.png",
    ]
    assert np.array_equal(pixels(Image.open(paths[3])), pixels(out.images[3]))


def test_sdxl_takes_pooled_embeddings() -> None:
    pipeline = tiny_stable_diffusion_xl()
    gen = ImageGenerator(pipeline=pipeline, num_inference_steps=3, guidance_scale=5.0)
    embeds = gen.encode([PROMPT])
    assert embeds.embeds.shape == (1, 77, 64) and embeds.pooled.shape == (1, 32)
    negative = gen.negative(embeds)  # SDXL zeroes an empty negative prompt
    assert not negative.embeds.any() and not negative.pooled.any()
    ours = gen.generate(embeds, seeds=[0], progress=False).images[0]
    theirs = pipeline(
        prompt=PROMPT,
        num_inference_steps=3,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert np.array_equal(pixels(ours), pixels(theirs))


def test_generator_not_loadable_offline_says_how_to_get_weights(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    load_pipeline.cache_clear()
    for model in ["tastemaker-tests/no-such-generator", str(tmp_path)]:
        with pytest.raises(ConfigError) as info:
            _ = ImageGenerator(model=model).pipeline
        message = str(info.value)
        assert f"cannot load generator '{model}'" in message
        assert f"hf download {model} --local-dir DIR" in message
        assert "HF_HOME" in message


def test_generator_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="height"):
        ImageGenerator(model="tiny", height=30)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        ImageGenerator(model="tiny", num_inference_steps=0)
    with pytest.raises(ConfigError, match="float16"):
        load_pipeline("tiny", "float16", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            load_pipeline("tiny", "float32", "cuda")


# --- weights and composition -------------------------------------------------------------


def test_parse_weights() -> None:
    assert parse_weights("1:3") == (1.0, 3.0)
    assert parse_weights([0, 2]) == (0.0, 2.0)
    assert validate(ConditionConfig, {"weights": "2:1"}).weights == (2.0, 1.0)
    for bad in ["3", "a:b", "-1:2", "0:0", "nan:1", "1:2:3"]:
        with pytest.raises(ConfigError):
            parse_weights(bad)
    with pytest.raises(ConfigError, match="weights"):
        validate(ConditionConfig, {"weights": "1-3"})


def test_composition_orders_segments_by_weight() -> None:
    even = compose_prompt(PREFERENCE, ITEM)
    assert even.prompt == (
        "a movie poster, astronaut, space, robot, dark, neon city at night, moody lighting, retro"
    )
    assert even.order == ("item", "preference")
    pref_first = compose_prompt(PREFERENCE, ITEM, ConditionConfig(weights=(3, 1)))
    assert pref_first.prompt.startswith("a movie poster, dark, neon city at night")
    item_only = compose_prompt(PREFERENCE, ITEM, ConditionConfig(weights="0:1"))
    assert item_only.prompt == "a movie poster, astronaut, space, robot"
    assert item_only.dropped["preference"] == PREFERENCE and item_only.keywords["preference"] == []
    # Duplicates and blanks go; the domain sets the prefix and the negative prompt.
    products = compose_prompt(["Red", "red ", ""], ["bag"], ConditionConfig(domain="products"))
    assert products.prompt == "a product photo, studio lighting, plain background, bag, Red"
    assert products.negative_prompt == DOMAINS["products"].negative
    custom = compose_prompt([], ["bag"], ConditionConfig(prefix="", negative_prompt="ugly"))
    assert (custom.prompt, custom.negative_prompt) == ("bag", "ugly")
    # A keyword of both segments is said once, in the heavier (first) one.
    shared = compose_prompt(["Drama", "noir"], ["drama", "rain"], ConditionConfig(weights="3:1"))
    assert shared.prompt == "a movie poster, Drama, noir, rain"
    assert shared.keywords["item"] == ["rain"] and shared.dropped["item"] == []
    only_shared = compose_prompt(["Drama"], ["drama"], ConditionConfig(weights="1:3"))
    assert only_shared.prompt == "a movie poster, drama" and only_shared.order == ("item",)


def test_truncation_keeps_both_segments_proportionally() -> None:
    preference = [f"pref{i} word" for i in range(40)]  # 80 approximate tokens
    item = [f"item{i}" for i in range(20)]  # 20
    comp = compose_prompt(preference, item, budget=40)
    counts = comp.token_counts
    assert approx_tokens(comp.prompt) == counts["prompt"] <= 40
    kept_p, kept_t = len(comp.keywords["preference"]), len(comp.keywords["item"])
    assert kept_p > 0 and kept_t > 0
    # Each keeps its leading keywords, and about the same share of its own tokens.
    assert comp.keywords["preference"] == preference[:kept_p]
    assert comp.keywords["item"] == item[:kept_t]
    assert comp.dropped["item"] == item[kept_t:]
    assert abs(kept_p / 40 - kept_t / 20) < 0.15
    # A single long item keyword is cut by words, never dropped.
    long_item = compose_prompt(preference, [" ".join(["robot"] * 30)], budget=20)
    assert long_item.keywords["item"] and long_item.keywords["item"][0].startswith("robot")
    assert approx_tokens(long_item.prompt) <= 20
    with pytest.raises(ConfigError, match="fewer soft tokens"):
        compose_prompt(preference, item, budget=3)


# --- the encoded condition ---------------------------------------------------------------


def test_even_weights_give_the_pipelines_own_encoding(generator: ImageGenerator) -> None:
    cond = build_condition(generator, PREFERENCE, ITEM)
    assert torch.equal(cond.embeds.embeds, generator.encode_prompt([cond.prompt]))
    assert torch.equal(cond.negative.embeds, generator.encode_prompt([DOMAINS["movies"].negative]))
    assert cond.scales == (1.0, 1.0)
    summary = cond.summary()
    assert summary["prompt"] == cond.prompt and summary["keywords"]["item"] == ITEM


def test_weights_scale_segment_embeddings_as_documented(generator: ImageGenerator) -> None:
    cond = build_condition(generator, PREFERENCE, ITEM, config=ConditionConfig(weights="1:3"))
    assert cond.scales == (pytest.approx(1 / 3), 1.0)
    plain = generator.encode_prompt([cond.prompt])[0]
    empty = generator.encode_prompt([""])[0]
    got = cond.embeds.embeds[0]
    lo, hi = cond.spans["preference"]
    # The spans hold exactly the segments' tokens (start token at 0, prefix after it).
    ids = generator.tokenizer(cond.prompt).input_ids

    def tokens(words: list[str]) -> list[int]:
        return generator.tokenizer(", ".join(words), add_special_tokens=False).input_ids

    assert ids[lo:hi] == tokens(PREFERENCE)
    assert ids[slice(*cond.spans["item"])] == tokens(ITEM)
    assert cond.spans["prefix"] == (1, 1 + generator.count_tokens("a movie poster"))
    # e' = e0 + s (e - e0) on the preference tokens, nothing else touched.
    want = empty[lo:hi] + (plain[lo:hi] - empty[lo:hi]) / 3
    assert torch.allclose(got[lo:hi], want, atol=1e-6)
    assert not torch.allclose(got[lo:hi], plain[lo:hi], atol=1e-3)
    assert torch.equal(got[:lo], plain[:lo]) and torch.equal(got[hi:], plain[hi:])
    unscaled = build_condition(
        generator, PREFERENCE, ITEM, config=ConditionConfig(weights="1:3", scale_embeddings=False)
    )
    assert torch.equal(unscaled.embeds.embeds[0], plain)


def test_soft_tokens_lead_and_the_length_is_kept(generator: ImageGenerator) -> None:
    soft = torch.randn(4, 32)
    colours = ["red", "blue", "green", "gold", "black", "white", "dark", "bright"]
    preference = [f"{c} {w}" for w in ["noir", "neon", "retro", "vintage", "epic"] for c in colours]
    cond = build_condition(generator, preference, ITEM, soft_tokens=soft)
    counts = cond.token_counts
    assert counts["soft"] == 4 and counts["total"] <= counts["length"] == 77
    assert len(generator.tokenizer(cond.prompt).input_ids) + 4 <= 77
    kept = cond.composition.keywords
    assert kept["item"] and kept["item"] == ITEM[: len(kept["item"])]  # the item survives
    assert kept["preference"] and cond.composition.dropped["preference"]
    plain = generator.encode_prompt([cond.prompt])
    got = cond.embeds.embeds
    assert got.shape == cond.negative.embeds.shape == (1, 77, 32)
    assert torch.equal(got[0, :4], soft) and torch.equal(got[:, 4:], plain[:, :73])
    assert cond.spans["soft"] == (0, 4) and cond.spans["prefix"][0] == 5
    image = generator.generate(cond.embeds, cond.negative, progress=False)
    assert len(image.images) == 1


def test_loading_a_pipeline_prints_no_torchvision_notice() -> None:
    """tastemaker reads images with Pillow by design; transformers' notice about its PIL
    fallback (printed once per process, so checked in a fresh one) must not reach users."""
    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from tastemaker.generation.generator import load_pipeline\n"
        "load_pipeline('tiny', 'float32', 'cpu')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torchvision" not in done.stderr + done.stdout


def test_the_torchvision_filter_lets_every_other_message_through() -> None:
    quiet_pil_fallback()
    quiet_pil_fallback()  # idempotent: one filter
    logger = logging.getLogger("transformers.utils.import_utils")
    assert sum(isinstance(f, logging.Filter) for f in logger.filters) == 1

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(logger.name, logging.WARNING, __file__, 1, message, None, None)

    assert not logger.filter(record(f"`CLIPImageProcessor` {PIL_FALLBACK_NOTICE}; falling back"))
    assert logger.filter(record("something else went wrong"))
