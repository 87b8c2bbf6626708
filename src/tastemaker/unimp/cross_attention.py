"""Gated cross-attention from text tokens to visual tokens, with UniMP's item mask.

The block is Flamingo's (Alayrac et al. 2022, §2.2): attention and feed-forward
sub-layers whose outputs are scaled by ``tanh(α)`` with ``α`` initialised at 0, so
at the start the language model computes exactly what it did alone. UniMP (Wei et
al. 2024, §3.2) restricts the attention so that a token of item k attends only to
the visual tokens of item k's image ("fine-grained" fusion, :func:`item_mask`);
the "coarse" variant lets every token attend to every image of the sentence.
A token with nothing to attend to (no image, or outside every item) gets exactly
zero from the attention sub-layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tastemaker.unimp.serialize import NO_SLOT


def item_mask(
    token_slots: torch.Tensor, key_slots: torch.Tensor, *, coarse: bool = False
) -> torch.Tensor:
    """(B, T, K) bool: may token t of row b attend to visual key k?

    ``token_slots`` (B, T): the item slot of each token (:data:`NO_SLOT` outside
    items); ``key_slots`` (B, K): the slot each visual key belongs to (NO_SLOT for
    padding and items without an image). Masked: same slot only; coarse: any real key.
    """
    real = (key_slots != NO_SLOT)[:, None, :]
    if coarse:
        return real.expand(-1, token_slots.shape[1], -1)
    same = token_slots[:, :, None] == key_slots[:, None, :]
    return same & real & (token_slots != NO_SLOT)[:, :, None]


@dataclass
class VisualContext:
    """What the cross-attention blocks read during one forward pass of the language model."""

    keys: torch.Tensor  # (B, K, D) visual tokens
    allowed: torch.Tensor  # (B, T, K) bool, from item_mask


class GatedCrossAttention(nn.Module):
    """tanh-gated cross-attention + tanh-gated feed-forward, both gates starting at 0."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            heads = 1
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.attention_gate = nn.Parameter(torch.zeros(1))
        self.feed_forward_gate = nn.Parameter(torch.zeros(1))
        self.record = False  # keep the attention weights of the next pass (tests, inspection)
        self.last_weights: torch.Tensor | None = None  # (B, heads, T, K) when recorded

    def attend(
        self, hidden: torch.Tensor, context: VisualContext, keep: bool = False
    ) -> torch.Tensor:
        """Masked multi-head attention; disallowed keys get weight exactly 0."""
        b, t, d = hidden.shape
        h = self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], h, d // h).transpose(1, 2)

        keys = context.keys.to(hidden.dtype)
        q, k, v = (
            split(self.query(self.norm(hidden))),
            split(self.key(keys)),
            split(self.value(keys)),
        )
        allowed = context.allowed[:, None, :, :]
        scores = (q @ k.transpose(-1, -2)) / (d // h) ** 0.5
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * allowed  # rows with no key: all zero
        if keep:
            self.last_weights = weights.detach()
        out = (weights @ v).transpose(1, 2).reshape(b, t, d)
        return self.output(out)

    def forward(self, hidden: torch.Tensor, context: VisualContext | None) -> torch.Tensor:
        if context is None:
            return hidden
        hidden = hidden + torch.tanh(self.attention_gate) * self.attend(
            hidden, context, self.record
        )
        return hidden + torch.tanh(self.feed_forward_gate) * self.feed_forward(hidden)
