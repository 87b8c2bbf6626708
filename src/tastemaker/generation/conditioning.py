"""PMG's condition: [soft preference tokens ; preference keywords ; item keywords], weighted.

PMG (Shen et al., WWW 2024, arXiv 2404.08677) conditions the generator on the
concatenation of the soft preference embeddings with the encoded preference
keywords and the encoded target-item keywords; the weights w_p : w_t set how
strongly the user's preferences vs the target item steer the image. Here the
weights act twice, and both steps are recorded in the returned :class:`Condition`:

1. **Prompt composition** (text). The prompt is ``"{domain prefix}, {first
   segment}, {second segment}"`` with keywords joined by ", ". The more heavily
   weighted segment comes first (the item on a tie): CLIP's text encoder is causal,
   so earlier tokens are not affected by later ones and tend to dominate the image.
   A segment of weight 0 is left out (the "item keywords only" ablation is ``0:1``);
   a keyword in both segments is said once, in the first. By default keywords are
   not repeated to add weight (repeats spend CLIP's 77 tokens; step 2 does the job
   smoothly); ``repeat = true`` (the ``pmg-paper`` preset) does as PMG's release:
   the item first, each segment said ``round(w / smaller w)`` times (:func:`repeats`).
   A prompt longer than the text encoder's length minus the soft tokens keeps each
   segment's share of its tokens, repeats included (whole keywords, first ones first:
   lists are ordered by importance); unused share goes to the other segment, and a
   non-empty segment keeps at least one keyword. Dropped keywords are recorded.
2. **Embedding scaling**. After encoding, the hidden states of each segment's
   tokens are moved toward the encoding of the empty prompt at the same positions:
   ``e' = e0 + s * (e - e0)`` with ``s = w / max(w_p, w_t)``, so the stronger segment
   is unchanged (s = 1) and the weaker one is attenuated. Scaling toward ``e0``
   rather than toward zero keeps the vectors in the range the UNet was trained on
   (zero vectors are out of distribution, and CLIP hidden states are not centred),
   and ``s`` never exceeds 1, so nothing is extrapolated. The start token, the
   domain prefix, the separators, the end token and the padding are left as they
   are; being causal, they still carry the whole prompt. With ``1:1`` the embedding
   equals the pipeline's own encoding of the prompt.

The soft tokens then take the first K positions and the last K (padding) ones are
dropped: the condition keeps the text encoder's length L, as its negative does
(classifier-free guidance needs both alike); cross-attention has no notion of
position, so where the soft tokens sit does not matter. SDXL's pooled vector is
the composed prompt's, unscaled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tastemaker.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tastemaker.generation.generator import ImageGenerator, PromptEmbeds

SEPARATOR = ", "
SEGMENTS = ("preference", "item")


@dataclass(frozen=True)
class DomainStyle:
    """What every prompt of a domain starts with, and what to steer away from."""

    prefix: str
    negative: str


DOMAINS: dict[str, DomainStyle] = {
    "movies": DomainStyle(
        "a movie poster",
        "blurry, low quality, jpeg artifacts, watermark, signature, garbled text, "
        "deformed, bad anatomy, extra limbs, cropped",
    ),
    "products": DomainStyle(
        "a product photo, studio lighting, plain background",
        "blurry, low quality, watermark, text, logo, cluttered background, "
        "multiple objects, deformed, cropped, hands",
    ),
    "stickers": DomainStyle(
        "a cute sticker, emoticon, simple background",
        "photorealistic, photo, blurry, low quality, watermark, text, "
        "cluttered background, deformed face",
    ),
}


def parse_weights(value: Any) -> tuple[float, float]:
    """``"1:3"``, ``(1, 3)`` or ``[1, 3]`` as (w_p, w_t): non-negative, not both 0."""
    try:
        parts = value.split(":") if isinstance(value, str) else list(value)
        w_p, w_t = (float(part) for part in parts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"weights {value!r} are not w_p:w_t", "write two numbers like 1:3"
        ) from exc
    if not (math.isfinite(w_p) and math.isfinite(w_t)) or min(w_p, w_t) < 0 or w_p + w_t <= 0:
        raise ConfigError(
            f"weights {value!r} must be finite, non-negative and not both 0", "write e.g. 1:3"
        )
    return w_p, w_t


def segment_scales(weights: tuple[float, float]) -> tuple[float, float]:
    """Embedding scale of the (preference, item) segments: each weight over the larger one."""
    top = max(weights)
    return weights[0] / top, weights[1] / top


class ConditionConfig(BaseModel):
    """How keywords become the generator's condition."""

    model_config = ConfigDict(extra="forbid")

    domain: Literal["movies", "products", "stickers"] = "movies"
    weights: tuple[float, float] = Field((1.0, 1.0), description="w_p:w_t, e.g. '1:3'")
    scale_embeddings: bool = Field(True, description="also scale segment embeddings by weight")
    repeat: bool = Field(
        False, description="weight by saying a segment w times, item first (PMG's release)"
    )
    prefix: str | None = Field(None, description="replaces the domain's prompt prefix")
    negative_prompt: str | None = Field(None, description="replaces the domain's negative")

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> tuple[float, float]:
        try:
            return parse_weights(value)
        except ConfigError as exc:
            raise ValueError(exc.problem) from exc

    @property
    def style(self) -> DomainStyle:
        base = DOMAINS[self.domain]
        return DomainStyle(
            base.prefix if self.prefix is None else self.prefix,
            base.negative if self.negative_prompt is None else self.negative_prompt,
        )


