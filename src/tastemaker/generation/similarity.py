"""How alike two images are: SSIM on pixels and the cosine of image-encoder features.

The generation evaluation compares a generated image with the user's history
images and the target item's real image, both ways; the reference is centre-cropped
and resized to the generated image first (:func:`pixels`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tastemaker.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image

    from tastemaker.generation.scoring import ImageTextScorer

log = logging.getLogger("tastemaker.generation")

SSIM_WINDOW = 11  # the Gaussian window's side: σ = 1.5 truncated at 3.5σ, as Wang et al.


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0) -> float:
    """Mean structural similarity of two images of equal shape (H, W) or (H, W, C).

    Wang, Bovik, Sheikh and Simoncelli (2004), "Image quality assessment: from error
    visibility to structural similarity", as scikit-image computes it with the
    paper's settings: an 11×11 Gaussian window (σ = 1.5), population moments,
    ``c1 = (0.01·L)²``, ``c2 = (0.03·L)²`` with ``L = data_range`` (1 for
    :func:`pixels`), averaged over the positions where the window fits and over
    channels. 1 for identical images; near 0 for unrelated ones.
    """
    from skimage.metrics import structural_similarity

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"SSIM of images shaped {a.shape} and {b.shape}", "resize them to match")
    if a.ndim not in (2, 3) or min(a.shape[:2]) < SSIM_WINDOW:
        raise DataError(
            f"SSIM needs (H, W) or (H, W, C) images of at least {SSIM_WINDOW} pixels a side, "
            f"got {a.shape}",
            "compare larger images",
        )
    return float(
        structural_similarity(
            a,
            b,
            data_range=data_range,
            channel_axis=-1 if a.ndim == 3 else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def pixels(image: Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) floats in [0, 1]; with ``size`` (height, width), centre-cropped to its aspect
    and resized (as the soft-token trainer prepares images)."""
    from tastemaker.generation.soft_prompt import image_tensor

    if size is None:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    tensor = image_tensor([image], *size)[0]  # (3, H, W) in [-1, 1]
    return (tensor.permute(1, 2, 0).double().numpy() + 1.0) / 2.0


def perceptual_features(scorer: ImageTextScorer, images: Sequence[Image]) -> np.ndarray:
    """Unit image-encoder features: the scorer's own image encoder, before any projection
    into a joint image-text space (a CLIP scorer's features are already that)."""
    from tastemaker.generation.scoring import EncoderScorer

    if isinstance(scorer, EncoderScorer):
        return EncoderScorer(scorer.text, scorer.image).image_features(list(images))
    return np.asarray(scorer.image_features(list(images)), dtype=np.float32)


def open_images(paths: Sequence[str | None]) -> list[Image]:
    """The readable images among ``paths`` (RGB, loaded into memory); an unreadable one is
    left out with a warning, as a pair without history or target images is scored without."""
    from PIL import Image as PILImage

    images = []
    for path in paths:
        if not path:
            continue
        try:
            with PILImage.open(path) as image:
                images.append(image.convert("RGB"))
        except OSError as exc:
            log.warning("cannot read image %s (%s); left out of the comparison", path, exc)
    return images


__all__ = ["SSIM_WINDOW", "open_images", "perceptual_features", "pixels", "ssim"]
