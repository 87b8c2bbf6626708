"""UniSRec transfer: pretrain on ml-latest-small, fine-tune on ml-100k, against baselines.

Run with ``.venv/bin/python benchmarks/unisrec_transfer.py`` (``--help`` for the caps).
Item text is "title. Genres: genres" on both data sets (ml-100k: "title (year). Genres:
class", so both read alike), embedded by all-MiniLM-L6-v2 through the shared
:class:`EmbeddingStore`. Both data sets are split leave-one-out by time.

1. UniSRec is pretrained on ml-latest-small (sequence-item + sequence-sequence
   contrastive losses), keeping the epoch with the best validation NDCG@10 there.
2. On ml-100k, each model trains on train, early-stops on valid NDCG@10 and is scored
   once on test (full ranking, train + valid masked): MostPopular, SASRec (item IDs),
   mm_sasrec (text + IDs), unisrec from scratch, and unisrec fine-tuned from the
   checkpoint (adaptor only with the Transformer frozen: the paper's inductive
   setting; and full fine-tuning).

Writes ``benchmarks/results/unisrec_transfer.{md,json,png}``. Every model runs with one
torch thread; epochs are capped so the whole run stays near 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

import data_root
from tastemaker.atomic import write_bytes, write_text
from tastemaker.data.dataset import Split
from tastemaker.data.sources import load_dataset
from tastemaker.data.sources.registry import default_cache_dir
from tastemaker.data.splits import leave_one_out
from tastemaker.encoders import EmbeddingStore, TextEncoder, encode_catalog
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.models import MostPopular, create_model
from tastemaker.pretrain.unisrec import pretrain_unisrec

RESULTS = Path(__file__).resolve().parent / "results"
TEMPLATES = {
    "ml-latest-small": "{title}. Genres: {genres}",
    "ml-100k": "{title} ({release_year}). Genres: {class}",
}
# SASRec's defaults (RecBole's) for every sequential model; 40 windows a batch is
# the vs_recbole setting on ml-100k.
SHARED = {"batch_size": 40, "learning_rate": 1e-3, "max_len": 50, "hidden_size": 64}
MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("SASRec (item IDs)", "sasrec", {}),
    ("mm_sasrec (text + IDs)", "mm_sasrec", {"modalities": ["text"]}),
    ("unisrec from scratch (text)", "unisrec", {}),
    ("unisrec pretrained, adaptor fine-tuned", "unisrec", {"finetune": "adaptor"}),
    ("unisrec pretrained, fully fine-tuned", "unisrec", {"finetune": "full"}),
]
KS = (10,)


def text_features(root: Path, name: str, store: EmbeddingStore) -> tuple[Split, ItemEmbeddings]:
    """The leave-one-out split of a real data set and its items' text vectors."""
    dataset = load_dataset(str(root / name))
    encoder = TextEncoder(template=TEMPLATES[name])
    return leave_one_out(dataset), encode_catalog(dataset.catalog, encoder, store, progress=False)


def scores(model: Any, split: Split) -> dict[str, float]:
    test = evaluate_split(model, split, "test", ks=KS, metrics=("ndcg", "recall"))
    return {k: float(v) for k, v in test.items() if "@" in k}


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    began = time.perf_counter()
    store = EmbeddingStore(args.store)
    source, source_text = text_features(args.data_root, "ml-latest-small", store)
    target, target_text = text_features(args.data_root, "ml-100k", store)
    caps = {"patience": args.patience, "seed": args.seed}
    records: list[dict[str, Any]] = []

    start = time.perf_counter()
    checkpoint = pretrain_unisrec(
        source, source_text, **SHARED, **caps, epochs=args.pretrain_epochs
    )
    pretrain_seconds = time.perf_counter() - start
    best = max(row["ndcg@10"] for row in checkpoint.training_log)
    pretraining = {
        "epochs run": len(checkpoint.training_log),
        "best epoch": checkpoint.best_epoch,
        "best valid NDCG@10 (ml-latest-small)": best,
        "seconds": pretrain_seconds,
        "s / epoch": statistics.median(row["seconds"] for row in checkpoint.training_log),
    }
    print(f"pretrained: {pretraining}", flush=True)

    popular = MostPopular().fit(target.train)
    records.append(
        {"model": "MostPopular", "name": "most_popular", "params": {}, **scores(popular, target)}
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = checkpoint.save(Path(scratch) / "unisrec-ml-latest-small")
        for label, name, params in MODELS:
            params = {**SHARED, **caps, "epochs": args.epochs, **params}
            if "finetune" in params:
                params["pretrained"] = str(folder)
            model = create_model(name, **params)
            start = time.perf_counter()
            model.fit(target.train, target.valid, features={"text": target_text})
            seconds = time.perf_counter() - start
            log = model.training_log or []
            record = {
                "model": label,
                "name": name,
                "params": {k: v for k, v in params.items() if k != "pretrained"},
                **scores(model, target),
                "best valid NDCG@10": max(row["ndcg@10"] for row in log),
                "epochs run": len(log),
                "best epoch": model.best_epoch,  # type: ignore[attr-defined]
                "train seconds": seconds,
                "s / epoch": statistics.median(row["seconds"] for row in log),
            }
            records.append(record)
            print(json.dumps(record), flush=True)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}",
        "load average": os.getloadavg(),
        "settings": {
            "shared": SHARED,
            "epochs cap": args.epochs,
            "pretrain epochs cap": args.pretrain_epochs,
            "patience": args.patience,
            "seed": args.seed,
            "templates": TEMPLATES,
            "text encoder": target_text.encoder_id,
            "checkpoint": checkpoint.config.model_dump(mode="json") | checkpoint.pretraining,
        },
        "pretraining": pretraining,
        "results": records,
        "total seconds": time.perf_counter() - began,
    }


