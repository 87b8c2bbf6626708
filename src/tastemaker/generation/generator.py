"""The image generator: any diffusers text-to-image pipeline, driven by prompt embeddings.

PMG conditions the generator on soft preference tokens and weighted keyword
embeddings, which no prompt string can express; so the generator takes
:class:`PromptEmbeds` (``prompt_embeds``, plus the pooled vector SDXL needs) and
text goes through :meth:`ImageGenerator.encode` first. Stable Diffusion 1.x, 2.x
and SDXL load by Hugging Face id or local folder; ``model="tiny"`` is a random
toy pipeline (:mod:`tastemaker.generation.tiny`) for tests and demos without weights.

Every image has its own seed and ``torch.Generator``, created on the CPU, so an
image depends only on (condition, seed): the same on CPU and CUDA up to float
precision, and the same whatever the batch it was drawn in. Where it runs (device,
dtype, memory options, scheduler) is :mod:`~tastemaker.generation.placement`'s; the
pipeline's safety checker's verdict on each image is kept (``GeneratedImages.nsfw``),
so a flagged (blacked-out) image is never scored or chosen.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tastemaker.atomic import atomic_path
from tastemaker.config import validate
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.placement import (
    SCHEDULERS,
    Device,
    configure,
    resolve_device,
    scheduler_class,
)
from tastemaker.hub import check_hub_model

log = logging.getLogger("tastemaker.generation")  # progress lines; the CLI shows them

if TYPE_CHECKING:
    from PIL.Image import Image

TINY = "tiny"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_SCHEDULER_CLASS = re.compile(r"^[A-Z]\w*Scheduler$")


class GeneratorConfig(BaseModel):
    """Which text-to-image pipeline, where it runs, and how it samples."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        description="Hugging Face id, local folder, or 'tiny' (random toy pipeline)",
    )
    torch_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: Device = Field("cpu", description="auto: cuda, else mps, else cpu")
    attention_slicing: bool = Field(False, description="attention in slices: less memory, slower")
    vae_tiling: bool = Field(
        False, description="decode images in tiles: large images in less memory"
    )
    cpu_offload: bool = Field(
        False, description="keep models on the CPU, each moved to the GPU while it runs (CUDA)"
    )
    scheduler: str | None = Field(
        None, description=f"{', '.join(SCHEDULERS)} or a diffusers class; None: the model's"
    )
    num_inference_steps: int = Field(30, gt=0)
    guidance_scale: float = Field(7.5, ge=0)
    height: int | None = Field(None, gt=0, multiple_of=8, description="pixels; None: the model's")
    width: int | None = Field(None, gt=0, multiple_of=8, description="pixels; None: the model's")
    seed: int = Field(0, ge=0, description="image i of a condition uses seed + i")
    num_images: int = Field(1, ge=1, description="images per condition")
    batch_size: int = Field(4, ge=1, description="images per denoising pass")
    negative_prompt: str = Field("", description="used when no negative embeddings are given")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is None or _SCHEDULER_CLASS.match(value):
            return value
        if value.lower() in SCHEDULERS:
            return value.lower()
        raise ValueError(
            f"unknown scheduler '{value}': use {', '.join(SCHEDULERS)} or a diffusers class name"
        )


@dataclass(frozen=True)
class PromptEmbeds:
    """A batch of text conditions: ``embeds`` (B, L, D) and, for SDXL, ``pooled`` (B, P)."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.embeds.ndim != 3:
            raise DataError(
                f"prompt embeddings have shape {tuple(self.embeds.shape)}",
                "pass (batch, tokens, dim) embeddings, e.g. from ImageGenerator.encode",
            )
        if self.pooled is not None and self.pooled.shape[0] != self.embeds.shape[0]:
            raise DataError(
                f"{self.pooled.shape[0]} pooled rows for {self.embeds.shape[0]} prompts",
                "pass one pooled row per prompt (ImageGenerator.encode makes both)",
            )

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    def rows(self, index: Sequence[int]) -> PromptEmbeds:
        """The conditions at ``index`` (repeats allowed), in that order."""
        idx = torch.as_tensor(list(index), dtype=torch.long, device=self.embeds.device)
        pooled = None if self.pooled is None else self.pooled[idx.to(self.pooled.device)]
        return PromptEmbeds(self.embeds[idx], pooled)


@dataclass
class GeneratedImages:
    """Images with the seed each was drawn from, the condition row it belongs to, and the
    pipeline's safety checker's verdict (None: the pipeline has no checker)."""

    images: list[Image]
    seeds: list[int]
    rows: list[int] = field(default_factory=list)
    nsfw: list[bool | None] = field(default_factory=list)

    def save(self, folder: Path, stem: str = "image") -> list[Path]:
        """Write ``{stem}-{row}-{seed}.png`` files atomically; returns their paths."""
        paths = []
        for image, seed, row in zip(self.images, self.seeds, self.rows, strict=True):
            path = Path(folder) / f"{stem}-{row}-{seed}.png"
            with atomic_path(path) as tmp:
                image.save(tmp, format="PNG")
            paths.append(path)
        return paths


def load_error(model: str, exc: Exception) -> ConfigError:
    """A generator that failed to load, with the way to get its weights onto this machine."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return ConfigError(
        f"cannot load generator '{model}' ({type(exc).__name__}: {reason})",
        f"download it once on a machine with internet (`hf download {model} --local-dir DIR`; "
        f"`huggingface-cli download` with older huggingface_hub) and pass DIR as the model, "
        f"or set HF_HOME to a Hugging Face cache that holds it; model='tiny' needs no weights",
    )


