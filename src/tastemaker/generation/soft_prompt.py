"""Soft preference embeddings: what a user likes that keywords cannot say (PMG section 3.3).

A frozen causal LLM reads the user's serialized history followed by K trainable
"multimodal" token embeddings, with a P-Tuning v2 prefix (trainable keys and
values prepended to every layer's attention; Liu et al., 2022). The LLM's last
hidden states at the K tokens, mapped by a linear layer to the generator's
text-encoder width, are K soft tokens (K, D) that join the generator's condition
(:func:`tastemaker.generation.conditioning.attach_soft_tokens`). PMG's defaults:
K = 4 tokens, prefix length 4.

This module is the model: :class:`SoftPreferenceEncoder` (the trainable parts)
and :class:`SoftPreferenceModel` (them with the frozen LLM, computing tokens for
a history, loaded from a checkpoint). Training them by the diffusion loss is
:mod:`~tastemaker.generation.soft_training`'s; their files are
:mod:`~tastemaker.generation.soft_checkpoint`'s. The initial parameters are drawn
from a local generator seeded by ``seed``, never from torch's global one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tastemaker.config import validate
from tastemaker.generation.soft_checkpoint import (
    STATE_FILE,
    checkpoint_folder,
    load_parameters,
    saved_config,
)
from tastemaker.pretrain.alignment.heads import seeded_linear

if TYPE_CHECKING:
    from PIL.Image import Image

    from tastemaker.generation.generator import ImageGenerator


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
    """The trainable parts: K token embeddings, the per-layer prefix, the output projection.

    The projection's initial weights are drawn from ``generator`` (torch's default
    initialisation); without one they are left for ``load_state_dict``.
    """

    def __init__(
        self,
        llm_config: Any,
        num_tokens: int,
        prefix_length: int,
        width: int,
        generator: torch.Generator | None,
    ) -> None:
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
        self.proj = seeded_linear(hidden, width, generator)

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


def _freeze(module: Any) -> None:
    module.requires_grad_(False)
    module.eval()


class SoftPreferenceModel:
    """Soft preference tokens for a generator: the encoder over a frozen LLM.

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
        self.config = config or validate(SoftPromptConfig, params, where="soft prompt")
        self.llm, self.tokenizer, self.generator = llm, tokenizer, generator
        _freeze(llm)
        pipeline = generator.pipeline
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            if getattr(pipeline, name, None) is not None:
                _freeze(getattr(pipeline, name))
        width = int(generator.encode_prompt([""]).shape[-1])
        c = self.config
        init = torch.Generator("cpu").manual_seed(c.seed)  # never the global RNG
        self.encoder = SoftPreferenceEncoder(llm.config, c.num_tokens, c.prefix_length, width, init)
        table = llm.get_input_embeddings().weight
        rows = torch.randint(table.shape[0], (c.num_tokens,), generator=init)
        with torch.no_grad():  # start from real word embeddings: in the LLM's range
            self.encoder.tokens.copy_(table[rows.to(table.device)].float().cpu())
            torch.nn.init.normal_(self.encoder.prefix, std=0.02, generator=init)
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

    # --- checkpoints --------------------------------------------------------------------

    def load(self, folder: Path) -> Self:
        """Load trained parameters from a checkpoint folder (or the run folder holding one)."""
        load_parameters(folder, self.encoder, self.config)
        return self

    @classmethod
    def from_checkpoint(
        cls, folder: Path, llm: Any, tokenizer: Any, generator: ImageGenerator
    ) -> Self:
        """A model with the configuration and parameters of a saved run."""
        path = checkpoint_folder(folder)
        config = validate(SoftPromptConfig, saved_config(path), where=str(path / STATE_FILE))
        return cls(llm, tokenizer, generator, config).load(path)

    @torch.no_grad()
    def soft_tokens(self, history: str) -> torch.Tensor:
        """The (K, D) soft preference tokens for a serialized history, ready for the generator."""
        ids, mask = self._llm_batch([self._history_ids(history)])
        tokens = self.encoder(self.llm, ids, mask)[0]
        return tokens.to(self.generator.device, self.generator.dtype)