def markdown(result: dict[str, Any], command: str) -> str:
    settings = result["settings"]
    pre = result["pretraining"]
    lines = [
        "# UniSRec transfer: pretrain on ml-latest-small, fine-tune on ml-100k",
        "",
        f"{result['date']}, `{command}`; {result['machine']}; "
        f"load average {', '.join(f'{v:.1f}' for v in result['load average'])}.",
        "",
        "Protocol: leave-one-out by time on both data sets; full ranking over all items with "
        "train (+ valid at test) masked; early stopping on valid NDCG@10 "
        f"(patience {settings['patience']}, at most {settings['epochs cap']} epochs; pretraining "
        f"at most {settings['pretrain epochs cap']}); test scored once. Item text "
        f"(`{settings['text encoder']}`): ml-latest-small `{TEMPLATES['ml-latest-small']}`, "
        f"ml-100k `{TEMPLATES['ml-100k']}`. Shared settings: `{json.dumps(settings['shared'])}`, "
        "other hyper-parameters at each model's defaults (SASRec: 2 layers, 2 heads, "
        "dropout 0.5; unisrec: 8 experts, temperature 0.07; mm_sasrec: linear projection, "
        "ID dropout 0.3). One torch thread.",
        "",
        f"Pretraining on ml-latest-small: {pre['epochs run']} epochs in {pre['seconds']:.0f} s "
        f"({pre['s / epoch']:.1f} s / epoch), best validation NDCG@10 "
        f"{pre['best valid NDCG@10 (ml-latest-small)']:.4f} at epoch {pre['best epoch']} (kept). "
        f"Whole run: {result['total seconds'] / 60:.1f} min.",
        "",
        "| model on ml-100k | test NDCG@10 | test Recall@10 | best valid NDCG@10 "
        "| epochs (best) | s / epoch | train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["results"]:
        if row["name"] == "most_popular":
            lines.append(
                f"| {row['model']} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | | | | |"
            )
            continue
        lines.append(
            f"| {row['model']} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | "
            f"{row['best valid NDCG@10']:.4f} | {row['epochs run']} ({row['best epoch']}) | "
            f"{row['s / epoch']:.1f} | {row['train seconds']:.0f} |"
        )
    ndcg = {row["model"]: row["ndcg@10"] for row in result["results"]}
    scratch, adaptor = ndcg[MODELS[2][0]], ndcg[MODELS[3][0]]
    lines += [
        "",
        f"Transfer: pretrained + adaptor fine-tuning vs unisrec from scratch, test NDCG@10 "
        f"{adaptor:.4f} vs {scratch:.4f} ({adaptor / scratch - 1:+.1%}); full fine-tuning "
        f"{ndcg[MODELS[4][0]]:.4f}; the ID model SASRec {ndcg[MODELS[0][0]]:.4f}. One seed: "
        "differences of a few percent are within run-to-run noise.",
    ]
    return "\n".join(lines) + "\n"


def chart(result: dict[str, Any]) -> bytes:
    """Test NDCG@10 and Recall@10 per model (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tastemaker.evaluation.html import png_bytes

    rows = result["results"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    labels = [row["model"] for row in rows]
    for ax, metric in zip(axes, ("ndcg@10", "recall@10"), strict=True):
        ax.barh(labels, [row[metric] for row in rows], color="tab:blue")
        ax.set_xlabel(f"test {metric} (ml-100k)")
        ax.invert_yaxis()
    fig.tight_layout()
    return png_bytes(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="cap per model on ml-100k")
    parser.add_argument("--pretrain-epochs", type=int, default=15, help="cap of pretraining")
    parser.add_argument(
        "--patience", type=int, default=5, help="evaluations without a better valid NDCG@10"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--store",
        type=Path,
        default=default_cache_dir().parent / "embeddings",
        help="embedding store folder",
    )
    data_root.add_argument(parser)
    args = parser.parse_args()
    args.data_root = data_root.data_root(args.data_root, "ml-100k", "ml-latest-small")
    flags = [word for k, v in vars(args).items() for word in (f"--{k.replace('_', '-')}", str(v))]
    command = data_root.command_line(
        ["python", "benchmarks/unisrec_transfer.py", *flags], args.data_root
    )
    result = run(args)
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "unisrec_transfer.json", json.dumps(result, indent=2) + "\n")
    write_text(RESULTS / "unisrec_transfer.md", markdown(result, command))
    write_bytes(RESULTS / "unisrec_transfer.png", chart(result))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
