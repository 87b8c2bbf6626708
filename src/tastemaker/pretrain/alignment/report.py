"""What an alignment run shows: the held-out retrieval table and the training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tastemaker.pretrain.alignment.retrieval import DIRECTIONS, KS
from tastemaker.reporting.markdown import format_cell, markdown_table
from tastemaker.reporting.plots import png_bytes, pyplot

METHODS = {
    "aligned": "aligned space (InfoNCE heads)",
    "ridge": "ridge map image → text features",
    "untrained": "untrained heads (random init)",
    "chance": "chance",
}
_DIRECTION_NAMES = dict(zip(DIRECTIONS, ("image→text", "text→image"), strict=True))
RECALL_COLUMNS = {f"{d}_r@{k}": f"{_DIRECTION_NAMES[d]} R@{k}" for d in DIRECTIONS for k in KS}


def metric_table(metrics: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (method, then Recall@k each way, 3 decimals) of a retrieval table.

    Cells are text, so the CLI's table and the Markdown file show the same; a
    recall a method lacks shows as "–".
    """
    header = ["method", *RECALL_COLUMNS.values()]
    rows = [
        [METHODS.get(name, name), *(format_cell(values.get(key), 3) for key in RECALL_COLUMNS)]
        for name, values in metrics.items()
    ]
    return header, rows


def retrieval_markdown(
    metrics: Mapping[str, Mapping[str, float]], n_test: int, image_encoder: str, text_encoder: str
) -> str:
    """The held-out retrieval table of a space against its baselines, with what it measures."""
    intro = (
        f"Cross-modal retrieval on {n_test} held-out items "
        f"(image: `{image_encoder}`, text: `{text_encoder}`).\n\n"
    )
    if not metrics:
        return intro + "No test items (test_fraction = 0).\n"
    return intro + markdown_table(*metric_table(metrics)) + "\n"


def training_plot(log: Sequence[Mapping[str, Any]], best_epoch: int | None) -> bytes:
    """Train/valid InfoNCE loss and valid Recall@1/@10 per epoch (PNG)."""
    plt = pyplot()
    epochs = [row["epoch"] for row in log]
    fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(epochs, [row["loss"] for row in log], label="train")
    if log and log[0].get("valid_loss") is not None:
        loss_ax.plot(epochs, [row["valid_loss"] for row in log], label="valid")
        for key, label in RECALL_COLUMNS.items():
            recall_ax.plot(epochs, [row[key] for row in log], label=label)
    for ax in (loss_ax, recall_ax):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", label="kept")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize="small")
    loss_ax.set(xlabel="epoch", ylabel="InfoNCE loss")
    recall_ax.set(xlabel="epoch", ylabel="valid recall")
    return png_bytes(fig)
