"""Spatial image features, computed once through the embedding store.

The store keeps one vector per item; the shared image encoder pools its feature
map to one. UniMP's visual tokens come from the map itself (regions, resampled
to a few tokens), so :class:`SpatialImageEncoder` is the image encoder with the
last feature map average-pooled to ``grid`` x ``grid`` regions and flattened
(``grid²·C`` floats per item). Its settings are part of the store's signature,
so these vectors live in a folder of their own and training never re-runs the
vision model. :class:`VisualBank` keeps them as ``(rows, regions, C)`` for the
items that have an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import PositiveInt

from tastemaker.data.catalog import Catalog
from tastemaker.data.vocab import Vocab
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.encoders.image import ImageEncoder, ImageEncoderConfig, ImageRef
from tastemaker.encoders.store import EmbeddingStore, encode_catalog
from tastemaker.errors import DataError

if TYPE_CHECKING:
    import torch


class SpatialImageEncoderConfig(ImageEncoderConfig):
    """The image encoder's settings plus the pooled grid of the feature map."""

    grid: PositiveInt = 2


class SpatialImageEncoder(ImageEncoder):
    """Per item, its image's last feature map pooled to ``grid``² regions, flattened.

    Not registered with ``create_encoder``: the "image" modality keeps the pooled
    encoder; this one exists for UniMP's visual tokens.
    """

    config_class: ClassVar = SpatialImageEncoderConfig
    config: SpatialImageEncoderConfig

    @property
    def regions(self) -> int:
        return self.config.grid**2

    @property
    def dim(self) -> int:
        return self.backend.dim * self.regions

    def embed(self, batch: Sequence[ImageRef]) -> tuple[np.ndarray, np.ndarray]:
        prep = self.backend.preprocessing
        pixels = [self.read(ref, prep) for ref in batch]
        ok = np.array([p is not None for p in pixels], dtype=bool)
        vectors = np.zeros((len(batch), self.dim), dtype=np.float32)
        if ok.any():
            maps = self.feature_map(prep.tensor([p for p in pixels if p is not None]))
            vectors[ok] = maps.reshape(int(ok.sum()), -1)
        return vectors, ok

    def feature_map(self, pixels: torch.Tensor) -> np.ndarray:
        """(batch, regions, C): the last feature map (or token sequence) pooled to the grid."""
        import torch
        from torch.nn import functional

        backend = self.backend
        with torch.inference_mode():
            net = getattr(backend, "net", None)  # EfficientNet-Lite0: its conv trunk
            if net is not None:
                maps = net.extract_features(pixels.to(self.config.device))
            else:  # a Hugging Face vision model: its last hidden state
                maps = backend.model(pixel_values=pixels.to(self.config.device)).last_hidden_state
            if maps.ndim == 4:  # (B, C, H, W)
                pooled = functional.adaptive_avg_pool2d(maps, self.config.grid).flatten(2)
            else:  # (B, tokens, C): pooled in token order
                pooled = functional.adaptive_avg_pool1d(maps.transpose(1, 2), self.regions)
        return pooled.transpose(1, 2).float().cpu().numpy()


@dataclass(frozen=True)
class VisualBank:
    """Region features of the items with an image: ``rows[item index]`` is -1 or a row.

    ``features`` is float32 ``(n_with_image, regions, C)``; ``vocab`` names the items.
    """

    vocab: Vocab
    rows: np.ndarray
    features: np.ndarray

    def __post_init__(self) -> None:
        if self.features.ndim != 3 or self.rows.shape != (len(self.vocab),):
            raise DataError(
                f"visual features must be (items, regions, dim) with a row per vocab item, got "
                f"{self.features.shape} and {self.rows.shape}",
                "build the bank with VisualBank.from_embeddings",
            )

    @property
    def regions(self) -> int:
        return int(self.features.shape[1])

    @property
    def dim(self) -> int:
        return int(self.features.shape[2])

    @classmethod
    def from_embeddings(cls, embeddings: ItemEmbeddings, vocab: Vocab, regions: int) -> VisualBank:
        """Flattened spatial vectors (:class:`SpatialImageEncoder`'s) aligned to ``vocab``."""
        aligned = embeddings.align(vocab)
        if aligned.dim % regions:
            raise DataError(
                f"spatial features of width {aligned.dim} do not split into {regions} regions",
                "use the grid the features were computed with",
            )
        have = np.flatnonzero(aligned.mask)
        rows = np.full(len(vocab), -1, dtype=np.int64)
        rows[have] = np.arange(len(have))
        features = aligned.vectors[have].reshape(len(have), regions, -1)
        return cls(vocab, rows, np.ascontiguousarray(features))

    @classmethod
    def empty(cls, vocab: Vocab, regions: int = 1, dim: int = 8) -> VisualBank:
        """No item has an image (text-only runs)."""
        rows = np.full(len(vocab), -1, dtype=np.int64)
        return cls(vocab, rows, np.zeros((0, regions, dim), dtype=np.float32))


def spatial_features(
    catalog: Catalog,
    vocab: Vocab,
    store: Path | None,
    *,
    grid: int = 2,
    image_size: int = 224,
    device: str = "cpu",
    progress: bool = True,
) -> VisualBank:
    """The catalog's images as region features, through the store at ``store`` (cached)."""
    encoder = SpatialImageEncoder(grid=grid, image_size=image_size, device=device)
    embeddings = encode_catalog(
        catalog, encoder, EmbeddingStore(store) if store else None, progress=progress
    )
    return VisualBank.from_embeddings(embeddings, vocab, grid**2)


def default_store() -> Path:
    """The embedding store the other commands use (beside the data set cache)."""
    from tastemaker.data.sources.registry import default_cache_dir

    return default_cache_dir().parent / "embeddings"
