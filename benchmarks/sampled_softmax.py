"""Sampled softmax for SASRec / GRU4Rec: what it costs in accuracy, what it saves per step.

Run with ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampled_softmax.py`` (``--help``).

* ``accuracy``: on real data sets (leave-one-out by time; full ranking, train
  (+ valid at test) masked), each variant trains with the same seed and the same
  epoch budget, early-stopping on valid NDCG@10, and is scored once on test.
  Variants: ``full`` (softmax over every item, the default), ``popN`` (N shared
  negatives per batch drawn by popularity, logQ-corrected), ``uniN`` (uniform).
  The library default N is the variant with the best *validation* NDCG@10 of SASRec
  on ml-100k; test figures play no part in choosing.
* ``speed``: CPU seconds per training step at a large synthetic catalog (Zipf(0.9)
  item popularity over ``--catalog`` items), full vs sampled epochs alternating in
  one process, one torch thread.
* ``vbpr``: VBPR's epoch CPU seconds with the row-wise step against the dense
  autograd + Adam step it replaced, on a synthetic set with features.

Each part replaces only its own section of ``benchmarks/results/sampled_softmax.json``
(``--parts``), and the Markdown is rendered from the whole file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

import data_root
from tastemaker import Interactions
from tastemaker.atomic import write_text
from tastemaker.data.sources import load_dataset
from tastemaker.data.splits import leave_one_out
from tastemaker.data.vocab import Vocab
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.models import create_model
from tastemaker.reporting.markdown import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "sampled_softmax"
PARTS = ("accuracy", "speed", "vbpr")


def variant_params(variant: str) -> dict[str, Any]:
    """``full`` → {}; ``pop256`` / ``uni256`` → sampled softmax with 256 negatives."""
    if variant == "full":
        return {}
    kinds = {"pop": "popularity", "uni": "uniform"}
    if variant[:3] not in kinds or not variant[3:].isdigit():
        raise SystemExit(f"error: unknown variant '{variant}' (full, popN or uniN)")
    return {
        "loss_type": "sampled",
        "sampling": kinds[variant[:3]],
        "sampled_negatives": int(variant[3:]),
    }


def _meta() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}",
        "load average": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------ accuracy
def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    records: dict[str, Any] = {}
    for data_name in args.datasets.split(","):
        split = leave_one_out(load_dataset(str(args.data_root / data_name)))
        for model_name in args.models.split(","):
            for variant in args.variants.split(","):
                for seed in args.seeds:
                    params = {"epochs": args.epochs, "patience": args.patience, "seed": seed}
                    model = create_model(model_name, **params, **variant_params(variant))
                    cpu = time.process_time()
                    model.fit(split.train, split.valid)
                    cpu = time.process_time() - cpu
                    log = model.training_log or []
                    test = evaluate_split(
                        model, split, "test", ks=(10,), metrics=("ndcg", "recall")
                    )
                    record = {
                        "data": data_name,
                        "model": model_name,
                        "variant": variant,
                        "seed": seed,
                        "valid ndcg@10": max(row["ndcg@10"] for row in log),
                        "test ndcg@10": float(test["ndcg@10"]),
                        "test recall@10": float(test["recall@10"]),
                        "best epoch": model.best_epoch,  # type: ignore[attr-defined]
                        "epochs run": len(log),
                        "s / epoch": statistics.median(row["seconds"] for row in log),
                        "fit CPU-s": cpu,
                        **_meta(),
                    }
                    records[f"{data_name}/{model_name}/{variant}/{seed}"] = record
                    print(json.dumps(record), flush=True)
    return records


# --------------------------------------------------------------------- speed
def synthetic(n_users: int, n_items: int, per_user: int, seed: int) -> Interactions:
    """``per_user`` time-ordered interactions per user, items by Zipf(0.9) popularity, on
    a vocabulary of all ``n_items`` items (so the models score the whole catalog)."""
    rng = np.random.default_rng(seed)
    popularity = np.cumsum(np.arange(1, n_items + 1, dtype=np.float64) ** -0.9)
    items = rng.permutation(n_items)[
        np.searchsorted(popularity / popularity[-1], rng.random(n_users * per_user))
    ]
    frame = pl.DataFrame({
        "user_id": pl.Series(np.repeat(np.arange(n_users), per_user)).cast(pl.Utf8),
        "item_id": pl.Series(items).cast(pl.Utf8),
        "rating": np.ones(len(items), np.float32),
        "timestamp": np.tile(np.arange(per_user), n_users),
    })  # fmt: skip
    return Interactions(frame, items=Vocab(pl.Series(np.arange(n_items)).cast(pl.Utf8)))


def speed(args: argparse.Namespace) -> dict[str, Any]:
    train = synthetic(args.users, args.catalog, args.per_user, seed=0)
    out: dict[str, Any] = {
        "catalog": args.catalog,
        "users": args.users,
        "interactions per user": args.per_user,
        "rounds": args.rounds,
        "rows": {},
    }
    for model_name in args.models.split(","):
        models = {}
        for variant in ("full", args.sampled):
            models[variant] = create_model(model_name, epochs=1, seed=0, **variant_params(variant))
            models[variant].fit(train)  # builds the windows, the network, the optimiser
        steps = -(-len(models["full"]._inputs) // models["full"].config.batch_size)
        runs: dict[str, list[float]] = {variant: [] for variant in models}
        loads = []
        for _ in range(args.rounds):  # alternating: full, sampled, full, ...
            for variant, model in models.items():
                cpu = time.process_time()
                model._train_epoch()
                runs[variant].append((time.process_time() - cpu) / steps)
                loads.append(os.getloadavg()[0])
                print(model_name, variant, f"{runs[variant][-1]:.4f} CPU-s / step", flush=True)
        full, sampled = (statistics.median(runs[v]) for v in ("full", args.sampled))
        out["rows"][model_name] = {
            "steps per epoch": steps,
            "full CPU-s / step": full,
            f"{args.sampled} CPU-s / step": sampled,
            "runs": runs,
            "speed-up": full / sampled,
            "load average (1 min) during": [min(loads), max(loads)],
        }
    return {**out, "sampled variant": args.sampled, **_meta()}


# ---------------------------------------------------------------------- vbpr
def vbpr_epochs(args: argparse.Namespace) -> dict[str, Any]:
    """VBPR epochs, row-wise (the model's own step) against the dense step it replaced:
    autograd through the whole objective and Adam over every parameter."""
    from tastemaker.encoders.base import ItemEmbeddings
    from tastemaker.models.multimodal import ContentRecommender

    n_users, n_items, dim = args.vbpr_users, args.vbpr_items, 384
    train = synthetic(n_users, n_items, args.per_user, seed=1)
    vectors = np.random.default_rng(2).normal(size=(n_items, dim)).astype(np.float32)
    text = ItemEmbeddings(train.items.ids, vectors, np.ones(n_items, bool), "random", "text")
    models = {}
    for step in ("dense autograd + Adam (before)", "row-wise (now)"):
        model = create_model("vbpr", modalities=["text"], epochs=1, seed=0)
        models[step] = model.fit(train, features={"text": text})
    dense = models["dense autograd + Adam (before)"]
    dense._optimizer = torch.optim.Adam(dense._network().parameters(), lr=1e-3)
    epoch = {
        "dense autograd + Adam (before)": lambda: ContentRecommender._train_epoch(dense),
        "row-wise (now)": models["row-wise (now)"]._train_epoch,
    }
    runs: dict[str, list[float]] = {step: [] for step in epoch}
    for _ in range(args.rounds):
        for step, run in epoch.items():
            cpu = time.process_time()
            run()
            runs[step].append(time.process_time() - cpu)
            print("vbpr", step, f"{runs[step][-1]:.2f} CPU-s / epoch", flush=True)
    return {
        "users": n_users,
        "items": n_items,
        "interactions": len(train),
        "feature dim": dim,
        "rounds": args.rounds,
        "runs": runs,
        "CPU-s / epoch": {step: statistics.median(r) for step, r in runs.items()},
        **_meta(),
    }


# ---------------------------------------------------------------------- report
def _cost_lines(records: dict[str, Any]) -> list[str]:
    """Per data set and model: the sampled variant with the best validation NDCG@10 and
    its test cost against the full softmax (same seed)."""
    lines = []
    for data, model, seed in sorted({(r["data"], r["model"], r["seed"]) for r in records.values()}):
        runs = {r["variant"]: r for r in records.values()
                if (r["data"], r["model"], r["seed"]) == (data, model, seed)}  # fmt: skip
        sampled = [v for v in runs if v != "full"]
        if "full" not in runs or not sampled:
            continue
        best = max(sampled, key=lambda v: runs[v]["valid ndcg@10"])
        full, chosen = runs["full"], runs[best]
        lines.append(
            f"- {data}, {model} (seed {seed}): chosen on validation: `{best}`; test NDCG@10 "
            f"{full['test ndcg@10']:.4f} (full) vs {chosen['test ndcg@10']:.4f} "
            f"({chosen['test ndcg@10'] / full['test ndcg@10'] - 1:+.1%}), Recall@10 "
            f"{full['test recall@10']:.4f} vs {chosen['test recall@10']:.4f} "
            f"({chosen['test recall@10'] / full['test recall@10'] - 1:+.1%})."
        )
    return [*lines, ""] if lines else []


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Sampled softmax for SASRec / GRU4Rec",
        "",
        "Produced by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampled_softmax.py`"
        " (see its docstring); one torch thread. `full`: softmax over every item (the"
        ' default `loss_type = "ce"`); `popN`: `loss_type = "sampled"` with N shared'
        " negatives a batch drawn by popularity, logQ-corrected (Yi et al., RecSys 2019);"
        " `uniN`: drawn uniformly.",
        "",
    ]
    records = results.get("accuracy")
    if records:
        lines += [
            "## Accuracy cost",
            "",
            "Leave-one-out by time, full ranking with known items masked; each run early-"
            "stops on valid NDCG@10 within the same epoch budget and seed; test scored once. "
            "CPU-s / epoch: the fit's CPU seconds (validation included) over its epochs.",
            "",
        ]
        header = ["data", "model", "variant", "seed", "valid NDCG@10", "test NDCG@10",
                  "test Recall@10", "best / run epochs", "CPU-s / epoch", "load avg"]  # fmt: skip
        rows = [
            [r["data"], r["model"], r["variant"], r["seed"], f"{r['valid ndcg@10']:.4f}",
             f"{r['test ndcg@10']:.4f}", f"{r['test recall@10']:.4f}",
             f"{r['best epoch']} / {r['epochs run']}", f"{r['fit CPU-s'] / r['epochs run']:.1f}",
             f"{r['load average'][0]:.1f}"]
            for r in records.values()
        ]  # fmt: skip
        lines += [markdown_table(header, rows), "", *_cost_lines(records)]
    spd = results.get("speed")
    if spd:
        lines += [
            "## Step cost at a large catalog",
            "",
            f"Synthetic: {spd['catalog']:,} items (Zipf 0.9), {spd['users']} users x "
            f"{spd['interactions per user']} interactions; default model settings; median "
            f"CPU-s per step over {spd['rounds']} alternating epochs ({spd['date']}). The "
            "sampled step still gives the whole item table a (dense) gradient and an Adam "
            "update, O(items x dim) a step; its share is not measured here.",
            "",
        ]
        sampled = spd["sampled variant"]
        header = ["model", "steps / epoch", "full CPU-s / step", f"{sampled} CPU-s / step",
                  "speed-up", "runs full / sampled", "load avg (1 min)"]  # fmt: skip
        rows = [
            [name, r["steps per epoch"], f"{r['full CPU-s / step']:.3f}",
             f"{r[sampled + ' CPU-s / step']:.3f}", f"{r['speed-up']:.1f}x",
             " / ".join(", ".join(f"{x:.2f}" for x in r["runs"][v]) for v in ("full", sampled)),
             "{:.1f}-{:.1f}".format(*r["load average (1 min) during"])]
            for name, r in spd["rows"].items()
        ]  # fmt: skip
        lines += [markdown_table(header, rows), ""]
    vbpr = results.get("vbpr")
    if vbpr:
        lines += [
            "## VBPR epoch: row-wise step vs dense Adam",
            "",
            f"Synthetic: {vbpr['users']:,} users, {vbpr['items']:,} items, "
            f"{vbpr['interactions']:,} interactions, a {vbpr['feature dim']}-dim text "
            f"feature; median CPU-s per epoch over {vbpr['rounds']} alternating epochs "
            f"({vbpr['date']}, load average {vbpr['load average'][0]:.1f}).",
            "",
            markdown_table(
                ["step", "CPU-s / epoch"],
                [[k, f"{v:.2f}"] for k, v in vbpr["CPU-s / epoch"].items()],
            ),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data_root.add_argument(parser)
    parser.add_argument("--parts", default="accuracy,speed", help=f"of {','.join(PARTS)}")
    parser.add_argument("--datasets", default="ml-100k")
    parser.add_argument("--models", default="sasrec,gru4rec")
    parser.add_argument("--variants", default="full,pop64,pop256,pop1024,uni256")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--catalog", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=320)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sampled", default="pop1024", help="the sampled variant timed")
    parser.add_argument("--vbpr-users", type=int, default=20_000)
    parser.add_argument("--vbpr-items", type=int, default=10_000)
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        raise SystemExit(f"error: unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    torch.set_num_threads(1)
    path = RESULTS / f"{NAME}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if not args.render:
        if "accuracy" in parts:
            args.data_root = data_root.data_root(args.data_root, *args.datasets.split(","))
            results["accuracy"] = {**results.get("accuracy", {}), **accuracy(args)}
        if "speed" in parts:
            results["speed"] = speed(args)
        if "vbpr" in parts:
            results["vbpr"] = vbpr_epochs(args)
        write_text(path, json.dumps(results, indent=2) + "\n")
    markdown = report(results)
    write_text(RESULTS / f"{NAME}.md", markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
