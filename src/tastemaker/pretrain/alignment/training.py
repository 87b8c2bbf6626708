"""Training an aligned space: pairs, the seeded item split, the epoch loop, the test report.

One ``torch.Generator`` seeded from the config draws the initial weights, the
dropout masks and the batch order, so two runs with one seed give the same space
and the global RNG is left as it was (callers' own seeding is never disturbed).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tastemaker.config import validate
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.pretrain.alignment.baselines import ridge_retrieval
from tastemaker.pretrain.alignment.config import AlignmentConfig
from tastemaker.pretrain.alignment.retrieval import (
    Retrieval,
    chance_retrieval,
    info_nce,
    retrieval_metrics,
)
from tastemaker.pretrain.alignment.space import AlignedSpace

if TYPE_CHECKING:
    import torch

    from tastemaker.pretrain.alignment.heads import AlignmentHeads

logger = logging.getLogger("tastemaker.pretrain")

MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips exp(t) at 100 to keep training stable
PARTS = ("train", "valid", "test")


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
    train, valid, test = order[n_test + n_valid :], order[n_test : n_test + n_valid], order[:n_test]
    return np.sort(train), np.sort(valid), np.sort(test)


def train_alignment(
    image: ItemEmbeddings,
    text: ItemEmbeddings,
    config: AlignmentConfig | dict[str, Any] | None = None,
    *,
    progress: bool = True,
) -> AlignedSpace:
    """Train projection heads on the items that have both features; report test retrieval."""
    import torch

    from tastemaker.pretrain.alignment.heads import AlignmentHeads

    if not isinstance(config, AlignmentConfig):
        config = validate(AlignmentConfig, config or {}, where="alignment")
    ids, x_image, x_text = paired(image, text)
    train, valid, test = split_items(len(ids), config)
    if len(train) < 2 or len(valid) == 1 or len(test) == 1:
        raise DataError(
            f"only {len(ids)} items have both an image and a text vector ({len(train)} train, "
            f"{len(valid)} valid, {len(test)} test); each part in use needs at least 2",
            "give more items images (e.g. --posters FOLDER), or lower valid_fraction and "
            "test_fraction",
        )
    generator = torch.Generator().manual_seed(config.seed)
    module = AlignmentHeads(image.dim, text.dim, config, generator)
    module.image.standardise(x_image[train])
    module.text.standardise(x_text[train])
    untrained = AlignmentHeads(image.dim, text.dim, config)
    untrained.load_state_dict(module.state_dict())
    start = time.perf_counter()
    log, best_epoch = _fit(module, generator, x_image, x_text, train, valid, config, progress)
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
        reference = dataclasses.replace(space, module=untrained.eval())
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


def _fit(
    module: AlignmentHeads,
    generator: torch.Generator,
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
