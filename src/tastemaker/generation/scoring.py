"""Image-text scorers, and PMG's selection of the best generated candidate.

PMG (Shen et al., "PMG: Personalized Multimodal Generation with Large Language
Models", WWW 2024, arXiv 2404.08677) generates candidates over a grid of
preference/item weights and keeps the one maximising

    z = α · log d_p + (1 − α) · log d_t

where d_p is the image's similarity to the preference keywords and d_t its
similarity to the target item's keywords. Cosine similarity lies in [−1, 1] and
its log is undefined at or below 0, so tastemaker maps it to (0, 1] first with
d = max((1 + cos) / 2, ε): monotone in the cosine, 1 for identical directions,
1/2 for orthogonal ones, and ε (1e-6) instead of 0 for opposite ones
(``similarity = "unit"``, the default).

PMG's release instead takes CLIP's logits, d = s·cos with CLIP's logit scale s
(100), and keeps the image maximising log d_t + 2·log d_p for movies: the same
argmax as z with α = 2/3 (``similarity = "logit"``, the ``pmg-paper`` preset);
there a cosine at or below 0 gives d = ε, where the release's log would be undefined.

Two scorers share one interface (:class:`ImageTextScorer`):

* :class:`ClipScorer`: a Hugging Face ``CLIPModel`` (any joint image-text
  checkpoint) by id or folder, loaded through :mod:`tastemaker.encoders.clip`;
* :class:`AlignedScorer`: tastemaker's own image and text encoders followed by
  the heads of an :class:`~tastemaker.pretrain.alignment.AlignedSpace` trained on
  the catalog: the offline default when no CLIP weights are at hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from tastemaker.encoders.base import model_source
from tastemaker.encoders.image import ImageEncoder
from tastemaker.encoders.text import DEFAULT_TEXT_MODEL, TextEncoder
from tastemaker.errors import ConfigError, DataError

if TYPE_CHECKING:
    from PIL.Image import Image

    from tastemaker.pretrain.alignment import AlignedSpace

EPS = 1e-6  # d for a cosine of -1: log d stays finite
CLIP_LOGIT_SCALE = 100.0  # exp(logit_scale) of OpenAI's CLIP checkpoints (clamped there)
Similarity = Literal["unit", "logit"]


@runtime_checkable
class ImageTextScorer(Protocol):
    """Images and texts as unit vectors of one space, compared by cosine."""

    def image_features(self, images: Sequence[Image]) -> np.ndarray:
        """(n, d) float32 unit rows, one per image."""
        ...

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """(m, d) float32 unit rows, one per text."""
        ...

    def similarity(self, images: Sequence[Image], texts: Sequence[str]) -> np.ndarray:
        """(n, m) cosine similarities of every image to every text."""
        return self.image_features(images) @ self.text_features(texts).T

    def to_d(self, cosines: np.ndarray) -> np.ndarray:
        """The d of PMG's z for these cosines: (1 + cos) / 2 unless configured otherwise."""
        return unit_interval(cosines)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class EncoderScorer(ImageTextScorer):
    """A scorer over a tastemaker image and text encoder, with an optional projection.

    ``similarity`` is how a cosine becomes PMG's d: ``unit`` ((1 + cos) / 2) or
    ``logit`` (the logit scale times the cosine, as PMG's release scores with CLIP).
    """

    logit_scale = CLIP_LOGIT_SCALE

    def __init__(
        self,
        text: TextEncoder,
        image: ImageEncoder,
        *,
        similarity: Similarity = "unit",
    ) -> None:
        self.text = text
        self.image = image
        self.d_kind: Similarity = similarity

    def to_d(self, cosines: np.ndarray) -> np.ndarray:
        if self.d_kind == "logit":
            return logit_similarity(cosines, self.logit_scale)
        return unit_interval(cosines)

    def image_features(self, images: Sequence[Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _unit(self.project_image(self.encoder_features(images)))

    def encoder_features(self, images: Sequence[Image]) -> np.ndarray:
        """The image encoder's raw features, before any projection (float32 rows)."""
        backend = self.image.backend
        prep = backend.preprocessing
        size = self.image.config.batch_size
        raw = np.concatenate(
            [
                backend(
                    prep.tensor([prep.pixels(im.convert("RGB")) for im in images[lo : lo + size]])
                )
                for lo in range(0, len(images), size)
            ]
        )
        return raw.astype(np.float32)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        blank = [i for i, text in enumerate(texts) if not str(text).strip()]
        if blank:
            raise DataError(
                f"text {blank[0]} to score is empty", "give every text at least one keyword"
            )
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.text.config.batch_size
        raw = np.concatenate(
            [self.text.embed(list(texts[lo : lo + size]))[0] for lo in range(0, len(texts), size)]
        )
        return _unit(self.project_text(raw))

    @property
    def dim(self) -> int:
        return self.text.dim

    def project_image(self, vectors: np.ndarray) -> np.ndarray:
        return vectors

    def project_text(self, vectors: np.ndarray) -> np.ndarray:
        return vectors


class ClipScorer(EncoderScorer):
    """A joint image-text checkpoint (CLIP) by hub id or local folder: its own shared space."""

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        similarity: Similarity = "unit",
    ) -> None:
        from tastemaker.encoders.clip import clip_encoders, is_joint_model

        if not is_joint_model(model_source(model)):
            raise ConfigError(
                f"'{model}' is not a joint image-text (CLIP-like) checkpoint",
                "pass a CLIPModel folder or hub id, or use AlignedScorer with a space from "
                "`tastemaker pretrain align`",
            )
        encoders = clip_encoders(model, device=device, batch_size=batch_size)
        super().__init__(*encoders, similarity=similarity)


class AlignedScorer(EncoderScorer):
    """tastemaker's image and text encoders, mapped into an :class:`AlignedSpace`.

    The encoders default to the ones the space was trained on (by their recorded
    ids); encoders that differ from them are a :class:`DataError`.
    """

    def __init__(
        self,
        space: AlignedSpace | Path | str,
        *,
        text: TextEncoder | None = None,
        image: ImageEncoder | None = None,
        similarity: Similarity = "unit",
    ) -> None:
        from tastemaker.pretrain.alignment import AlignedSpace

        self.space = space if isinstance(space, AlignedSpace) else AlignedSpace.load(space)
        text = text or TextEncoder(model=_model_name(self.space.text_encoder, DEFAULT_TEXT_MODEL))
        image = image or ImageEncoder(model=self.space.image_encoder)
        self.space.check_encoders(image.encoder_id, text.encoder_id)
        super().__init__(text, image, similarity=similarity)
        self.logit_scale = 1.0 / self.space.temperature  # the space's own learned scale

    @property
    def dim(self) -> int:
        return self.space.dim

    def project_image(self, vectors: np.ndarray) -> np.ndarray:
        return self.space.embed_image(vectors)

    def project_text(self, vectors: np.ndarray) -> np.ndarray:
        return self.space.embed_text(vectors)


def _model_name(encoder_id: str, default: str) -> str:
    """The model name that gives ``encoder_id`` (the default's id carries a library prefix)."""
    return default if encoder_id.endswith(f":{default}") else encoder_id


# --- PMG's selection objective ---------------------------------------------------------


def unit_interval(cosine: np.ndarray | float) -> np.ndarray:
    """Cosine in [-1, 1] -> similarity in (0, 1]: max((1 + cos) / 2, EPS)."""
    return np.clip((1.0 + np.asarray(cosine, dtype=np.float64)) / 2.0, EPS, 1.0)


def logit_similarity(cosine: np.ndarray | float, scale: float) -> np.ndarray:
    """Cosine -> a CLIP-style logit, scale·cos, floored at EPS (log d stays finite)."""
    return np.maximum(scale * np.asarray(cosine, dtype=np.float64), EPS)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float, or a ConfigError when outside [0, 1]."""
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ConfigError(
            f"alpha must lie in [0, 1], got {alpha}",
            "pass a weight between 0 (item only) and 1 (preferences only)",
        )
    return float(alpha)


def pmg_objective(d_p: np.ndarray | float, d_t: np.ndarray | float, alpha: float) -> np.ndarray:
    """z = α·log d_p + (1 − α)·log d_t (Shen et al. 2024), for d in (0, 1]."""
    alpha = check_alpha(alpha)
    return alpha * np.log(d_p) + (1.0 - alpha) * np.log(d_t)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate image: cosines to both texts, their (0, 1] similarities, and z."""

    cos_p: float
    cos_t: float
    d_p: float
    d_t: float
    z: float


@dataclass(frozen=True)
class Selection:
    """Every candidate's scores and the index of the one with the highest z."""

    scores: list[CandidateScore]
    best: int
    alpha: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "best": self.best,
            "scores": [asdict(s) for s in self.scores],
        }


def select_best(
    scorer: ImageTextScorer,
    candidates: Sequence[Image],
    pref_text: str,
    item_text: str,
    alpha: float = 0.5,
) -> Selection:
    """Score ``candidates`` against the preference and item keywords; keep the max-z one."""
    alpha = check_alpha(alpha)
    if not candidates:
        raise DataError("no candidate images to select from", "generate at least one candidate")
    cosines = np.asarray(scorer.similarity(list(candidates), [pref_text, item_text]), np.float64)
    to_d = getattr(scorer, "to_d", unit_interval)  # a scorer that is no subclass: (1+cos)/2
    d_p, d_t = to_d(cosines[:, 0]), to_d(cosines[:, 1])
    z = pmg_objective(d_p, d_t, alpha)
    scores = [
        CandidateScore(float(cp), float(ct), float(p), float(t), float(v))
        for cp, ct, p, t, v in zip(cosines[:, 0], cosines[:, 1], d_p, d_t, z, strict=True)
    ]
    return Selection(scores, int(np.argmax(z)), alpha)
