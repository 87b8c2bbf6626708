"""Cross-modal alignment: a shared image-text space learned from the catalog's own items.

Two projection heads, one over frozen image features (EfficientNet-Lite0 posters,
1280-d by default) and one over frozen text features (all-MiniLM-L6-v2, 384-d),
map both into one ``dim``-wide space of unit vectors. They are trained with
CLIP's symmetric InfoNCE loss (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision", Fig. 3): for a batch of N pairs,

    logits = exp(t) * I_e @ T_e^T          (I_e, T_e: L2-normalised embeddings)
    loss   = (CE(logits, arange(N)) + CE(logits^T, arange(N))) / 2

with the log inverse temperature ``t`` learned, initialised at log(1 / 0.07) and
capped at log(100) as in CLIP. A pair is an item whose image *and* text masks are
both True. Items are split (seeded) into train, valid (early stopping on the
valid InfoNCE loss) and test (reported once, never used for any choice).

Two baselines are reported on the same test items, because raw features of
different widths cannot be compared at all:

* *untrained heads*: the same architecture at its random initialisation (the
  "unaligned" space; near chance);
* *ridge map*: a linear least-squares map from standardised image features to
  text features fitted on the train items (its ridge penalty chosen on valid),
  compared by cosine in the text space; the usual non-contrastive alignment.

With no CLIP weights available offline, the resulting :class:`AlignedSpace` is
tastemaker's default image-text scorer (:mod:`tastemaker.generation.scoring`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from tastemaker.atomic import atomic_path
from tastemaker.checkpoint import read_json, read_tensors, write_json, write_tensors
from tastemaker.config import validate
from tastemaker.encoders.base import ItemEmbeddings, Modality
from tastemaker.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("tastemaker.pretrain")

SPACE_FILE = "space.json"
WEIGHTS_FILE = "space.safetensors"
LOG_FILE = "training_log.json"
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
PLOT_FILE = "training.png"
SPACE_FORMAT = 1
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips exp(t) at 100 to keep training stable
RIDGE_PENALTIES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
KS = (1, 10)
PARTS = ("train", "valid", "test")
DIRECTIONS = ("i2t", "t2i")  # image -> text, text -> image
BASELINES = {
    "aligned": "aligned space (InfoNCE heads)",
    "ridge": "ridge map image → text features",
    "untrained": "untrained heads (random init)",
    "chance": "chance",
}


class AlignmentConfig(BaseModel):
    """Heads, optimiser and item split of one alignment run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: PositiveInt = 256  # width of the shared space
    hidden: NonNegativeInt = 512  # hidden width of each head's MLP; 0: linear heads
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # inside the MLP heads (hidden > 0)
    epochs: PositiveInt = 100
    learning_rate: PositiveFloat = 1e-3
    batch_size: int = Field(256, ge=2)  # InfoNCE needs negatives: at least 2 pairs a batch
    weight_decay: NonNegativeFloat = 0.01
    temperature: PositiveFloat = 0.07  # initial; learned (CLIP's init)
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    patience: PositiveInt = 15  # epochs without a lower valid loss before stopping

    @model_validator(mode="after")
    def _leave_training_items(self) -> AlignmentConfig:
        if self.valid_fraction + self.test_fraction > 0.9:
            raise ValueError("valid_fraction + test_fraction must leave >= 10% for training")
        return self


@dataclass(frozen=True)
class Retrieval:
    """Recall@k of cross-modal retrieval among ``n`` items, both directions."""

    n: int
    image_to_text: dict[int, float]
    text_to_image: dict[int, float]

    def as_dict(self) -> dict[str, float]:
        out = {f"i2t_r@{k}": v for k, v in self.image_to_text.items()}
        out.update({f"t2i_r@{k}": v for k, v in self.text_to_image.items()})
        return out


def retrieval_metrics(image_z: np.ndarray, text_z: np.ndarray, ks: Sequence[int] = KS) -> Retrieval:
    """Recall@k when row i of ``image_z`` and of ``text_z`` are the one matching pair.

    Similarity is the dot product (cosine for unit rows). Ties count against the
    match: its rank is the number of *other* candidates scoring at least as high.
    """
    if image_z.shape[0] != text_z.shape[0] or image_z.shape[0] < 1:
        raise ValueError(f"need equally many paired rows, got {image_z.shape} and {text_z.shape}")
    sims = np.asarray(image_z, np.float64) @ np.asarray(text_z, np.float64).T
    n = sims.shape[0]
    diag = np.diag(sims)
    rank_i2t = (sims >= diag[:, None]).sum(axis=1) - 1
    rank_t2i = (sims >= diag[None, :]).sum(axis=0) - 1
    return Retrieval(
        n,
        {k: float((rank_i2t < k).mean()) for k in ks},
        {k: float((rank_t2i < k).mean()) for k in ks},
    )