def approx_tokens(text: str) -> int:
    """A tokenizer-free token count (words and punctuation marks); CLIP's BPE splits rare
    words further, so this undercounts. For composing prompts without a generator."""
    return len(re.findall(r"[^\W_]+|[^\w\s]", text))


@dataclass(frozen=True)
class Composition:
    """The prompt text and what went into it, before any encoding."""

    prompt: str
    negative_prompt: str
    order: tuple[str, ...]
    keywords: dict[str, list[str]]
    dropped: dict[str, list[str]]
    char_spans: dict[str, tuple[int, int]]
    token_counts: dict[str, int]
    repeats: dict[str, int]  # how many times each segment is said (1 unless repeat weighting)


def repeats(weights: tuple[float, float], order: Sequence[str]) -> dict[str, int]:
    """Times each segment is said, weighting by repeats: w / the smaller w, rounded, >= 1."""
    by_segment = dict(zip(SEGMENTS, weights, strict=True))
    low = min(by_segment[s] for s in order) if order else 1.0
    return {s: max(1, round(by_segment[s] / low)) for s in order}


def _clean(keywords: Sequence[str]) -> list[str]:
    """Stripped, non-empty, first occurrence of each (case-insensitively)."""
    seen: set[str] = set()
    out = []
    for keyword in keywords:
        text = " ".join(str(keyword).split()).strip(" ,")
        if text and text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out


def _fit(keywords: list[str], limit: int, count: Callable[[str], int]) -> int:
    """How many leading keywords fit in ``limit`` tokens when joined."""
    n = 0
    while n < len(keywords) and count(SEPARATOR.join(keywords[: n + 1])) <= limit:
        n += 1
    return n


def _shorten(keyword: str, limit: int, count: Callable[[str], int]) -> str:
    """The longest word prefix of ``keyword`` within ``limit`` tokens (at least one word)."""
    words = keyword.split()
    n = 1
    while n < len(words) and count(" ".join(words[: n + 1])) <= limit:
        n += 1
    return " ".join(words[:n])


