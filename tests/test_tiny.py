"""The tiny offline models: seeded by their argument alone, never through torch's global RNG."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from tastemaker.generation.tiny import (
    tiny_causal_lm,
    tiny_stable_diffusion,
    tiny_stable_diffusion_xl,
)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


BUILDERS: dict[str, Callable[[int], dict[str, torch.Tensor]]] = {
    "sd": lambda seed: _weights(tiny_stable_diffusion(seed).unet),
    "sdxl": lambda seed: _weights(tiny_stable_diffusion_xl(seed).text_encoder_2),
    "llama": lambda seed: _weights(tiny_causal_lm(seed)[0]),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_building_leaves_the_global_rng_alone_and_the_seed_fixes_the_weights(name: str) -> None:
    build = BUILDERS[name]
    state = torch.get_rng_state()
    first, again, other = build(3), build(3), build(4)
    assert torch.equal(torch.get_rng_state(), state)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