def chance_retrieval(n: int, ks: Sequence[int] = KS) -> Retrieval:
    """Recall@k of a random ranking of ``n`` candidates: min(k, n) / n."""
    recall = {k: min(k, n) / n for k in ks}
    return Retrieval(n, recall, dict(recall))


def info_nce(
    image_z: torch.Tensor, text_z: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a batch of unit rows (pair i = row i of both)."""
    import torch
    import torch.nn.functional as F

    logits = logit_scale.exp() * image_z @ text_z.T
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _heads(image_dim: int, text_dim: int, config: AlignmentConfig) -> Any:
    """The trainable module: both heads, their input standardisation and the temperature."""
    import torch
    from torch import nn

    class Head(nn.Module):
        """Standardise (train statistics), project, L2-normalise."""

        def __init__(self, width: int) -> None:
            super().__init__()
            self.register_buffer("mean", torch.zeros(width))
            self.register_buffer("std", torch.ones(width))
            if config.hidden:
                self.net: nn.Module = nn.Sequential(
                    nn.Linear(width, config.hidden),
                    nn.GELU(),
                    nn.Dropout(config.dropout),
                    nn.Linear(config.hidden, config.dim),
                )
            else:
                self.net = nn.Linear(width, config.dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.normalize(self.net((x - self.mean) / self.std), dim=-1)

    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = Head(image_dim)
            self.text = Head(text_dim)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))

    return Heads()


def _standardise(head: Any, x: np.ndarray) -> None:
    """Set a head's input statistics from the training rows (constant columns keep std 1)."""
    import torch

    std = x.std(axis=0)
    head.mean.copy_(torch.from_numpy(x.mean(axis=0)))
    head.std.copy_(torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32)))


@dataclass
class AlignedSpace:
    """Trained heads mapping image and text features of given encoders into one space.

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
            for lo in range(0, len(vectors), 4096):
                out[lo : lo + 4096] = head(torch.from_numpy(vectors[lo : lo + 4096])).numpy()
        if mask is not None:
            out[~mask] = 0.0
        return out

    # --- files ------------------------------------------------------------------------

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
        path = Path(path)
        redo = "point to a folder written by `tastemaker pretrain align` (AlignedSpace.save)"
        meta = read_json(path / SPACE_FILE, redo)
        try:
            config = AlignmentConfig.model_validate(meta["config"])
            image_dim, text_dim = int(meta["image_dim"]), int(meta["text_dim"])
            ids = str(meta["image_encoder"]), str(meta["text_encoder"])
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            raise DataError(f"{path / SPACE_FILE} is invalid ({exc})", redo) from exc
        module = _heads(image_dim, text_dim, config)
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

    def markdown(self) -> str:
        """The held-out retrieval table of the space against its baselines."""
        lines = [
            f"Cross-modal retrieval on {self.n_test} held-out items "
            f"(image: `{self.image_encoder}`, text: `{self.text_encoder}`).",
            "",
        ]
        if not self.metrics:
            return "\n".join([*lines, "No test items (test_fraction = 0).", ""])
        header, rows = metric_table(self.metrics)
        lines += [markdown_row(header), "|---" * len(header) + "|"]
        lines += [markdown_row(row) for row in rows]
        return "\n".join(lines) + "\n"


def metric_table(metrics: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (method, then Recall@k each way) of a held-out retrieval table."""
    header = ["method", *(f"{d} R@{k}" for d in ("image→text", "text→image") for k in KS)]
    rows = [
        [
            BASELINES.get(name, name),
            *(f"{values[f'{d}_r@{k}']:.3f}" for d in DIRECTIONS for k in KS),
        ]
        for name, values in metrics.items()
    ]
    return header, rows


