"""The trainable module of an aligned space: two projection heads and the temperature.

Every random draw (initial weights, dropout masks) comes from a ``torch.Generator``
the caller owns, so training is reproducible from its seed and leaves the global
RNG as it found it. This module imports torch: import it only where heads are built.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tastemaker.pretrain.alignment.config import AlignmentConfig


class SeededDropout(nn.Module):
    """Dropout whose masks come from ``generator`` (None: torch's global generator)."""

    def __init__(self, p: float, generator: torch.Generator | None) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


def seeded_linear(width: int, out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear`` with torch's default initialisation drawn from ``generator``.

    Without a generator the weights are left uninitialised, for ``load_state_dict``.
    """
    layer = torch.nn.utils.skip_init(nn.Linear, width, out)
    if generator is not None:
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(width)
        with torch.no_grad():
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class Head(nn.Module):
    """Standardise (train statistics), project, L2-normalise."""

    def __init__(
        self, width: int, config: AlignmentConfig, generator: torch.Generator | None
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        if config.hidden:
            self.net: nn.Module = nn.Sequential(
                seeded_linear(width, config.hidden, generator),
                nn.GELU(),
                SeededDropout(config.dropout, generator),
                seeded_linear(config.hidden, config.dim, generator),
            )
        else:
            self.net = seeded_linear(width, config.dim, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net((x - self.mean) / self.std), dim=-1)

    def standardise(self, x: np.ndarray) -> None:
        """Input statistics from the training rows (constant columns keep std 1)."""
        std = x.std(axis=0)
        self.mean.copy_(torch.from_numpy(x.mean(axis=0)))
        self.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))


class AlignmentHeads(nn.Module):
    """Both heads and CLIP's learned log inverse temperature (initialised from the config).

    ``generator`` draws the initial weights and later the dropout masks; without
    one the weights are left for ``load_state_dict`` (a saved space).
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        config: AlignmentConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.image = Head(image_dim, config, generator)
        self.text = Head(text_dim, config, generator)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
