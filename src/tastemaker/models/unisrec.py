"""UniSRec: sequences of items represented by their text, transferable across data sets.

Hou et al., "Towards Universal Sequence Representation Learning for Recommender
Systems", KDD 2022. Items are represented only by their text (frozen sentence
embeddings) passed through a mixture-of-experts adaptor (parametric whitening per
expert, softmax gate; :class:`~tastemaker.models.mm_sasrec.MoEAdaptor`); a causal
Transformer encodes sequences; sequences and items are compared by cosine / temperature,
with cross-entropy over all items.

The network can start from a :class:`UniSRecCheckpoint` pretrained on another data set
(:func:`tastemaker.pretrain.unisrec.pretrain_unisrec`) when ``pretrained`` names one.
``finetune="adaptor"`` is the paper's inductive fine-tuning: the Transformer (position
embedding and encoder layers) stays frozen and only the adaptor (and the input
LayerNorm) learns; ``"full"`` trains everything. Without a checkpoint the model trains
from scratch. Items are text-only, so an item unseen in training is scored like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, ValidationError

from tastemaker.atomic import atomic_path
from tastemaker.checkpoint import read_json, read_tensors, write_json, write_tensors
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocab import Vocab
from tastemaker.encoders.base import ItemEmbeddings, Modality
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.mm_sasrec import ContentSequenceNetwork, MMSASRec, MMSASRecConfig
from tastemaker.models.registry import register

logger = logging.getLogger("tastemaker.models")

CHECKPOINT_FILE, WEIGHTS_FILE, LOG_FILE = (
    "checkpoint.json",
    "network.safetensors",
    "training_log.json",
)
CHECKPOINT_FORMAT = 1
# Config fields that fix the network's tensor shapes: a fine-tuned model takes them
# from its checkpoint.
SHAPE_FIELDS = (
    "modalities",
    "hidden_size",
    "n_layers",
    "n_heads",
    "inner_size",
    "max_len",
    "projection",
    "n_experts",
    "fusion",
)
_ID_WEIGHT = "items.id_embedding.weight"  # per data set, never transferred


class UniSRecConfig(MMSASRecConfig):
    """The paper's model: text only, MoE adaptor, no item IDs (inductive), cosine scores.

    ``pretrained``: a folder written by :meth:`UniSRecCheckpoint.save`; its network
    shape (:data:`SHAPE_FIELDS`) replaces this config's. ``finetune`` chooses what
    learns after loading it (see the module docstring).
    """

    modalities: list[Modality] = Field(default_factory=lambda: ["text"])
    projection: Literal["linear", "mlp", "moe"] = "moe"
    use_id: bool = False
    temperature: PositiveFloat = 0.07
    pretrained: Path | None = None
    finetune: Literal["adaptor", "full"] = "adaptor"


@dataclass(frozen=True)
class UniSRecCheckpoint:
    """A pretrained UniSRec network: its config, the encoders its features came from
    (modality → encoder id and width), the weights, and the pretraining record
    (``pretraining``: settings beyond the network's; ``training_log``)."""

    config: UniSRecConfig
    encoders: dict[str, str]
    dims: dict[str, int]
    weights: dict[str, torch.Tensor] = field(repr=False)
    pretraining: dict[str, Any] = field(default_factory=dict)
    training_log: list[dict[str, Any]] = field(default_factory=list, repr=False)
    best_epoch: int | None = None

    def shape(self) -> dict[str, Any]:
        """The config fields that a network must share to take these weights."""
        return {name: getattr(self.config, name) for name in SHAPE_FIELDS}

    def check_features(self, features: Mapping[str, ItemEmbeddings]) -> None:
        """Raise unless ``features`` hold every modality the checkpoint was pretrained on,
        from the same encoders."""
        for modality, encoder in self.encoders.items():
            got = features.get(modality)
            if got is None:
                raise ConfigError(
                    f"the UniSRec checkpoint was pretrained on {modality} features, "
                    f"but none were given (got {sorted(features)})",
                    f"pass {modality} features from '{encoder}'",
                )
            if got.encoder_id != encoder or got.dim != self.dims[modality]:
                raise DataError(
                    f"the UniSRec checkpoint was pretrained on {self.dims[modality]}-d "
                    f"{modality} features of '{encoder}', not {got.dim}-d ones of "
                    f"'{got.encoder_id}'",
                    f"encode the items with '{encoder}', or pretrain on '{got.encoder_id}'",
                )

    def load_into(self, network: torch.nn.Module) -> None:
        """Copy the pretrained weights into ``network`` (its item IDs, if any, stay new)."""
        missing, unexpected = network.load_state_dict(self.weights, strict=False)
        if unexpected or set(missing) - {_ID_WEIGHT}:
            raise DataError(
                f"the UniSRec checkpoint does not fit the network (missing {missing}, "
                f"unexpected {unexpected})",
                "fine-tune with the checkpoint's own network shape",
            )

    def save(self, path: Path | str) -> Path:
        """Write the folder ``path``: checkpoint.json, network.safetensors, training_log.json."""
        path = Path(path)
        meta = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "encoders": self.encoders,
            "dims": self.dims,
            "pretraining": self.pretraining,
            "best_epoch": self.best_epoch,
        }
        with atomic_path(path, directory=True) as tmp:
            write_json(tmp / CHECKPOINT_FILE, meta)
            write_tensors(tmp / WEIGHTS_FILE, self.weights)
            write_json(tmp / LOG_FILE, self.training_log, indent=1)
        return path

    @classmethod
    def load(cls, path: Path | str) -> UniSRecCheckpoint:
        """A checkpoint written by :meth:`save`."""
        path = Path(path)
        redo = "point to a folder written by `tastemaker pretrain unisrec` (or checkpoint.save)"
        meta = read_json(path / CHECKPOINT_FILE, redo)
        try:
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT}")
            config = UniSRecConfig.model_validate(meta["config"])
            encoders = {str(k): str(v) for k, v in meta["encoders"].items()}
            dims = {str(k): int(v) for k, v in meta["dims"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise DataError(f"{path / CHECKPOINT_FILE} is invalid ({exc})", redo) from exc
        weights = read_tensors(path / WEIGHTS_FILE, redo)
        log = read_json(path / LOG_FILE, redo) if (path / LOG_FILE).is_file() else []
        pretraining = dict(meta.get("pretraining") or {})
        return cls(config, encoders, dims, weights, pretraining, log, meta.get("best_epoch"))


@register
class UniSRec(MMSASRec):
    """UniSRec trained from scratch or fine-tuned from a checkpoint (see the module
    docstring)."""

    name = "unisrec"
    config_class: ClassVar[type[UniSRecConfig]] = UniSRecConfig
    config: UniSRecConfig
    normalize_states = True

    def _unfit(self) -> None:
        super()._unfit()
        self._checkpoint: UniSRecCheckpoint | None = None

    def _use_features(self, features: Mapping[str, ItemEmbeddings] | None, items: Vocab) -> None:
        """With ``pretrained``, check the features against that checkpoint, whose network
        shape this model takes; training then starts from its weights."""
        if self.config.pretrained is not None and features is not None:
            checkpoint = UniSRecCheckpoint.load(self.config.pretrained)
            checkpoint.check_features(features)
            changed = {k: v for k, v in checkpoint.shape().items() if getattr(self.config, k) != v}
            if changed:
                logger.info("unisrec takes the checkpoint's network shape: %s", changed)
                self.config = self.config.model_copy(update=changed)
            self._checkpoint = checkpoint
        super()._use_features(features, items)

    def _prepare(self, train: Interactions) -> None:
        super()._prepare(train)
        checkpoint, self._checkpoint = self._checkpoint, None
        if checkpoint is None:
            return
        if not isinstance(self.network, ContentSequenceNetwork):
            raise self.not_fitted_error()
        checkpoint.load_into(self.network)
        if self.config.finetune == "adaptor":
            trunk = self.network.trunk
            for param in chain(trunk.position_embedding.parameters(), trunk.encoder.parameters()):
                param.requires_grad_(False)  # no gradient, so Adam leaves them as they are

    def _item_weights(self) -> torch.Tensor:
        return F.normalize(super()._item_weights(), dim=-1) / self.config.temperature
