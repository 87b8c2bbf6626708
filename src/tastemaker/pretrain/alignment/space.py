"""``AlignedSpace``: trained heads that map image and text features of named encoders into
one space, with the split and held-out metrics they came with, saved as a folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from tastemaker.atomic import atomic_path
from tastemaker.checkpoint import read_json, read_tensors, write_json, write_tensors
from tastemaker.encoders.base import ItemEmbeddings, Modality
from tastemaker.errors import DataError
from tastemaker.pretrain.alignment.config import AlignmentConfig
from tastemaker.pretrain.alignment.report import retrieval_markdown, training_plot

SPACE_FILE = "space.json"
WEIGHTS_FILE = "space.safetensors"
LOG_FILE = "training_log.json"
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
PLOT_FILE = "training.png"
SPACE_FORMAT = 1
EMBED_CHUNK = 4096  # rows per forward pass when embedding features


@dataclass
class AlignedSpace:
    """Trained heads mapping image and text features of given encoders into one space.

    ``module`` is an :class:`~tastemaker.pretrain.alignment.heads.AlignmentHeads`;
    ``split`` holds the item IDs used for train/valid/test; ``metrics`` the test
    retrieval of the space and its baselines (empty without test items).
    """

    config: AlignmentConfig
    image_encoder: str
    text_encoder: str
    image_dim: int
    text_dim: int
    module: Any = field(repr=False)
    log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    split: dict[str, list[str]] = field(default_factory=dict, repr=False)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    n_test: int = 0
    best_epoch: int | None = None
    train_seconds: float = 0.0

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def temperature(self) -> float:
        return math.exp(-self.module.logit_scale.item())

    def check_encoders(self, image_encoder: str | None, text_encoder: str | None) -> None:
        """Raise a DataError when features come from encoders this space was not trained on."""
        for modality, got, want in (
            ("image", image_encoder, self.image_encoder),
            ("text", text_encoder, self.text_encoder),
        ):
            if got is not None and got != want:
                raise DataError(
                    f"the aligned space was trained on {modality} features of '{want}', "
                    f"not of '{got}'",
                    f"use {modality} features from '{want}', or train a space on '{got}' "
                    "(tastemaker pretrain align)",
                )

    def embed_image(self, features: np.ndarray | ItemEmbeddings) -> np.ndarray:
        """Image features -> (n, dim) unit rows (zero rows where a features mask is False)."""
        return self._embed("image", features)

    def embed_text(self, features: np.ndarray | ItemEmbeddings) -> np.ndarray:
        """Text features -> (n, dim) unit rows (zero rows where a features mask is False)."""
        return self._embed("text", features)

    def _embed(self, modality: Modality, features: np.ndarray | ItemEmbeddings) -> np.ndarray:
        import torch

        mask = None
        if isinstance(features, ItemEmbeddings):
            if features.modality != modality:
                raise DataError(
                    f"got {features.modality} features where {modality} features belong",
                    f"pass the {modality} ItemEmbeddings",
                )
            self.check_encoders(
                features.encoder_id if modality == "image" else None,
                features.encoder_id if modality == "text" else None,
            )
            mask, features = features.mask, features.vectors
        vectors = np.asarray(features, dtype=np.float32)
        want = self.image_dim if modality == "image" else self.text_dim
        if vectors.ndim != 2 or vectors.shape[1] != want:
            raise DataError(
                f"{modality} features of shape {vectors.shape} do not fit the aligned space "
                f"(it takes {want}-d {modality} features)",
                f"encode with '{self.image_encoder if modality == 'image' else self.text_encoder}'",
            )
        head = self.module.image if modality == "image" else self.module.text
        head.eval()
        out = np.zeros((len(vectors), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(vectors), EMBED_CHUNK):
                chunk = torch.from_numpy(vectors[lo : lo + EMBED_CHUNK])
                out[lo : lo + EMBED_CHUNK] = head(chunk).numpy()
        if mask is not None:
            out[~mask] = 0.0
        return out

    def markdown(self) -> str:
        """The held-out retrieval table of the space against its baselines."""
        return retrieval_markdown(self.metrics, self.n_test, self.image_encoder, self.text_encoder)

    def save(self, path: Path | str) -> Path:
        """Write the space (safetensors + JSON), log, metrics and plot to the folder ``path``."""
        path = Path(path)
        meta = {
            "format": SPACE_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "image_encoder": self.image_encoder,
            "text_encoder": self.text_encoder,
            "image_dim": self.image_dim,
            "text_dim": self.text_dim,
            "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds,
            "n_test": self.n_test,
            "metrics": self.metrics,
            "split": self.split,
        }
        with atomic_path(path, directory=True) as tmp:
            write_json(tmp / SPACE_FILE, meta, indent=1)
            write_tensors(tmp / WEIGHTS_FILE, self.module.state_dict())
            write_json(tmp / LOG_FILE, self.log, indent=1)
            summary = {k: meta[k] for k in ("image_encoder", "text_encoder", "n_test", "metrics")}
            summary["train_seconds"] = self.train_seconds
            write_json(tmp / METRICS_JSON, summary)
            (tmp / METRICS_MD).write_text(self.markdown(), encoding="utf-8")
            if self.log:
                (tmp / PLOT_FILE).write_bytes(training_plot(self.log, self.best_epoch))
        return path

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        image_encoder: str | None = None,
        text_encoder: str | None = None,
    ) -> AlignedSpace:
        """A space written by :meth:`save`; naming the encoders checks it was trained on them."""
        from tastemaker.pretrain.alignment.heads import AlignmentHeads

        path = Path(path)
        redo = "point to a folder written by `tastemaker pretrain align` (AlignedSpace.save)"
        meta = read_json(path / SPACE_FILE, redo)
        try:
            config = AlignmentConfig.model_validate(meta["config"])
            image_dim, text_dim = int(meta["image_dim"]), int(meta["text_dim"])
            ids = str(meta["image_encoder"]), str(meta["text_encoder"])
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise DataError(f"{path / SPACE_FILE} is invalid ({exc})", redo) from exc
        module = AlignmentHeads(image_dim, text_dim, config)
        try:
            module.load_state_dict(read_tensors(path / WEIGHTS_FILE, redo))
        except RuntimeError as exc:
            raise DataError(f"{path / WEIGHTS_FILE} does not fit its config", redo) from exc
        log_path = path / LOG_FILE
        space = cls(
            config,
            *ids,
            image_dim,
            text_dim,
            module.eval(),
            read_json(log_path, redo) if log_path.is_file() else [],
            meta.get("split", {}),
            meta.get("metrics", {}),
            int(meta.get("n_test", 0)),
            meta.get("best_epoch"),
            float(meta.get("train_seconds", 0.0)),
        )
        space.check_encoders(image_encoder, text_encoder)
        return space
