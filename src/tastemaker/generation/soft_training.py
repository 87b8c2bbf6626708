"""Training soft preference tokens by the diffusion loss (PMG section 3.3).

The pipeline only uses trained tokens (as in diffusers, pipelines do not train).
Here users' liked items become next-item examples (:func:`soft_examples`): the
history a user had *before* an item, and that item's image to predict, with no
text of the target in the prompt, so nothing of the answer leaks into the input
(PMG, Shen et al. 2024, section 3.3: the soft tokens are learned from the history
to condition the generation of the next item). :class:`SoftPreferenceTrainer`
fits the :class:`~tastemaker.generation.soft_prompt.SoftPreferenceModel` on them;
:func:`train_soft_tokens` does both with a pipeline's own parts
(:class:`~tastemaker.generation.components.PipelineComponents`), which then use
the trained tokens, and reports the loss on held-out users (:func:`split_users`),
whose examples never train.

The loss: encode the target image with the VAE, add noise at a random
timestep, and let the UNet, conditioned on ``[soft tokens ; encoded prompt]``,
predict it; the MSE between prediction and target (the noise, or the velocity
for v-prediction models) is back-propagated through the frozen UNet and LLM into
the tokens, the prefix and the linear layer, the only parts that train. Noise
follows the DDPM forward process of the pipeline's own scheduler config,
whatever its sampler.

The loss and loop are :class:`DiffusionTokenTrainer`'s, for any source of soft tokens:
PMG's LLM encoder here, UniMP's user state in ``tastemaker.unimp.image_conditioning``.

Every random draw of step s (batch, latent sample, noise, timesteps) comes from
a local generator seeded by (seed, s), never torch's global one, so a resumed
run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from tastemaker.atomic import write_text
from tastemaker.config import validate
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.components import PipelineComponents
from tastemaker.generation.conditioning import attach_soft_tokens
from tastemaker.generation.data import Data
from tastemaker.generation.placement import vae_precision
from tastemaker.generation.soft_checkpoint import (
    CHECKPOINT,
    LOG_FILE,
    PLOT_FILE,
    STATE_FILE,
    restore_checkpoint,
    save_checkpoint,
)
from tastemaker.generation.soft_examples import SoftPromptExample, soft_examples, split_users
from tastemaker.generation.soft_prompt import SoftPreferenceModel, SoftPromptConfig, image_tensor

if TYPE_CHECKING:
    from tastemaker.generation.generator import ImageGenerator, PromptEmbeds

HELDOUT_FILE = "heldout.json"
_STRIDE = 1_000_003  # random streams: (seed * 3 + stream) * stride + n, distinct for n < stride
STEPS, SHUFFLES, EVALUATION = range(3)
Trainer = TypeVar("Trainer", bound="DiffusionTokenTrainer")


@dataclass
class SoftPromptRun:
    """What :meth:`SoftPreferenceTrainer.train` did and wrote."""

    losses: list[float]
    first_step: int
    last_step: int
    checkpoint: Path
    log: Path
    plot: Path
    train_users: list[str] = field(default_factory=list)
    heldout_users: list[str] = field(default_factory=list)
    heldout_before: float | None = None  # mean loss on held-out users' examples, untrained
    heldout_after: float | None = None  # the same examples and draws, after training


@dataclass(frozen=True)
class _Prepared:
    """Examples turned into tensors once: token-source inputs, latent distributions, prompts."""

    inputs: list[Any]
    latent_mean: torch.Tensor
    latent_std: torch.Tensor
    prompts: PromptEmbeds
    data_hash: str


def _rng(seed: int, stream: int, n: int) -> torch.Generator:
    """The CPU generator for draw ``n`` of ``stream`` (steps, epoch shuffles, evaluation)."""
    return torch.Generator("cpu").manual_seed((seed * 3 + stream) * _STRIDE + n)


class DiffusionTokenTrainer:
    """Trains a source of soft tokens by the diffusion loss (its ``encoder`` only).

    A subclass sets ``config`` (with :class:`SoftPromptConfig`'s training fields),
    ``generator`` (frozen) and ``encoder`` (what trains and is checkpointed), and says
    what an example's input is and how a batch of inputs becomes (B, K, D) tokens.
    """

    config: Any
    generator: ImageGenerator
    encoder: torch.nn.Module

    def _example_input(self, example: SoftPromptExample) -> Any:
        """What :meth:`_soft_batch` reads for ``example``, computed once before training."""
        raise NotImplementedError

    def _soft_batch(self, inputs: list[Any]) -> torch.Tensor:
        """(B, K, D) soft tokens of these inputs, with gradients to ``encoder``."""
        raise NotImplementedError

    @property
    def soft_token_count(self) -> int:
        """Soft tokens in the condition, which the prompt must leave room for."""
        return int(self.config.num_tokens)

    @functools.cached_property
    def noise_scheduler(self) -> Any:
        """DDPM's forward process with the generator's own scheduler config."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.generator.pipeline.scheduler.config)

    @torch.no_grad()
    def _prepare(self, examples: Sequence[SoftPromptExample]) -> _Prepared:
        from PIL.Image import Image as PILImage

        if not examples:
            raise DataError("no training examples", "pass images of items the user liked")
        budget = self.generator.max_length - 2 - self.soft_token_count
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
                    f"beside {self.soft_token_count} soft tokens",
                    "shorten it, e.g. with conditioning.compose_prompt(budget=...)",
                )
            digest.update(f"{example.history}\0{example.prompt}\0".encode())
        pipeline = self.generator.pipeline
        pixels = image_tensor([e.image for e in examples], *self.generator.resolution)
        digest.update(pixels.numpy().tobytes())
        means, stds = [], []
        with vae_precision(pipeline.vae) as dtype:  # SDXL's VAE overflows in float16
            for start in range(0, len(examples), self.config.batch_size):
                chunk = pixels[start : start + self.config.batch_size]
                dist = pipeline.vae.encode(chunk.to(pipeline.device, dtype)).latent_dist
                means.append(dist.mean.float())
                stds.append(dist.std.float())
        return _Prepared(
            inputs=[self._example_input(e) for e in examples],
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
        soft = self._soft_batch([data.inputs[i] for i in index])
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
            folder = out_dir / CHECKPOINT
            losses = restore_checkpoint(
                folder, self.encoder, self.config, data.data_hash, optimizer
            )
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
                save_checkpoint(
                    out_dir, self.encoder, self.config, losses, data.data_hash, optimizer
                )
        bar.close()
        self.encoder.eval()
        save_checkpoint(out_dir, self.encoder, self.config, losses, data.data_hash, optimizer)
        return SoftPromptRun(
            losses=losses,
            first_step=first,
            last_step=len(losses),
            checkpoint=out_dir / CHECKPOINT,
            log=out_dir / LOG_FILE,
            plot=out_dir / PLOT_FILE,
        )


class SoftPreferenceTrainer(DiffusionTokenTrainer, SoftPreferenceModel):
    """Trains PMG's soft preference tokens: the history's LLM ids in, the encoder's tokens out."""

    def _example_input(self, example: SoftPromptExample) -> list[int]:
        return self._history_ids(example.history)

    def _soft_batch(self, inputs: list[Any]) -> torch.Tensor:
        ids, mask = self._llm_batch(inputs)
        return self.encoder(self.llm, ids, mask)


def train_soft_tokens(
    components: PipelineComponents,
    data: Data,
    users: Sequence[object],
    out_dir: Path | str,
    config: SoftPromptConfig | dict[str, Any] | None = None,
    *,
    heldout: float = 0.0,
    per_user: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> SoftPromptRun:
    """Train soft preference tokens on ``users``' next-item examples for ``components``'
    generator and LLM; the components then use them (their ``soft.checkpoint`` becomes
    ``out_dir``). ``heldout``: as :func:`train_on_users`.
    """
    if not isinstance(config, SoftPromptConfig):
        config = validate(SoftPromptConfig, dict(config or {}), where="soft prompt")

    def build() -> SoftPreferenceTrainer:
        tokenizer, model = components.soft_llm()
        generator = components.require_generator("soft")
        return SoftPreferenceTrainer(model, tokenizer, generator, config)

    trainer, run = train_on_users(
        components, data, users, out_dir, build, num_tokens=config.num_tokens, seed=config.seed,
        heldout=heldout, per_user=per_user, resume=resume, progress=progress,
    )  # fmt: skip
    components.use_soft_tokens(trainer, out_dir)
    return run


def train_on_users(
    components: PipelineComponents,
    data: Data,
    users: Sequence[object],
    out_dir: Path | str,
    build: Callable[[], Trainer],
    *,
    num_tokens: int,
    seed: int,
    heldout: float = 0.0,
    per_user: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[Trainer, SoftPromptRun]:
    """Any token source's training on ``users``' next-item examples (:func:`soft_examples`,
    with room for ``num_tokens`` soft tokens); ``build`` makes the trainer once the examples
    are known to be good, so a bad input fails before any model loads.

    With ``heldout`` > 0 a seeded share of the users (``seed``) trains nothing: the run
    reports the mean diffusion loss on their examples before and after training, with the
    same noise and timesteps, in ``heldout.json`` beside the checkpoint.
    """
    train_users, heldout_users = split_users(users, heldout, seed)

    def of(chosen: list[str]) -> list[SoftPromptExample]:
        return soft_examples(components, data, chosen, num_tokens=num_tokens, per_user=per_user)

    examples, held = of(train_users), of(heldout_users) if heldout_users else []
    trainer = build()
    before = trainer.evaluate(held, seed=seed) if held else None
    run = trainer.train(examples, Path(out_dir), resume=resume, progress=progress)
    run.train_users, run.heldout_users = train_users, heldout_users
    if held:
        run.heldout_before = before
        run.heldout_after = trainer.evaluate(held, seed=seed)
        report = {
            "train_users": train_users,
            "heldout_users": heldout_users,
            "train_examples": len(examples),
            "heldout_examples": len(held),
            "heldout_loss_untrained": run.heldout_before,
            "heldout_loss_trained": run.heldout_after,
        }
        write_text(Path(out_dir) / HELDOUT_FILE, json.dumps(report, indent=1) + "\n")
    return trainer, run


__all__ = [
    "DiffusionTokenTrainer",
    "SoftPreferenceTrainer",
    "SoftPromptExample",
    "SoftPromptRun",
    "soft_examples",
    "split_users",
    "train_on_users",
    "train_soft_tokens",
]
