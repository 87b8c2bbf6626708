"""Soft preference embeddings: what a user likes that keywords cannot say (PMG section 3.3).

A frozen causal LLM reads the user's serialized history followed by K trainable
"multimodal" token embeddings, with a P-Tuning v2 prefix (trainable keys and
values prepended to every layer's attention; Liu et al., 2022). The LLM's last
hidden states at the K tokens, mapped by a linear layer to the generator's
text-encoder width, are K soft tokens (K, D) that join the generator's condition
(:func:`tastemaker.generation.conditioning.attach_soft_tokens`). PMG's defaults:
K = 4 tokens, prefix length 4.

Training uses the diffusion loss against images of items the user liked: encode
the image with the VAE, add noise at a random timestep, and let the UNet,
conditioned on ``[soft tokens ; encoded prompt]``, predict it; the MSE between
prediction and target (the noise, or the velocity for v-prediction models) is
back-propagated through the frozen UNet and LLM into the tokens, the prefix and
the linear layer, the only parts that train. Noise follows the DDPM forward
process of the pipeline's own scheduler config, whatever its sampler.

Every random draw of step s (batch, latent sample, noise, timesteps) comes from
a generator seeded by (seed, s), so a resumed run repeats exactly what an
uninterrupted one would have done. Checkpoints hold the trainable tensors and
the optimizer's moments as safetensors, and scalars as JSON; nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tastemaker.atomic import atomic_path, write_bytes, write_text
from tastemaker.config import validate
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.conditioning import attach_soft_tokens

if TYPE_CHECKING:
    from PIL.Image import Image

    from tastemaker.generation.generator import ImageGenerator, PromptEmbeds

CHECKPOINT = "checkpoint"
TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"
LOG_FILE = "training_log.json"
PLOT_FILE = "loss.png"
# Fields a resumed run may change; any other change makes the checkpoint a different run.
RESUMABLE = frozenset({"steps", "checkpoint_every"})
_STRIDE = 1_000_003  # random streams: (seed * 3 + stream) * stride + n, distinct for n < stride
STEPS, SHUFFLES, EVALUATION = range(3)


class SoftPromptConfig(BaseModel):
    """Soft preference tokens and how they train."""

    model_config = ConfigDict(extra="forbid")

    num_tokens: int = Field(4, ge=1, description="K multimodal tokens (PMG: 4)")
    prefix_length: int = Field(4, ge=0, description="P-Tuning v2 prefix per layer (PMG: 4)")
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    steps: int = Field(500, ge=1)
    batch_size: int = Field(4, ge=1, description="images per step")
    seed: int = Field(0, ge=0)
    max_history_tokens: int = Field(480, ge=1, description="longer histories keep their start")
    template: str = Field(
        "{history}\nThe pictures this user likes look like:",
        description="LLM input; the soft tokens follow it",
    )
    checkpoint_every: int = Field(100, ge=1, description="steps between checkpoints")

    @field_validator("template")
    @classmethod
    def _has_history(cls, value: str) -> str:
        if value.count("{history}") != 1:
            raise ValueError("the template must contain {history} exactly once")
        return value


@dataclass(frozen=True)
class SoftPromptExample:
    """One training image: the user's serialized history, an item they liked, its text."""

    history: str
    image: Image
    prompt: str = ""


@dataclass
class SoftPromptRun:
    """What :meth:`SoftPreferenceTrainer.train` did and wrote."""

    losses: list[float]
    first_step: int
    last_step: int
    checkpoint: Path
    log: Path
    plot: Path


def image_tensor(images: Sequence[Image], height: int, width: int) -> torch.Tensor:
    """Images as (N, 3, height, width) floats in [-1, 1]: centre crop to the aspect, bicubic."""
    from PIL import Image as PILImage

    pixels = []
    for image in images:
        w, h = image.size
        scale = max(width / w, height / h)
        cw, ch = width / scale, height / scale
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        resized = image.convert("RGB").resize((width, height), PILImage.Resampling.BICUBIC, box=box)
        pixels.append(np.asarray(resized, dtype=np.uint8))
    batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


