"""One interface for every modality: a Catalog in, a float32 matrix and a mask out.

An :class:`Encoder` turns each item's content for one modality (text built from
its attributes, or its image) into a vector. Items without that content, or
whose content cannot be read, get ``mask = False`` and an all-zero row: models
must consult the mask, so a missing poster is never silently a mean vector.

Encoders are cheap to build: the neural network loads on first use, so a run
whose vectors all come from the :mod:`~tastemaker.encoders.store` loads none.
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, PositiveInt

from tastemaker.config import validate
from tastemaker.data.catalog import ITEM_ID, Catalog
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError

log = logging.getLogger("tastemaker.encoders")

Modality = Literal["text", "image"]
NO_CONTENT = ""  # content key of an item that lacks the modality: nothing to encode or cache


@dataclass(frozen=True)
class ItemEmbeddings:
    """Vectors of one modality for a list of items, with the mask of who has that modality."""

    item_ids: list[str]
    vectors: np.ndarray
    mask: np.ndarray
    encoder_id: str
    modality: Modality

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.vectors.dtype != np.float32 or self.vectors.ndim != 2:
            raise ValueError(f"vectors must be a float32 matrix, got {self.vectors.dtype}")
        if self.vectors.shape[0] != n or self.mask.shape != (n,) or self.mask.dtype != bool:
            raise ValueError(
                f"{n} items need ({n}, dim) vectors and a ({n},) bool mask, "
                f"got {self.vectors.shape} and {self.mask.shape} {self.mask.dtype}"
            )
        if self.vectors[~self.mask].any():
            raise ValueError("rows whose mask is False must be all zeros")

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def align(self, vocab: Vocab) -> ItemEmbeddings:
        """Rows reordered to ``vocab``'s indices; items unknown here get mask False."""
        wanted = pl.DataFrame({"id": vocab.ids}, schema={"id": pl.Utf8})
        have = pl.DataFrame({"id": self.item_ids, "row": np.arange(len(self), dtype=np.int64)})
        row = wanted.join(have, on="id", how="left", maintain_order="left")["row"]
        found = row.is_not_null().to_numpy()
        source = row.drop_nulls().to_numpy()
        vectors = np.zeros((len(vocab), self.dim), dtype=np.float32)
        mask = np.zeros(len(vocab), dtype=bool)
        vectors[found] = self.vectors[source]
        mask[found] = self.mask[source]
        return ItemEmbeddings(vocab.ids, vectors, mask, self.encoder_id, self.modality)


@dataclass
class EncodeStats:
    """What one extraction did; ``items_per_s`` counts only items run through the model."""

    items: int = 0
    cached: int = 0
    encoded: int = 0
    failed: int = 0
    missing: int = 0
    seconds: float = 0.0
    encode_seconds: float = 0.0
    _start: float = field(default_factory=time.perf_counter, repr=False)

    @property
    def items_per_s(self) -> float:
        done = self.encoded + self.failed
        return done / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def finish(self) -> EncodeStats:
        self.seconds = time.perf_counter() - self._start
        return self