def markdown_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def training_plot(log: Sequence[dict[str, Any]], best_epoch: int | None) -> bytes:
    """Train/valid InfoNCE loss and valid Recall@1/@10 per epoch (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tastemaker.evaluation.html import png_bytes

    epochs = [row["epoch"] for row in log]
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(epochs, [row["loss"] for row in log], label="train")
    names = dict(zip(DIRECTIONS, ("image→text", "text→image"), strict=True))
    recall_keys = {f"{d}_r@{k}": f"{names[d]} R@{k}" for d in DIRECTIONS for k in KS}
    if log and log[0].get("valid_loss") is not None:
        loss_ax.plot(epochs, [row["valid_loss"] for row in log], label="valid")
        for key, label in recall_keys.items():
            recall_ax.plot(epochs, [row[key] for row in log], label=label)
    for ax in (loss_ax, recall_ax):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", label="kept")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    loss_ax.set(xlabel="epoch", ylabel="InfoNCE loss")
    recall_ax.set(xlabel="epoch", ylabel="valid recall")
    return png_bytes(fig)


def paired(image: ItemEmbeddings, text: ItemEmbeddings) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Items with both an image and a text vector: their IDs, image rows and text rows."""
    for features, modality in ((image, "image"), (text, "text")):
        if features.modality != modality:
            raise DataError(
                f"got {features.modality} features where {modality} features belong",
                "pass the image ItemEmbeddings first, then the text ones",
            )
    text_row = {item: row for row, item in enumerate(text.item_ids) if text.mask[row]}
    pairs = [
        (row, text_row[item])
        for row, item in enumerate(image.item_ids)
        if image.mask[row] and item in text_row
    ]
    image_rows = np.array([i for i, _ in pairs], dtype=np.int64)
    text_rows = np.array([t for _, t in pairs], dtype=np.int64)
    ids = [image.item_ids[i] for i in image_rows]
    return ids, image.vectors[image_rows], text.vectors[text_rows]