class SoftPreferenceEncoder(torch.nn.Module):
    """The trainable parts: K token embeddings, the per-layer prefix, the output projection."""

    def __init__(self, llm_config: Any, num_tokens: int, prefix_length: int, width: int) -> None:
        super().__init__()
        text = llm_config.get_text_config()
        hidden = int(text.hidden_size)
        heads = int(text.num_attention_heads)
        kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
        self.tokens = torch.nn.Parameter(torch.zeros(num_tokens, hidden))
        # (layer, key/value, kv head, position, head dim): P-Tuning v2's past keys/values.
        prefix = torch.zeros(text.num_hidden_layers, 2, kv_heads, prefix_length, head_dim)
        self.prefix = torch.nn.Parameter(prefix)
        self.proj = torch.nn.Linear(hidden, width)

    def forward(
        self, llm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, K, width) soft tokens for left-padded histories."""
        from transformers import DynamicCache

        embeds = llm.get_input_embeddings()(input_ids)
        batch, k, p = embeds.shape[0], self.tokens.shape[0], self.prefix.shape[3]
        tokens = self.tokens.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        inputs = torch.cat([embeds, tokens], dim=1)
        seen = torch.cat([attention_mask, attention_mask.new_ones(batch, k)], dim=1)
        positions = (seen.cumsum(1) - 1).clamp(min=0) + p
        cache = None
        if p:
            prefix = self.prefix.to(embeds.dtype)
            cache = DynamicCache(
                [
                    (layer[0].expand(batch, -1, -1, -1), layer[1].expand(batch, -1, -1, -1))
                    for layer in prefix
                ]
            )
        mask = torch.cat([seen.new_ones(batch, p), seen], dim=1)
        out = llm.base_model(
            inputs_embeds=inputs,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=p > 0,
        )
        return self.proj(out.last_hidden_state[:, -k:].to(self.proj.weight.dtype))


@dataclass(frozen=True)
class _Prepared:
    """Examples turned into tensors once: LLM inputs, latent distributions, prompts."""

    history_ids: list[list[int]]
    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    prompts: PromptEmbeds
    data_hash: str


def _rng(seed: int, stream: int, n: int) -> torch.Generator:
    """The CPU generator for draw ``n`` of ``stream`` (steps, epoch shuffles, evaluation)."""
    return torch.Generator("cpu").manual_seed((seed * 3 + stream) * _STRIDE + n)


def _freeze(module: Any) -> None:
    module.requires_grad_(False)
    module.eval()


class SoftPreferenceTrainer:
    """Trains soft preference tokens for a generator, and computes them for a history.

    ``llm`` is any Hugging Face causal LM (frozen here) and ``tokenizer`` its tokenizer;
    ``generator`` is the :class:`ImageGenerator` the tokens are for (frozen here).
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        generator: ImageGenerator,
        config: SoftPromptConfig | None = None,
        **params: Any,
    ) -> None:
        from diffusers import DDPMScheduler

        self.config = config or validate(SoftPromptConfig, params, where="soft prompt")
        self.llm, self.tokenizer, self.generator = llm, tokenizer, generator
        _freeze(llm)
        pipeline = generator.pipeline
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            if getattr(pipeline, name, None) is not None:
                _freeze(getattr(pipeline, name))
        width = int(generator.encode_prompt([""]).shape[-1])
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        c = self.config
        with torch.random.fork_rng(devices=[]):  # seeded init, the caller's RNG untouched
            torch.manual_seed(c.seed)
            self.encoder = SoftPreferenceEncoder(llm.config, c.num_tokens, c.prefix_length, width)
            table = llm.get_input_embeddings().weight
            rows = torch.randint(table.shape[0], (c.num_tokens,))
            with torch.no_grad():  # start from real word embeddings: in the LLM's range
                self.encoder.tokens.copy_(table[rows.to(table.device)].float().cpu())
                torch.nn.init.normal_(self.encoder.prefix, std=0.02)
        self.encoder.to(llm.get_input_embeddings().weight.device)

    # --- inputs -------------------------------------------------------------------------

    def _history_ids(self, history: str) -> list[int]:
        """The LLM input of a history; a long one keeps its start (PMG: most recent first)."""
        ids = self.tokenizer(history, add_special_tokens=False, verbose=False).input_ids
        if len(ids) > self.config.max_history_tokens:
            history = self.tokenizer.decode(ids[: self.config.max_history_tokens])
        text = self.config.template.format(history=history)
        return list(self.tokenizer(text, verbose=False).input_ids)

    def _llm_batch(self, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and mask, so the soft tokens sit at the same place in every row."""
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        width = max(map(len, rows))
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        device = self.encoder.tokens.device
        return ids.to(device), mask.to(device)

    @torch.no_grad()
    def _prepare(self, examples: Sequence[SoftPromptExample]) -> _Prepared:
        from PIL.Image import Image as PILImage

        if not examples:
            raise DataError("no training examples", "pass images of items the user liked")
        budget = self.generator.max_length - 2 - self.config.num_tokens
        digest = hashlib.sha256()
        for i, example in enumerate(examples):
            if not isinstance(example.image, PILImage):
                raise DataError(
                    f"example {i} has a {type(example.image).__name__} as its image",
                    "load each image with PIL.Image.open(path)",
                )
            if not example.history.strip():
                raise DataError(f"example {i} has an empty history", "serialize the history")
            if (n := self.generator.count_tokens(example.prompt)) > budget:
                raise DataError(
                    f"example {i}'s prompt has {n} tokens, over the {budget} that fit "
                    f"beside {self.config.num_tokens} soft tokens",
                    "shorten it, e.g. with conditioning.compose_prompt(budget=...)",
                )
            digest.update(f"{example.history}\0{example.prompt}\0".encode())
        pipeline = self.generator.pipeline
        pixels = image_tensor([e.image for e in examples], *self.generator.resolution)
        digest.update(pixels.numpy().tobytes())
        means, stds = [], []
        for start in range(0, len(examples), self.config.batch_size):
            chunk = pixels[start : start + self.config.batch_size]
            dist = pipeline.vae.encode(chunk.to(pipeline.device, pipeline.vae.dtype)).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        return _Prepared(
            history_ids=[self._history_ids(e.history) for e in examples],
            latent_mean=torch.cat(means),
            latent_std=torch.cat(stds),
            prompts=self.generator.encode([e.prompt for e in examples]),
            data_hash=digest.hexdigest(),
        )

    # --- the loss -----------------------------------------------------------------------

    def _loss(self, data: _Prepared, index: list[int], rng: torch.Generator) -> torch.Tensor:
        """Diffusion noise-prediction MSE of the examples at ``index``, draws from ``rng``."""
        pipeline = self.generator.pipeline
        unet, device, scheduler = pipeline.unet, pipeline.device, self.noise_scheduler
        ids, mask = self._llm_batch([data.history_ids[i] for i in index])
        soft = self.encoder(self.llm, ids, mask)
        prompts = data.prompts.rows(index)
        condition = attach_soft_tokens(prompts.embeds, soft.to(device))
        mean, std = data.latent_mean[index], data.latent_std[index]
        sample = torch.randn(mean.shape, generator=rng).to(device)
        latents = (mean + std * sample) * pipeline.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=rng).to(device)
        steps = scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (len(index),), generator=rng).to(device)
        noisy = scheduler.add_noise(latents, noise, t)
        extra = {}
        if unet.config.get("addition_embed_type") == "text_time":  # SDXL: pooled text + sizes
            h, w = self.generator.resolution
            time_ids = torch.tensor([[h, w, 0, 0, h, w]] * len(index), device=device)
            extra["added_cond_kwargs"] = {"text_embeds": prompts.pooled, "time_ids": time_ids}
        pred = unet(noisy.to(unet.dtype), t, encoder_hidden_states=condition, **extra).sample
        kind = scheduler.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "v_prediction":
            target = scheduler.get_velocity(latents, noise, t)
        elif kind == "sample":
            target = latents
        else:
            raise ConfigError(f"unknown prediction type '{kind}'", "use an SD 1.x/2.x/XL model")
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def _batch(self, step: int, n: int) -> list[int]:
        """Examples of ``step`` (1-based): consecutive slices of per-epoch seeded shuffles."""
        size = self.config.batch_size
        index = []
        for position in range((step - 1) * size, step * size):
            epoch, offset = divmod(position, n)
            order = torch.randperm(n, generator=_rng(self.config.seed, SHUFFLES, epoch))
            index.append(int(order[offset]))
        return index

    @torch.no_grad()
    def evaluate(self, examples: Sequence[SoftPromptExample], seed: int = 0) -> float:
        """Mean diffusion loss over ``examples`` with draws fixed by ``seed``.

        Two calls with the same seed see the same noise and timesteps, so the
        difference between them is due to the trained parameters alone.
        """
        data = self._prepare(examples)
        total = 0.0
        for start in range(0, len(examples), self.config.batch_size):
            index = list(range(start, min(start + self.config.batch_size, len(examples))))
            rng = _rng(seed, EVALUATION, start)
            total += float(self._loss(data, index, rng)) * len(index)
        return total / len(examples)

    # --- training -----------------------------------------------------------------------

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.encoder.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )

    def train(
        self,
        examples: Sequence[SoftPromptExample],
        out_dir: Path,
        *,
        resume: bool = False,
        progress: bool = True,
    ) -> SoftPromptRun:
        """Train up to ``config.steps`` steps; write checkpoints, the loss log and plot.

        With ``resume=True`` training continues from ``out_dir``'s checkpoint (its step,
        parameters and optimizer state) when there is one, and starts fresh otherwise.
        """
        from tqdm.auto import tqdm

        out_dir = Path(out_dir)
        data = self._prepare(examples)
        optimizer = self._optimizer()
        losses: list[float] = []
        if resume and (out_dir / CHECKPOINT / STATE_FILE).is_file():
            losses = self._restore(out_dir / CHECKPOINT, data.data_hash, optimizer)
        first = len(losses) + 1
        self.encoder.train()
        bar = tqdm(
            range(first, self.config.steps + 1),
            initial=first - 1,
            total=self.config.steps,
            desc="soft prompt",
            unit="step",
            disable=None if progress else True,
        )
        for step in bar:
            rng = _rng(self.config.seed, STEPS, step)
            loss = self._loss(data, self._batch(step, len(examples)), rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step % self.config.checkpoint_every == 0 and step < self.config.steps:
                self._save(out_dir, losses, data.data_hash, optimizer)
        bar.close()
        self.encoder.eval()
        self._save(out_dir, losses, data.data_hash, optimizer)
        return SoftPromptRun(
            losses=losses,
            first_step=first,
            last_step=len(losses),
            checkpoint=out_dir / CHECKPOINT,
            log=out_dir / LOG_FILE,
            plot=out_dir / PLOT_FILE,
        )

    # --- checkpoints --------------------------------------------------------------------

    def _save(
        self, out_dir: Path, losses: list[float], data_hash: str, optimizer: torch.optim.Optimizer
    ) -> None:
        """The checkpoint folder (replaced atomically), the loss log and the loss plot."""
        from safetensors.torch import save_file

        state = optimizer.state_dict()
        moments = {
            f"{index}.{name}": value.detach().cpu()
            for index, values in state["state"].items()
            for name, value in values.items()
        }
        scalars = {
            "step": len(losses),
            "config": self.config.model_dump(),
            "data_hash": data_hash,
            "losses": losses,
            "param_groups": state["param_groups"],
        }
        with atomic_path(out_dir / CHECKPOINT, directory=True) as tmp:
            trainable = {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}
            save_file(trainable, str(tmp / TRAINABLE_FILE))
            save_file(moments, str(tmp / OPTIMIZER_FILE))
            (tmp / STATE_FILE).write_text(json.dumps(scalars, indent=1), encoding="utf-8")
        log = [{"step": i, "loss": loss} for i, loss in enumerate(losses, 1)]
        write_text(out_dir / LOG_FILE, json.dumps(log, indent=1))
        write_bytes(out_dir / PLOT_FILE, loss_plot(losses))

    def _check(self, saved: dict[str, Any], where: Path) -> None:
        """A checkpoint of another configuration is another run: refuse to mix them."""
        mine = self.config.model_dump()
        changed = sorted(k for k in mine if k not in RESUMABLE and saved.get(k) != mine[k])
        if changed:
            raise ConfigError(
                f"checkpoint {where} was trained with other {', '.join(changed)}",
                "use the same settings (only steps and checkpoint_every may change), "
                "or another folder",
            )

    def _restore(
        self, folder: Path, data_hash: str, optimizer: torch.optim.Optimizer
    ) -> list[float]:
        """Load parameters and optimizer state from ``folder``; the losses so far."""
        from safetensors.torch import load_file

        scalars = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        self._check(scalars["config"], folder)
        if scalars["data_hash"] != data_hash:
            raise DataError(
                f"checkpoint {folder} was trained on other examples",
                "resume with the same examples, or train without resume",
            )
        self.load(folder)
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in load_file(str(folder / OPTIMIZER_FILE)).items():
            index, name = key.split(".", 1)
            moments.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": moments, "param_groups": scalars["param_groups"]})
        return [float(x) for x in scalars["losses"]][: scalars["step"]]

    def load(self, folder: Path) -> SoftPreferenceTrainer:
        """Load trained parameters from a checkpoint folder (or the run folder holding one)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        folder = folder / CHECKPOINT if (folder / CHECKPOINT).is_dir() else folder
        if not (folder / TRAINABLE_FILE).is_file():
            raise DataError(
                f"{folder} holds no soft prompt checkpoint ({TRAINABLE_FILE})",
                "pass the folder SoftPreferenceTrainer.train wrote",
            )
        saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))["config"]
        self._check(saved, folder)
        device = self.encoder.tokens.device
        self.encoder.load_state_dict(load_file(str(folder / TRAINABLE_FILE), device=str(device)))
        return self

    @classmethod
    def from_checkpoint(
        cls, folder: Path, llm: Any, tokenizer: Any, generator: ImageGenerator
    ) -> SoftPreferenceTrainer:
        """A trainer with the configuration and parameters of a saved run."""
        path = Path(folder)
        path = path / CHECKPOINT if (path / CHECKPOINT).is_dir() else path
        try:
            saved = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))["config"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"{path} holds no readable soft prompt checkpoint ({type(exc).__name__})",
                "pass the folder SoftPreferenceTrainer.train wrote",
            ) from exc
        config = validate(SoftPromptConfig, saved, where=str(path / STATE_FILE))
        return cls(llm, tokenizer, generator, config).load(path)

    @torch.no_grad()
    def soft_tokens(self, history: str) -> torch.Tensor:
        """The (K, D) soft preference tokens for a serialized history, ready for the generator."""
        ids, mask = self._llm_batch([self._history_ids(history)])
        tokens = self.encoder(self.llm, ids, mask)[0]
        return tokens.to(self.generator.device, self.generator.dtype)


def loss_plot(losses: Sequence[float]) -> bytes:
    """PNG of the per-step loss and its moving average."""
    from tastemaker.evaluation.html import _pyplot, png_bytes

    plt = _pyplot()
    steps = np.arange(1, len(losses) + 1)
    window = max(1, len(losses) // 20)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(steps, losses, alpha=0.35, label="loss per step")
    ax.plot(steps[window - 1 :], smooth, label=f"mean of {window} steps")
    ax.set(xlabel="step", ylabel="diffusion loss (MSE)", title="soft preference tokens")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return png_bytes(fig)
