"""Perceiver resampler: any number of image regions -> a fixed few visual tokens.

After Flamingo (Alayrac et al., NeurIPS 2022, §2.1 and Fig. 5), which UniMP's
vision-language backbone follows: learned latent queries cross-attend to the
concatenation of the (projected, position-embedded) region features and the
latents themselves, then a feed-forward layer; residual connections throughout.
"""

from __future__ import annotations

import torch
from torch import nn


class ResamplerLayer(nn.Module):
    """Latents attend to [regions; latents], then a feed-forward layer."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        )

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        keys = torch.cat([self.norm_media(media), self.norm_latents(latents)], dim=1)
        attended, _ = self.attention(self.norm_latents(latents), keys, keys, need_weights=False)
        latents = latents + attended
        return latents + self.feed_forward(latents)


class PerceiverResampler(nn.Module):
    """(images, regions, in_dim) features -> (images, latents, dim) visual tokens."""

    def __init__(
        self, in_dim: int, dim: int, regions: int, latents: int, heads: int, layers: int
    ) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, dim)
        self.positions = nn.Parameter(torch.zeros(regions, dim))
        self.latents = nn.Parameter(torch.randn(latents, dim) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        media = self.project(features) + self.positions
        latents = self.latents.expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(media, latents)
        return self.norm(latents)