def split_items(n: int, config: AlignmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train / valid / test row indices of ``n`` pairs (each sorted)."""
    order = np.random.default_rng(config.seed).permutation(n)
    n_test, n_valid = round(config.test_fraction * n), round(config.valid_fraction * n)
    parts = order[n_test + n_valid :], order[n_test : n_test + n_valid], order[:n_test]
    return tuple(np.sort(part) for part in parts)  # type: ignore[return-value]


def train_alignment(
    image: ItemEmbeddings,
    text: ItemEmbeddings,
    config: AlignmentConfig | dict[str, Any] | None = None,
    *,
    progress: bool = True,
) -> AlignedSpace:
    """Train projection heads on the items that have both features; report test retrieval."""
    import torch

    if not isinstance(config, AlignmentConfig):
        config = validate(AlignmentConfig, config or {}, where="alignment")  # type: ignore[arg-type]
    ids, x_image, x_text = paired(image, text)
    train, valid, test = split_items(len(ids), config)
    if len(train) < 2 or len(valid) == 1 or len(test) == 1:
        raise DataError(
            f"only {len(ids)} items have both an image and a text vector ({len(train)} train, "
            f"{len(valid)} valid, {len(test)} test); each part in use needs at least 2",
            "give more items images (e.g. --posters FOLDER), or lower valid_fraction and "
            "test_fraction",
        )
    torch.manual_seed(config.seed)
    module = _heads(image.dim, text.dim, config)
    _standardise(module.image, x_image[train])
    _standardise(module.text, x_text[train])
    untrained = copy.deepcopy(module).eval()
    start = time.perf_counter()
    log, best_epoch = _fit(module, x_image, x_text, train, valid, config, progress)
    space = AlignedSpace(
        config,
        image.encoder_id,
        text.encoder_id,
        image.dim,
        text.dim,
        module.eval(),
        log,
        {
            name: [ids[i] for i in rows]
            for name, rows in zip(PARTS, (train, valid, test), strict=True)
        },
        best_epoch=best_epoch,
        train_seconds=time.perf_counter() - start,
    )
    if len(test):
        reference = dataclasses.replace(space, module=untrained)
        space.n_test = len(test)
        space.metrics = {
            name: result.as_dict()
            for name, result in {
                "aligned": _test_retrieval(space, x_image[test], x_text[test]),
                "ridge": ridge_retrieval(x_image, x_text, train, valid, test),
                "untrained": _test_retrieval(reference, x_image[test], x_text[test]),
                "chance": chance_retrieval(len(test)),
            }.items()
        }
    return space


def _test_retrieval(space: AlignedSpace, x_image: np.ndarray, x_text: np.ndarray) -> Retrieval:
    return retrieval_metrics(space.embed_image(x_image), space.embed_text(x_text))


def ridge_retrieval(
    x_image: np.ndarray,
    x_text: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
) -> Retrieval:
    """Test retrieval of a ridge map from standardised image features to text features.

    Predicted and actual text features are compared by cosine, both centred on the
    train texts' mean (so the shared direction of all texts does not dominate).
    The penalty is the one of :data:`RIDGE_PENALTIES` with the best mean valid
    Recall@10 (100 without valid items).
    """
    x = x_image.astype(np.float64)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 1e-6, std, 1.0)
    y = x_text.astype(np.float64) - x_text[train].mean(axis=0)
    gram, target = x[train].T @ x[train], x[train].T @ y[train]

    def retrieval(penalty: float, rows: np.ndarray) -> Retrieval:
        weights = np.linalg.solve(gram + penalty * np.eye(len(gram)), target)
        return retrieval_metrics(_unit(x[rows] @ weights), _unit(y[rows]))

    def valid_score(penalty: float) -> float:
        recall = retrieval(penalty, valid)
        return recall.image_to_text[KS[-1]] + recall.text_to_image[KS[-1]]

    penalty = max(RIDGE_PENALTIES, key=valid_score) if len(valid) >= 2 else 100.0
    return retrieval(penalty, test)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _fit(
    module: Any,
    x_image: np.ndarray,
    x_text: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    config: AlignmentConfig,
    progress: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The epoch loop: AdamW on shuffled batches; early stopping on the valid InfoNCE loss.

    The valid loss is computed over all valid pairs at once, so each valid item
    has every other as a negative. Returns the log and the epoch whose weights
    ``module`` holds at the end (the best one).
    """
    import torch
    from tqdm.auto import tqdm

    images, texts = torch.from_numpy(x_image), torch.from_numpy(x_text)
    rows = torch.from_numpy(train)
    heads = [p for name, p in module.named_parameters() if name != "logit_scale"]
    optimiser = torch.optim.AdamW(
        [
            {"params": heads, "weight_decay": config.weight_decay},
            {"params": [module.logit_scale], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )
    generator = torch.Generator().manual_seed(config.seed)
    log: list[dict[str, Any]] = []
    best_loss, best_state, best_epoch, stale = math.inf, None, config.epochs, 0
    bar = tqdm(range(1, config.epochs + 1), desc="align", unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        module.train()
        order = rows[torch.randperm(len(rows), generator=generator)]
        total, count = 0.0, 0
        for lo in range(0, len(order), config.batch_size):
            batch = order[lo : lo + config.batch_size]
            if len(batch) < 2:  # a lone pair has no negative
                continue
            loss = info_nce(
                module.image(images[batch]), module.text(texts[batch]), module.logit_scale
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                module.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)
            total += loss.item() * len(batch)
            count += len(batch)
        row: dict[str, Any] = {"epoch": epoch, "loss": total / count}
        if not math.isfinite(row["loss"]):
            raise ConfigError(
                f"alignment diverged at epoch {epoch} (loss {row['loss']})", "lower learning_rate"
            )
        row["temperature"] = math.exp(-module.logit_scale.item())
        if len(valid):
            module.eval()
            with torch.inference_mode():
                image_z, text_z = module.image(images[valid]), module.text(texts[valid])
                row["valid_loss"] = float(info_nce(image_z, text_z, module.logit_scale))
            row.update(retrieval_metrics(image_z.numpy(), text_z.numpy()).as_dict())
        row["seconds"] = time.perf_counter() - start
        log.append(row)
        bar.set_postfix(
            {k: f"{row[k]:.3f}" for k in ("loss", "valid_loss", "i2t_r@10") if k in row}
        )
        if not len(valid):
            continue
        if row["valid_loss"] < best_loss:
            best_loss, best_epoch, stale = row["valid_loss"], epoch, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        best_epoch = log[-1]["epoch"]
    logger.info(
        "alignment: %d epochs in %.1f s, kept epoch %d",
        len(log),
        sum(r["seconds"] for r in log),
        best_epoch,
    )
    return log, best_epoch