def compose_prompt(
    preference: Sequence[str],
    item: Sequence[str],
    config: ConditionConfig | None = None,
    *,
    budget: int = 75,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> Composition:
    """The prompt for these keywords and weights, in at most ``budget`` tokens.

    ``budget`` excludes the start/end tokens and the soft tokens (75 = CLIP's 77 - 2);
    ``count_tokens`` should be the generator's tokenizer (``ImageGenerator.count_tokens``).
    See the module docstring for the rules.
    """
    config = config or ConditionConfig()
    style = config.style
    weights = dict(zip(SEGMENTS, config.weights, strict=True))
    given = {"preference": _clean(preference), "item": _clean(item)}
    active = {s: kws for s, kws in given.items() if kws and weights[s] > 0}
    order = tuple(sorted(active, key=lambda s: (-weights[s], s != "item")))
    said: set[str] = set()
    for s in order:  # a keyword in both segments is said once, in the heavier one
        given[s] = active[s] = [k for k in active[s] if k.lower() not in said]
        said.update(k.lower() for k in active[s])
    order = tuple(s for s in order if active[s])
    reps = repeats(config.weights, order) if config.repeat else dict.fromkeys(order, 1)
    if config.repeat:  # the release writes the item first, then the repeated preferences
        order = tuple(sorted(order, key=lambda s: s != "item"))
    prefix_tokens = count_tokens(style.prefix) if style.prefix else 0
    sep = count_tokens(SEPARATOR.strip())
    avail = budget - prefix_tokens - sep * max(len(order) + bool(style.prefix) - 1, 0)
    if order and avail < len(order):
        raise ConfigError(
            f"the prompt prefix and soft tokens leave {avail} of {budget} tokens for keywords",
            "use fewer soft tokens or a shorter prefix",
        )

    def tokens(keywords: list[str]) -> int:
        return count_tokens(SEPARATOR.join(keywords)) if keywords else 0

    def spoken(s: str, keywords: list[str]) -> int:  # tokens of segment s said reps[s] times
        return tokens(keywords) * reps[s] + sep * (reps[s] - 1) if keywords else 0

    def per_saying(s: str, limit: int) -> int:  # the share of one saying of segment s
        return (limit - sep * (reps[s] - 1)) // reps[s]

    need = {s: spoken(s, active[s]) for s in order}
    kept = {s: list(active[s]) for s in order}
    if sum(need.values()) > avail:
        total = sum(need.values())
        share = {s: int(avail * need[s] / total) for s in order}
        for s in order:  # whole leading keywords within the share, else the first one cut short
            limit = per_saying(s, share[s])
            fitting = active[s][: _fit(active[s], limit, count_tokens)]
            kept[s] = fitting or [_shorten(active[s][0], max(limit, 1), count_tokens)]
        for s in order:  # each in turn grows into what the others leave unused
            others = sum(spoken(o, kept[o]) for o in order if o != s)
            more = active[s][: _fit(active[s], per_saying(s, avail - others), count_tokens)]
            if more and len(more) >= len(kept[s]):
                kept[s] = more
    pieces = [style.prefix] if style.prefix else []
    char_spans: dict[str, tuple[int, int]] = {}
    for s in order:
        start = len(SEPARATOR.join(pieces)) + (len(SEPARATOR) if pieces else 0)
        pieces.append(SEPARATOR.join([SEPARATOR.join(kept[s])] * reps[s]))
        char_spans[s] = (start, start + len(pieces[-1]))
    if style.prefix:
        char_spans = {"prefix": (0, len(style.prefix)), **char_spans}
    prompt = SEPARATOR.join(pieces)
    used = count_tokens(prompt)
    if used > budget:
        raise ConfigError(
            f"the shortest prompt for these keywords needs {used} tokens, over the {budget} left",
            "use fewer soft tokens, a shorter prefix or shorter keywords",
        )
    return Composition(
        prompt=prompt,
        negative_prompt=style.negative,
        order=order,
        keywords={s: kept.get(s, []) for s in SEGMENTS},
        dropped={s: given[s][len(kept.get(s, [])) :] for s in SEGMENTS},
        char_spans=char_spans,
        repeats=reps,
        token_counts={
            "prefix": prefix_tokens,
            **{s: spoken(s, kept[s]) if s in kept else 0 for s in SEGMENTS},
            "prompt": used,
            "budget": budget,
        },
    )


def attach_soft_tokens(embeds: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``[soft ; embeds[:, : L - K]]``: K soft tokens first, the length L kept.

    ``soft`` is (K, D) for every row or (B, K, D); the caller makes sure the last K
    positions of ``embeds`` are padding.
    """
    k = soft.shape[-2]
    if soft.ndim == 2:
        soft = soft.unsqueeze(0).expand(embeds.shape[0], -1, -1)
    if soft.shape[-1] != embeds.shape[-1]:
        raise DataError(
            f"soft tokens have width {soft.shape[-1]}, the text encoder {embeds.shape[-1]}",
            "train the soft preference tokens for this generator",
        )
    soft = soft.to(device=embeds.device, dtype=embeds.dtype)
    return torch.cat([soft, embeds[:, : embeds.shape[1] - k]], dim=1)


@dataclass(frozen=True)
class Condition:
    """The generator's condition, with everything that shaped it: ``spans``, [start, end)
    token positions in ``embeds`` (soft tokens included); ``token_counts``, the soft, prefix,
    keyword, prompt and total tokens and the text encoder's length."""

    composition: Composition
    weights: tuple[float, float]
    scales: tuple[float, float]
    spans: dict[str, tuple[int, int]]
    token_counts: dict[str, int]
    embeds: PromptEmbeds
    negative: PromptEmbeds

    @property
    def prompt(self) -> str:
        return self.composition.prompt

    @property
    def negative_prompt(self) -> str:
        return self.composition.negative_prompt

    def summary(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready: why the image came out as it did."""
        c = self.composition
        return {
            "prompt": c.prompt,
            "negative_prompt": c.negative_prompt,
            "order": list(c.order),
            "keywords": c.keywords,
            "dropped_keywords": c.dropped,
            "weights": {"preference": self.weights[0], "item": self.weights[1]},
            "embedding_scales": {"preference": self.scales[0], "item": self.scales[1]},
            "token_counts": self.token_counts,
            "token_spans": {name: list(span) for name, span in self.spans.items()},
        }


def _token_spans(
    tokenizer: Any, prompt: str, char_spans: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Token positions of each character span of ``prompt`` (start token included)."""
    offsets = tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
    spans = {}
    for name, (lo, hi) in char_spans.items():
        inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= lo and b <= hi]
        spans[name] = (inside[0], inside[-1] + 1) if inside else (0, 0)
    return spans


def build_condition(
    generator: ImageGenerator,
    preference: Sequence[str],
    item: Sequence[str],
    *,
    soft_tokens: torch.Tensor | None = None,
    config: ConditionConfig | None = None,
) -> Condition:
    """PMG's condition for one image: compose, encode, scale segments, attach soft tokens.

    ``soft_tokens`` (K, D) come from ``SoftPreferenceTrainer.soft_tokens``; None
    conditions on the keywords alone.
    """
    from tastemaker.generation.generator import PromptEmbeds

    config = config or ConditionConfig()
    k = 0 if soft_tokens is None else int(soft_tokens.shape[-2])
    length = generator.max_length
    composition = compose_prompt(
        preference, item, config, budget=length - 2 - k, count_tokens=generator.count_tokens
    )
    encoded = generator.encode([composition.prompt])
    spans = _token_spans(generator.tokenizer, composition.prompt, composition.char_spans)
    scales = segment_scales(config.weights) if config.scale_embeddings else (1.0, 1.0)
    embeds = encoded.embeds.clone()
    if scales != (1.0, 1.0):
        empty = generator.encode([""]).embeds
        for segment, scale in zip(SEGMENTS, scales, strict=True):
            lo, hi = spans.get(segment, (0, 0)) if scale != 1.0 else (0, 0)
            embeds[:, lo:hi] = empty[:, lo:hi] + scale * (embeds[:, lo:hi] - empty[:, lo:hi])
    if k:
        embeds = attach_soft_tokens(embeds, soft_tokens)
        spans = {name: (lo + k, hi + k) for name, (lo, hi) in spans.items()}
        spans = {"soft": (0, k), **spans}
    positive = PromptEmbeds(embeds, encoded.pooled)
    used = composition.token_counts["prompt"] + 2 + k
    return Condition(
        composition=composition,
        weights=config.weights,
        scales=scales,
        spans=spans,
        token_counts={"soft": k, **composition.token_counts, "total": used, "length": length},
        embeds=positive,
        negative=generator.negative(positive, composition.negative_prompt),
    )