@lru_cache(maxsize=1)
def load_pipeline(
    model: str,
    torch_dtype: str,
    device: str,
    *,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
    cpu_offload: bool = False,
    scheduler: str | None = None,
) -> Any:
    """The pipeline for ``model`` on ``device`` with the memory options and scheduler asked
    for, loaded once per process."""
    from tastemaker.encoders.base import model_load_errors, model_source, quiet_pil_fallback

    quiet_pil_fallback()
    device = resolve_device(device)
    if device == "cpu" and torch_dtype == "float16":
        raise ConfigError("float16 diffusion does not run on the CPU", "use float32 or bfloat16")
    if cpu_offload and device != "cuda":
        raise ConfigError(
            f"CPU offload moves models to a CUDA GPU while they run; the device is {device}",
            "drop --cpu-offload, or use --device cuda",
        )
    new_scheduler = scheduler_class(scheduler) if scheduler else None
    log.debug("loading the generator %s on %s", model, device)
    if model == TINY:
        from tastemaker.generation.tiny import tiny_stable_diffusion

        pipeline = tiny_stable_diffusion()
        if torch_dtype != "float32":
            pipeline = pipeline.to(dtype=DTYPES[torch_dtype])
    else:
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging

        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()  # offline, hub lookups warn before our error
        try:
            check_hub_model(model_source(model))  # unreachable or unknown: fails now
            pipeline = DiffusionPipeline.from_pretrained(
                model_source(model), dtype=DTYPES[torch_dtype]
            )
        except model_load_errors() as exc:  # the user's model choice: say how to fix it
            raise load_error(model, exc) from exc
        finally:
            diffusers_logging.set_verbosity(verbosity)
    if not (hasattr(pipeline, "encode_prompt") and getattr(pipeline, "tokenizer", None)):
        raise ConfigError(
            f"'{model}' is a {type(pipeline).__name__}, not a text-to-image pipeline with a CLIP "
            "text encoder",
            "use a Stable Diffusion 1.x, 2.x or SDXL checkpoint",
        )
    pipeline.set_progress_bar_config(disable=True)
    return configure(
        pipeline,
        device,
        attention_slicing=attention_slicing,
        vae_tiling=vae_tiling,
        cpu_offload=cpu_offload,
        scheduler=new_scheduler,
    )