class EncoderConfig(BaseModel):
    """Settings every encoder has; unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    batch_size: PositiveInt = 32
    device: str = "cpu"

    # Fields that change how fast vectors come, or which content is read (already
    # in each item's content key), not the vector of given content: left out of the
    # store's signature, so changing them keeps the cache.
    not_in_signature: ClassVar[frozenset[str]] = frozenset({"batch_size", "device"})


class Encoder(ABC):
    """Items of a Catalog -> vectors of one modality.

    Subclasses set ``modality`` and ``config_class`` and implement
    :meth:`inputs` (what each item gives the model, None when nothing),
    :meth:`key_material` (the exact content behind an input), :meth:`embed`
    (one batch), :attr:`dim` and :meth:`provenance` (what computes the vectors).
    """

    modality: ClassVar[Modality]
    config_class: ClassVar[type[EncoderConfig]]
    config: EncoderConfig

    def __init__(self, config: EncoderConfig | None = None, **params: Any) -> None:
        if config is not None and not isinstance(config, self.config_class):
            raise ConfigError(
                f"{self.modality} encoder got a {type(config).__name__}",
                f"pass a {self.config_class.__name__} or keyword parameters",
            )
        base = config.model_dump() if config is not None else {}
        self.config = validate(
            self.config_class, {**base, **params}, where=f"{self.modality} encoder"
        )
        self.last_stats: EncodeStats | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder_id!r})"

    @property
    @abstractmethod
    def encoder_id(self) -> str:
        """The model's name (``library:name``, a hub id, or an absolute path)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the vectors (loads the model)."""

    @abstractmethod
    def inputs(self, catalog: Catalog) -> list[Any | None]:
        """Per item, what :meth:`embed` reads (None: the item lacks this modality)."""

    @abstractmethod
    def key_material(self, item_input: Any) -> str:
        """The content behind one input, as text to hash (e.g. the rendered text)."""

    @abstractmethod
    def embed(self, batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32, one row per input) and a bool mask of inputs that worked."""

    def batch_order(self, inputs: Sequence[Any], rows: np.ndarray) -> np.ndarray:
        """The order in which ``rows`` are fed to the model (text sorts by length)."""
        return rows

    @abstractmethod
    def provenance(self) -> dict[str, str]:
        """What computes the vectors besides the model's name (see :mod:`.provenance`).

        The versions of the packages that run the model and, where a package ships
        the weights as a local file, its SHA-256: part of :meth:`signature`, so a
        new library release or weights package never reuses the old vectors.
        Read without loading the model, so a fully cached run still loads none.
        """

    def signature(self) -> dict[str, Any]:
        """Everything besides an item's content that decides its vector (the store's key)."""
        skip = {"model", *self.config.not_in_signature}  # the model is named by encoder_id
        settings = self.config.model_dump(mode="json", exclude=skip)
        return {
            "encoder_id": self.encoder_id,
            "modality": self.modality,
            **settings,
            "provenance": self.provenance(),
        }

    def keys(self, inputs: Sequence[Any | None]) -> list[str]:
        """Content hashes of ``inputs``; :data:`NO_CONTENT` where there is nothing."""
        return [
            NO_CONTENT
            if item is None
            else hashlib.sha256(self.key_material(item).encode("utf-8")).hexdigest()[:32]
            for item in inputs
        ]

    def content_key(self, catalog: Catalog) -> list[str]:
        """Per item, a hash of exactly the content this encoder reads."""
        return self.keys(self.inputs(catalog))

    def encode(
        self, catalog: Catalog, *, batch_size: int | None = None, progress: bool = True
    ) -> ItemEmbeddings:
        """Embed every item of ``catalog`` (no cache: see :func:`encode_catalog`)."""
        inputs = self.inputs(catalog)
        stats = EncodeStats(items=len(inputs))
        rows = np.array([i for i, item in enumerate(inputs) if item is not None], dtype=np.int64)
        stats.missing = len(inputs) - len(rows)
        vectors = np.zeros((len(inputs), self.dim), dtype=np.float32)
        mask = np.zeros(len(inputs), dtype=bool)
        for done, batch, ok in run_batches(self, inputs, rows, stats, batch_size, progress):
            vectors[done] = batch
            mask[done] = ok
        self.last_stats = stats.finish()
        return self.embeddings(catalog, vectors, mask)

    def embeddings(self, catalog: Catalog, vectors: np.ndarray, mask: np.ndarray) -> ItemEmbeddings:
        """Wrap per-item rows of ``catalog`` as :class:`ItemEmbeddings` of this encoder."""
        ids = catalog.frame[ITEM_ID].to_list()
        return ItemEmbeddings(ids, vectors, mask, self.encoder_id, self.modality)


def run_batches(
    encoder: Encoder,
    inputs: Sequence[Any],
    rows: np.ndarray,
    stats: EncodeStats,
    batch_size: int | None = None,
    progress: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Embed ``inputs[rows]`` batch by batch with a progress bar: yields (rows, vectors, ok).

    The one loop behind :meth:`Encoder.encode` and the store: it counts items
    per second and failures into ``stats`` and logs a summary at the end, even
    when the consumer stops early or a batch raises.
    """
    from tqdm.auto import tqdm

    size = batch_size or encoder.config.batch_size
    order = encoder.batch_order(inputs, rows)
    if len(order):
        encoder.dim  # noqa: B018 - load the model now, so items/s measures encoding alone
    bar = tqdm(
        total=len(order), unit="item", desc=f"encode {encoder.modality}", disable=not progress
    )
    start = time.perf_counter()
    try:
        for lo in range(0, len(order), size):
            chunk = order[lo : lo + size]
            vectors, ok = encoder.embed([inputs[i] for i in chunk])
            vectors = np.asarray(vectors, dtype=np.float32)
            ok = np.asarray(ok, dtype=bool)
            vectors[~ok] = 0.0
            stats.encoded += int(ok.sum())
            stats.failed += int((~ok).sum())
            stats.encode_seconds = time.perf_counter() - start
            bar.update(len(chunk))
            bar.set_postfix_str(f"{stats.items_per_s:.1f} items/s", refresh=False)
            yield chunk, vectors, ok
    finally:
        bar.close()
        stats.encode_seconds = time.perf_counter() - start
        if stats.encoded or stats.failed:
            log.info(
                "%s: encoded %d items in %.1f s (%.1f items/s)",
                encoder.encoder_id,
                stats.encoded + stats.failed,
                stats.encode_seconds,
                stats.items_per_s,
            )
        if stats.failed:
            log.warning(
                "%d of %d %s inputs could not be read: masked out (see the warnings above)",
                stats.failed,
                stats.encoded + stats.failed,
                encoder.modality,
            )


