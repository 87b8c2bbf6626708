"""Named sets of pipeline settings: tastemaker's defaults, and PMG's own (``pmg-paper``).

PMG (Shen et al., WWW 2024, arXiv 2404.08677) and its official release
(MindSpore, ``research/huawei-noah/PMG``: ``inference.py``, ``main.py``) make
choices that tastemaker's defaults do differently; ``--preset pmg-paper`` (or
:func:`apply_preset`) switches to the release's, so both can be run and measured
on the same pairs (``benchmarks/pmg_evaluation.py``). The preset is laid over a
scenario's settings, and command-line flags are laid over the preset.

| setting | default | ``pmg-paper`` (the release) |
|---|---|---|
| history order | newest first | best rated first, then newest |
| history length | 20 items | 3 (movies), 5 (products: PMG's clothes) |
| weighting w_p:w_t | segment embeddings scaled toward | the preference keywords said w times |
| | the empty prompt, no repeats | after the item keywords, no scaling |
| grid of weights | 1:3, 1:1, 3:1 | movies 1:1, 2:1; products 2:1, 3:1; |
| | | stickers 1:1 (w = 1, 2 / 2, 3 / 1) |
| d in z | (1 + cos) / 2 | CLIP-style logit, scale·cos |
| z | 0.5·log d_p + 0.5·log d_t | (log d_t + 2·log d_p) / 3: α = 2/3 |

Stickers keep the default history (a conversation has no ratings to sort by).
The release has no weight for clothes in its selection (only movies and
stickers, both 2); the preset uses 2 there too. The same table is in
``docs/pmg_presets.md``.
"""

from __future__ import annotations

from typing import Any

from tastemaker.config import validate
from tastemaker.errors import ConfigError
from tastemaker.generation.scenario import PipelineConfig

_PAPER_SCORER = {"similarity": "logit", "alpha": 2.0 / 3.0}  # log d_t + 2·log d_p
_PAPER_CONDITION = {"repeat": True, "scale_embeddings": False}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    "pmg-paper": {
        "movies": {
            "history": {"order": "rating", "max_items": 3},
            "condition": _PAPER_CONDITION,
            "weights": ["1:1", "2:1"],
            "scorer": _PAPER_SCORER,
        },
        "products": {
            "history": {"order": "rating", "max_items": 5},
            "condition": _PAPER_CONDITION,
            "weights": ["2:1", "3:1"],
            "scorer": _PAPER_SCORER,
        },
        "stickers": {
            "condition": _PAPER_CONDITION,
            "weights": ["1:1"],
            "scorer": _PAPER_SCORER,
        },
    },
}


def available_presets() -> list[str]:
    return list(PRESETS)


def apply_preset(config: PipelineConfig, name: str | None) -> PipelineConfig:
    """``config`` with the preset's settings for its domain laid over it (None: unchanged)."""
    if name is None or name == "default":
        return config
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset '{name}'", f"choose one of: {', '.join(available_presets())}"
        )
    values = config.model_dump()
    for section, override in PRESETS[name].get(config.domain, {}).items():
        if isinstance(override, dict):
            values[section] = {**(values.get(section) or {}), **override}
        else:
            values[section] = override
    return validate(PipelineConfig, values, where=f"preset {name}")


__all__ = ["PRESETS", "apply_preset", "available_presets"]