class ImageGenerator:
    """Text-to-image generation from prompt embeddings, seeded per image and batched.

    Build it from a :class:`GeneratorConfig` (or its fields as keywords), or wrap a
    pipeline already in memory with ``pipeline=``.
    """

    def __init__(
        self, config: GeneratorConfig | None = None, *, pipeline: Any = None, **params: Any
    ) -> None:
        self.config = config or validate(GeneratorConfig, params, where="generator")
        self._pipeline = pipeline

    def __repr__(self) -> str:
        return f"ImageGenerator(model={self.config.model!r}, device={self.config.device!r})"

    @property
    def pipeline(self) -> Any:
        """The diffusers pipeline (loaded on first use)."""
        if self._pipeline is None:
            c = self.config
            self._pipeline = load_pipeline(
                c.model,
                c.torch_dtype,
                c.device,
                attention_slicing=c.attention_slicing,
                vae_tiling=c.vae_tiling,
                cpu_offload=c.cpu_offload,
                scheduler=c.scheduler,
            )
        return self._pipeline

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer

    @property
    def max_length(self) -> int:
        """Tokens the text encoder reads, start and end tokens included (77 for CLIP)."""
        return int(self.tokenizer.model_max_length)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the GPU a CPU-offloaded pipeline runs each model on, else its own."""
        return getattr(self.pipeline, "_execution_device", self.pipeline.device)

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.unet.dtype

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) of the images: the config's, else the model's native size."""
        native = int(self.pipeline.unet.config.sample_size) * int(self.pipeline.vae_scale_factor)
        return self.config.height or native, self.config.width or native

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without the start/end tokens."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False).input_ids)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> PromptEmbeds:
        """Texts through the pipeline's own tokenizer(s) and text encoder(s), as the pipeline
        would encode a ``prompt`` (padded to :attr:`max_length`; longer texts are truncated)."""
        out = self.pipeline.encode_prompt(
            prompt=list(texts),
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        pooled = out[2] if len(out) == 4 else None  # SDXL: (embeds, neg, pooled, neg_pooled)
        return PromptEmbeds(out[0], pooled)

    def encode_prompt(self, texts: Sequence[str]) -> torch.Tensor:
        """The (B, L, D) token embeddings of :meth:`encode`."""
        return self.encode(texts).embeds

    def negative(self, like: PromptEmbeds, text: str | None = None) -> PromptEmbeds:
        """``text`` (default: the config's negative prompt) as one row; all zeros where the
        pipeline does that for an empty one (SDXL's ``force_zeros_for_empty_prompt``)."""
        text = self.config.negative_prompt if text is None else text
        if not text and getattr(self.pipeline.config, "force_zeros_for_empty_prompt", False):
            row = like.rows([0])
            pooled = None if row.pooled is None else torch.zeros_like(row.pooled)
            return PromptEmbeds(torch.zeros_like(row.embeds), pooled)
        return self.encode([text])

    @torch.no_grad()
    def generate(
        self,
        prompt: PromptEmbeds | torch.Tensor,
        negative: PromptEmbeds | None = None,
        *,
        seeds: Sequence[int] | None = None,
        progress: bool = True,
    ) -> GeneratedImages:
        """Images for each condition row of ``prompt``, one per seed.

        ``seeds`` defaults to ``seed, seed + 1, ...`` (``num_images`` of them); every row
        uses the same seeds, so rows differ only by their condition. ``negative`` has one
        row or one per prompt row; None uses the config's negative prompt.
        """
        from tqdm.auto import tqdm

        positive = prompt if isinstance(prompt, PromptEmbeds) else PromptEmbeds(prompt)
        negative = self.negative(positive) if negative is None else negative
        if len(negative) not in (1, len(positive)):
            raise DataError(
                f"{len(negative)} negative rows for {len(positive)} prompt rows",
                "pass one negative row, or one per prompt row",
            )
        c = self.config
        seeds = list(seeds) if seeds is not None else [c.seed + i for i in range(c.num_images)]
        jobs = [(row, seed) for row in range(len(positive)) for seed in seeds]
        height, width = self.resolution
        result = GeneratedImages([], [], [], [])
        bar = tqdm(total=len(jobs), desc="generate", unit="image", disable=not progress or None)
        began = time.perf_counter()
        for start in range(0, len(jobs), c.batch_size):
            chunk = jobs[start : start + c.batch_size]
            rows = [row for row, _ in chunk]
            pos = positive.rows(rows)
            neg = negative.rows([row if len(negative) > 1 else 0 for row in rows])
            extra = {}
            if pos.pooled is not None:
                extra["pooled_prompt_embeds"] = pos.pooled.to(self.device, self.dtype)
                extra["negative_pooled_prompt_embeds"] = neg.pooled.to(self.device, self.dtype)
            out = self.pipeline(
                prompt_embeds=pos.embeds.to(self.device, self.dtype),
                negative_prompt_embeds=neg.embeds.to(self.device, self.dtype),
                height=height,
                width=width,
                num_inference_steps=c.num_inference_steps,
                guidance_scale=c.guidance_scale,
                generator=[torch.Generator("cpu").manual_seed(seed) for _, seed in chunk],
                output_type="pil",
                **extra,
            )
            flags = getattr(out, "nsfw_content_detected", None)  # None: no safety checker
            result.images.extend(out.images)
            result.seeds.extend(seed for _, seed in chunk)
            result.rows.extend(rows)
            result.nsfw.extend([None] * len(chunk) if flags is None else map(bool, flags))
            bar.update(len(chunk))
            done, elapsed = len(result.images), time.perf_counter() - began
            log.info(
                "generate: %d/%d images, %.1f s, ETA %.0f s",
                done, len(jobs), elapsed, elapsed / done * (len(jobs) - done),
            )  # fmt: skip
        bar.close()
        return result