_ENCODERS: dict[str, type[Encoder]] = {}
EncoderClass = TypeVar("EncoderClass", bound=type[Encoder])


def model_source(name: str) -> str:
    """``name`` as an absolute path when it is a local folder or file, else unchanged (a hub id)."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def model_load_errors() -> tuple[type[Exception], ...]:
    """What loading a checkpoint raises when the model choice is at fault, not our code.

    Missing files, an unreachable or unknown hub repo (transformers and
    huggingface_hub raise OSError subclasses), an unrecognised or malformed config
    (ValueError), weights that do not fit the architecture (RuntimeError), a
    corrupt safetensors file, a library the checkpoint needs (ImportError).
    Evaluated only when an ``except`` clause runs, so safetensors loads lazily.
    """
    from safetensors import SafetensorError

    return (OSError, ValueError, RuntimeError, ImportError, SafetensorError)


PIL_FALLBACK_NOTICE = "requires torchvision (not installed)"


class _PilFallbackFilter(logging.Filter):
    """Drops transformers' notice that an image processor falls back to Pillow.

    tastemaker preprocesses images with Pillow and NumPy by design (there is no CPU
    torchvision for its torch), so the notice, printed on every run that loads a
    pipeline, only alarms; every other message of that logger passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return PIL_FALLBACK_NOTICE not in record.getMessage()


def quiet_pil_fallback() -> None:
    """Install :class:`_PilFallbackFilter` on transformers' import logger, once."""
    logger = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(f, _PilFallbackFilter) for f in logger.filters):
        logger.addFilter(_PilFallbackFilter())


def load_error(name: str, exc: Exception) -> ConfigError:
    """A model that failed to load, as a ConfigError saying how to get one that loads."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ConfigError(
        f"cannot load model '{name}' ({type(exc).__name__}: {reason})",
        "pass a local model folder, or a Hugging Face id while online (HF_HUB_OFFLINE unset)",
    )


def register_encoder(cls: EncoderClass) -> EncoderClass:
    """Class decorator: make ``cls`` available to :func:`create_encoder` as its modality."""
    _ENCODERS[cls.modality] = cls
    return cls


def create_encoder(kind: str, **params: Any) -> Encoder:
    """A ``"text"`` or ``"image"`` encoder built from config fields (validated)."""
    try:
        cls = _ENCODERS[kind.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"unknown encoder kind '{kind}'", f"use one of: {', '.join(sorted(_ENCODERS))}"
        ) from None
    return cls(**params)
