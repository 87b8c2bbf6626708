"""The language model under UniMP: loaded, optionally cut to its first layers, and
fitted with gated cross-attention blocks in front of every N-th decoder layer.

Any Hugging Face causal LM whose decoder keeps its layers in a ``layers`` (Llama,
Mistral, Qwen, SmolLM, ...) or ``h`` (GPT-2 style) module list works: each chosen
layer is wrapped by :class:`CrossAttendedLayer`, which first lets the hidden
states attend to the visual tokens of the current pass (read from a shared
:class:`ContextSlot`), then runs the original layer unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tastemaker.errors import ConfigError
from tastemaker.unimp.config import TINY_LM, UniMPConfig
from tastemaker.unimp.cross_attention import GatedCrossAttention, VisualContext


@dataclass
class ContextSlot:
    """The visual context of the forward pass in progress (None: text only)."""

    value: VisualContext | None = field(default=None)


class CrossAttendedLayer(nn.Module):
    """A decoder layer preceded by a gated cross-attention block."""

    def __init__(self, layer: nn.Module, block: GatedCrossAttention, slot: ContextSlot) -> None:
        super().__init__()
        self.layer = layer
        self.block = block
        self.slot = slot

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.layer(self.block(hidden_states, self.slot.value), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:  # attributes the model reads off its layers (attention_type, ...)
            return getattr(super().__getattr__("layer"), name)


def load_backbone(config: UniMPConfig, device: str, dtype: str) -> tuple[Any, Any]:
    """(tokenizer, causal LM): a private copy (it is modified in place).

    The pristine load is cached per process (de-quantizing SmolLM2's GGUF takes ~20 s),
    so the benchmark's ablations and transfers copy it instead of reloading.
    """
    if config.lm == TINY_LM:
        from tastemaker.generation.tiny import tiny_causal_lm

        model, tokenizer = tiny_causal_lm(seed=config.seed)
        return tokenizer, model.to(device=device, dtype=getattr(torch, dtype))
    from tastemaker.llm.hf import load_causal_lm, resolve_source

    tokenizer, lm = load_causal_lm(*resolve_source(config.lm, None), device, dtype)
    return copy.deepcopy(tokenizer), copy.deepcopy(lm)


def decoder_layers(lm: Any) -> nn.ModuleList:
    """The decoder's list of layers (``layers`` or ``h``)."""
    decoder = lm.get_decoder()
    for name in ("layers", "h"):
        layers = getattr(decoder, name, None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ConfigError(
        f"cannot find the decoder layers of {type(lm).__name__}",
        "use a causal LM whose decoder keeps them in .layers or .h (Llama, Qwen, GPT-2, ...)",
    )


def truncate(lm: Any, keep: int | None) -> None:
    """Keep the first ``keep`` decoder layers (None: all)."""
    layers = decoder_layers(lm)
    if keep is None or keep >= len(layers):
        return
    del layers[keep:]
    lm.config.num_hidden_layers = keep
    if getattr(lm.config, "layer_types", None):
        lm.config.layer_types = lm.config.layer_types[:keep]


def add_cross_attention(
    lm: Any, every: int, heads: int, slot: ContextSlot
) -> list[GatedCrossAttention]:
    """Wrap every ``every``-th decoder layer (the 1st, (1+every)-th, ...) with a new block."""
    layers = decoder_layers(lm)
    width = int(lm.get_input_embeddings().weight.shape[1])
    weight = lm.get_input_embeddings().weight
    blocks = []
    for index in range(0, len(layers), every):
        block = GatedCrossAttention(width, heads).to(device=weight.device, dtype=weight.dtype)
        layers[index] = CrossAttendedLayer(layers[index], block, slot)
        blocks.append(block)
    return blocks
