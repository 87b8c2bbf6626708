"""GPU settings of the image generator (device, dtype, memory options, scheduler, VAE
precision) and the safety checker's flags, on the tiny offline pipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tastemaker.config import validate
from tastemaker.data.dataset import Dataset
from tastemaker.errors import ConfigError
from tastemaker.generation.generator import GeneratorConfig, ImageGenerator, load_pipeline
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.placement import resolve_device, vae_precision
from tastemaker.generation.tiny import tiny_stable_diffusion, tiny_stable_diffusion_xl

from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_pipeline import movies, tiny_config  # noqa: F401 - fixture

PROMPT = "a movie poster, astronaut, space"


def pixels(image: Any) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_scheduler_and_memory_options_reach_the_pipeline() -> None:
    load_pipeline.cache_clear()
    plain = ImageGenerator(model="tiny", num_inference_steps=3)
    before = plain.generate(plain.encode([PROMPT]), seeds=[0], progress=False).images[0]
    ddim_config = dict(plain.pipeline.scheduler.config)
    gen = ImageGenerator(
        model="tiny", num_inference_steps=3, scheduler="Euler", attention_slicing=True,
        vae_tiling=True,
    )  # fmt: skip
    pipeline = gen.pipeline
    assert type(pipeline.scheduler).__name__ == "EulerDiscreteScheduler"
    for key in ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps"):
        assert pipeline.scheduler.config[key] == ddim_config[key]  # the model's noise schedule
    assert pipeline.vae.use_tiling
    processors = {type(p).__name__ for p in pipeline.unet.attn_processors.values()}
    assert processors == {"SlicedAttnProcessor"}
    after = gen.generate(gen.encode([PROMPT]), seeds=[0], progress=False).images[0]
    assert np.abs(pixels(after) - pixels(before)).mean() > 1  # another sampler, another image
    load_pipeline.cache_clear()


def test_attention_slicing_changes_memory_not_images() -> None:
    load_pipeline.cache_clear()
    plain = ImageGenerator(model="tiny", num_inference_steps=2)
    image = plain.generate(plain.encode([PROMPT]), seeds=[3], progress=False).images[0]
    load_pipeline.cache_clear()
    sliced = ImageGenerator(model="tiny", num_inference_steps=2, attention_slicing=True)
    again = sliced.generate(sliced.encode([PROMPT]), seeds=[3], progress=False).images[0]
    assert np.abs(pixels(image) - pixels(again)).max() <= 1
    load_pipeline.cache_clear()


def test_devices_resolve_and_refuse_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    for device in ("cuda", "mps"):
        with pytest.raises(ConfigError, match=f"device '{device}' was asked for"):
            resolve_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    load_pipeline.cache_clear()
    with pytest.raises(ConfigError, match="CPU offload"):
        load_pipeline("tiny", "float32", "cpu", cpu_offload=True)
    with pytest.raises(ConfigError, match="float16"):
        load_pipeline("tiny", "float16", "auto")  # auto is the CPU here


def test_generator_flags_are_validated() -> None:
    assert validate(GeneratorConfig, {"scheduler": "DPM++"}).scheduler == "dpm++"
    assert validate(GeneratorConfig, {"scheduler": "DDIMScheduler"}).scheduler == "DDIMScheduler"
    for bad in ({"scheduler": "fastest"}, {"device": "tpu"}, {"torch_dtype": "float64"}):
        with pytest.raises(ConfigError):
            validate(GeneratorConfig, bad)
    load_pipeline.cache_clear()
    with pytest.raises(ConfigError, match="diffusers has no scheduler 'NoSuchScheduler'"):
        load_pipeline("tiny", "float32", "cpu", scheduler="NoSuchScheduler")


def test_a_float16_vae_that_asks_for_upcasting_runs_in_float32() -> None:
    vae = tiny_stable_diffusion_xl().vae.to(torch.float16)
    assert vae.config.force_upcast  # SDXL's VAE overflows in float16
    with vae_precision(vae) as dtype:
        assert dtype == torch.float32 and vae.dtype == torch.float32
    assert vae.dtype == torch.float16  # back as it was
    vae.register_to_config(force_upcast=False)
    with vae_precision(vae) as dtype:
        assert dtype == torch.float16 and vae.dtype == torch.float16
    plain = tiny_stable_diffusion().vae  # float32: nothing to upcast
    with vae_precision(plain) as dtype:
        assert dtype == torch.float32


class FlaggingPipeline:
    """The tiny pipeline with a stand-in safety checker that flags the images of some seeds."""

    def __init__(self, flagged: set[int]) -> None:
        self.inner = tiny_stable_diffusion()
        self.flagged = flagged

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, **kwargs: Any) -> Any:
        out = self.inner(**kwargs)
        seeds = [g.initial_seed() for g in kwargs["generator"]]
        out.nsfw_content_detected = [s in self.flagged for s in seeds]
        return out


def _render(movies: Dataset, clip: Path, flagged: set[int]) -> Any:  # noqa: F811
    config = tiny_config(None, clip, weights=["1:1"])
    generator = ImageGenerator(config.generator, pipeline=FlaggingPipeline(flagged))
    pipe = PersonalizedGenerationPipeline(config, generator=generator)
    return pipe(movies, "u1", "m3", n_candidates=3)


def test_flagged_candidates_are_recorded_and_never_selected(
    movies: Dataset,  # noqa: F811
    tiny_clip: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    clean = _render(movies, tiny_clip, set())
    assert [c.nsfw for c in clean.candidates] == [False, False, False]
    best_seed = clean.best.seed
    result = _render(movies, tiny_clip, {best_seed})
    flagged = [c for c in result.candidates if c.nsfw]
    assert [c.seed for c in flagged] == [best_seed] and flagged[0].scores is None
    assert result.best is not None and result.best.seed != best_seed
    assert result.selection["flagged"] == [flagged[0].index]
    # the others keep the scores they had: the flag only takes one out of the running
    kept = {c.seed: c.scores["z"] for c in clean.candidates if c.seed != best_seed}
    assert {c.seed: c.scores["z"] for c in result.candidates if not c.nsfw} == pytest.approx(kept)
    record = json.loads((result.save(tmp_path / "one") / "result.json").read_text())
    assert [c["nsfw"] for c in record["candidates"]] == [c.nsfw for c in result.candidates]
    # the result page marks it, once; a clean run's page marks nothing
    page = (tmp_path / "one" / "index.html").read_text()
    assert page.count("flagged by the safety checker: not scored, not chosen") == 1
    assert (
        "flagged by the safety checker"
        not in (clean.save(tmp_path / "clean") / "index.html").read_text()
    )

    everything = _render(movies, tiny_clip, {0, 1, 2})
    assert everything.best is None and everything.selection["best"] is None
    folder = everything.save(tmp_path / "all")
    assert not (folder / "best.png").exists()
    assert json.loads((folder / "result.json").read_text())["best_file"] is None
