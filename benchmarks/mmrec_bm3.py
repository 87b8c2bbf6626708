"""MMRec's own BM3 on the multimodal benchmark's split and text features: the peer of
tastemaker's ``bm3-text`` row in ``results/multimodal.md``.

Run with::

    TASTEMAKER_DATA=/path/to/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmrec_bm3.py \\
        --mmrec PATH/TO/MMRec [--config configs/multimodal-ml-latest-small.toml]

``PATH/TO/MMRec`` is a checkout of github.com/enoche/MMRec (the authors' framework, not
vendored here). The split and the text features are those ``multimodal.py`` makes from
the config (same seed, same embedding store). They are written in MMRec's layout into a
scratch folder (``<name>.inter``: userID, itemID, x_label 0/1/2 in tastemaker's index
order; ``text_feat.npy`` in item order; no image file, so BM3 reads text only), and
MMRec's BM3 is trained by MMRec's own trainer with the settings of tastemaker's
``BM3Config`` (the first values of the authors' grid: 1 layer, dropout 0.3, reg 0.1;
cl_weight 2, 64 dims, lr 1e-3, batch 2048, patience 20 on valid Recall@20) and
MMRec's default seed 999. MMRec needs scipy<1.12 (``dok_matrix._update``), so it runs in
``.venv-recbole`` (``vs_recbole.py`` makes it); it imports lmdb, torchvision and
matplotlib only to read raw images and plot, which BM3 never does, so the worker puts
empty stand-ins for them in ``sys.modules``, and its metrics use ``np.float``, which the
worker restores as ``float``.

MMRec's protocol: every item is ranked, the user's training items masked (at test time
too: valid items are not masked). The result, ``results/multimodal.mmrec.json``
(per-epoch valid and test Recall@20 / NDCG@20, the best epoch's, seconds), is read by
``multimodal.py`` into its page.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "multimodal.mmrec.json"
CURVES = "multimodal.curves.png"  # written by multimodal.py beside its page
NAME = "tastemaker-split"
SETTINGS = {
    "n_layers": 1, "dropout": 0.3, "reg_weight": 0.1, "cl_weight": 2.0, "embedding_size": 64,
    "feat_embed_dim": 64, "learning_rate": 1e-3, "train_batch_size": 2048,
    "stopping_step": 20, "epochs": 1000, "valid_metric": "Recall@20", "seed": 999,
}  # fmt: skip


def export(config: Path, folder: Path) -> dict[str, Any]:
    """The config's split and text features in MMRec's layout under ``folder/NAME``."""
    import numpy as np
    import polars as pl

    import multimodal
    from tastemaker import experiment

    exp = multimodal.load_experiment(config)
    split = experiment.prepare(exp.data, exp.split)
    text = experiment.item_features(split.catalog, ["text"], exp.features)["text"]
    aligned = text.align(split.items)
    target = folder / NAME
    target.mkdir(parents=True)
    parts = []
    for label, part in enumerate((split.train, split.valid, split.test)):
        users, items = part.indices()
        parts.append(pl.DataFrame({"userID": users, "itemID": items, "x_label": label}))
    pl.concat(parts).write_csv(target / f"{NAME}.inter", separator="\t")
    np.save(target / "text_feat.npy", aligned.vectors.astype(np.float32))
    return {
        "split_hash": split.content_hash,
        "text_encoder": aligned.encoder_id,
        "items": len(split.items),
        "items_without_text": int((~aligned.mask).sum()),
    }


def worker(mmrec: Path, data: Path, out: Path) -> None:
    """Fit MMRec's BM3 through its own trainer; write the per-epoch record to ``out``."""
    for name in ("lmdb", "torchvision", "torchvision.transforms", "matplotlib"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["matplotlib.pyplot"] = types.ModuleType("matplotlib.pyplot")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.pad = functional.resize = None  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms.functional"] = functional
    sys.path.insert(0, str(mmrec / "src"))
    import numpy as np
    import torch

    np.float = float  # type: ignore[attr-defined]  # MMRec's metrics use the alias numpy 1.24 removed
    from utils.configurator import Config  # MMRec's modules
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(1)
    overrides = {
        **SETTINGS, "use_gpu": False, "data_path": f"{data}/", "inter_file_name": f"{NAME}.inter",
        "text_feature_file": "text_feat.npy", "vision_feature_file": "absent.npy",
        "hyper_parameters": ["seed"], "topk": [20], "metrics": ["Recall", "NDCG"],
        "USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "inter_splitting_label": "x_label",
        "field_separator": "\t", "filter_out_cod_start_users": True,
    }  # fmt: skip
    scratch = Path.cwd()
    os.chdir(mmrec / "src")  # MMRec reads its configs/*.yaml from the working folder
    config = Config("BM3", NAME, overrides)
    os.chdir(scratch)  # and writes its log there
    config["seed"] = SETTINGS["seed"]
    init_logger(config)
    train, valid, test = RecDataset(config).split()
    for part in (train, valid, test):
        str(part)  # MMRec's __str__ sets the counts its loaders read (inter_num)
    train_data = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
    size = config["eval_batch_size"]
    valid_data = EvalDataLoader(config, valid, additional_dataset=train, batch_size=size)
    test_data = EvalDataLoader(config, test, additional_dataset=train, batch_size=size)
    init_seed(config["seed"])
    train_data.pretrain_setup()
    model = get_model("BM3")(config, train_data).to(config["device"])
    trainer = get_trainer()(config, model, False)
    results: list[dict[str, float]] = []
    evaluate = trainer._valid_epoch

    def recorded(data: Any) -> Any:  # fit evaluates valid, then test, every epoch
        score, result = evaluate(data)
        results.append({k: float(v) for k, v in result.items()})
        return score, result

    trainer._valid_epoch = recorded
    start = time.process_time()
    _, best_valid, best_test = trainer.fit(train_data, valid_data, test_data, saved=False)
    cpu = time.process_time() - start
    epochs = [
        {"epoch": n + 1, "valid": v, "test": t}
        for n, (v, t) in enumerate(zip(results[::2], results[1::2], strict=True))
    ]
    valid_recall = [e["valid"]["recall@20"] for e in epochs]
    best = valid_recall.index(max(valid_recall)) + 1  # MMRec keeps the first best
    record = {
        "epochs": epochs,
        "best_epoch": best,
        "best_valid": {k: float(v) for k, v in best_valid.items()},
        "test_at_best": {k: float(v) for k, v in best_test.items()},
        "cpu_seconds": cpu,
        "torch": torch.__version__,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")


def _bm3_logs(records: list[dict[str, Any]]) -> tuple[str | None, dict[str, list]]:
    """The validation metric and logs of the BM3 runs that kept one (first run's metric)."""
    runs = [r for r in records if r["model"] == "bm3" and r.get("log")]
    metric = runs[0]["early_stopping_metric"] if runs else None
    return metric, {r["run"]: r["log"] for r in runs if r["early_stopping_metric"] == metric}


def _peer_log(peer: dict[str, Any] | None, metric: str) -> list[dict[str, Any]] | None:
    """MMRec's per-epoch validation ``metric`` in the training-log layout, if it has it."""
    if peer is None or metric not in peer["epochs"][0]["valid"]:
        return None
    return [{"epoch": e["epoch"], metric: e["valid"][metric]} for e in peer["epochs"]]


def bm3_curves(records: list[dict[str, Any]], peer: dict[str, Any] | None) -> bytes | None:
    """Validation curves of tastemaker's BM3 runs and MMRec's BM3 (loss: tastemaker's)."""
    metric, logs = _bm3_logs(records)
    if metric is None:
        return None
    theirs = _peer_log(peer, metric)
    if theirs is not None:
        logs["MMRec BM3 (authors' code)"] = theirs
    from tastemaker.evaluation.html import training_chart

    return training_chart(logs, metric)


def bm3_section(
    records: list[dict[str, Any]], peer: dict[str, Any] | None, split_hash: str, curves: bool
) -> list[str]:
    """The comparison with the authors' BM3 on the same split, when either side ran."""
    metric, logs = _bm3_logs(records)
    if metric is None and peer is None:
        return []
    lines = ["## BM3 and the authors' code (MMRec)", ""]
    shown = metric or "recall@20"
    header = (
        f"| run | best valid {shown} (epoch) | last valid | epochs | test recall@20 "
        "| test ndcg@20 |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|"]
    for r in records:
        if r["run"] in logs:
            values = [row[metric] for row in r["log"] if row.get(metric) is not None]
            best = max(values)
            epoch = next(row["epoch"] for row in r["log"] if row.get(metric) == best)
            test = r["test_all_items_train_masked"]
            rows.append(
                f"| tastemaker {r['run']} | {best:.4f} ({epoch}) | {values[-1]:.4f} | "
                f"{len(r['log'])} | "
                f"{test['recall@20']:.4f} | {test['ndcg@20']:.4f} |"
            )
    if peer is not None:
        best = peer["best_valid"].get(shown, float("nan"))
        last = peer["epochs"][-1]["valid"].get(shown, float("nan"))
        rows.append(
            f"| MMRec BM3 (text) | {best:.4f} ({peer['best_epoch']}) | {last:.4f} | "
            f"{len(peer['epochs'])} | {peer['test_at_best']['recall@20']:.4f} | "
            f"{peer['test_at_best']['ndcg@20']:.4f} |"
        )
    lines += [
        "Both on the split above, every item ranked and only the user's training items "
        "masked (MMRec's protocol, valid items are not masked at test time), so cold items "
        "compete with warm ones; test metrics of the best validation epoch. tastemaker's "
        "runs here early-stop on the metric in the header (`--set`).",
        "",
        *rows,
        "",
    ]
    if peer is not None:
        same = "the same split" if peer["split_hash"] == split_hash else "**another split**"
        lines += [
            f"MMRec: commit `{(peer['mmrec_commit'] or 'unknown')[:12]}`, {same} (hash "
            f"`{peer['split_hash'][:12]}`), text features `{peer['text_encoder']}`, settings "
            f"`{json.dumps(peer['settings'])}`; {peer['cpu_seconds']:.0f} CPU-s, {peer['date']}, "
            "written by `benchmarks/mmrec_bm3.py`.",
            "",
        ]
    if curves:
        lines += [f"![BM3 validation curves]({CURVES})", ""]
    return lines


def mmrec_commit(mmrec: Path) -> str | None:
    """The checkout's commit, when it is a git folder."""
    done = subprocess.run(
        ["git", "-C", str(mmrec), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmrec", type=Path, required=True, help="a checkout of MMRec")
    parser.add_argument(
        "--config", type=Path, default=Path("configs/multimodal-ml-latest-small.toml")
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the data folder
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    mmrec = args.mmrec.resolve()
    if not (mmrec / "src" / "models" / "bm3.py").is_file():
        raise SystemExit(f"{mmrec} is no MMRec checkout (no src/models/bm3.py): pass --mmrec DIR")
    if args.worker is not None:
        worker(mmrec, args.worker, args.out)
        return
    from tastemaker.atomic import write_text
    from vs_recbole import recbole_python

    started = datetime.now(UTC).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mmrec-") as scratch:
        folder = Path(scratch)
        exported = export(args.config, folder)
        out = folder / "record.json"
        python = str(recbole_python())
        command = [python, __file__, "--mmrec", str(mmrec), "--worker", str(folder)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        subprocess.run([*command, "--out", str(out)], cwd=folder, env=env, check=True)
        record = json.loads(out.read_text())
    result = {
        "date": started,
        "config": str(args.config),
        "mmrec_commit": mmrec_commit(mmrec),
        "settings": SETTINGS,
        "protocol": "all items ranked, the user's training items masked (valid and test)",
        "load_average_1min": [load, os.getloadavg()[0]],
        **exported,
        **record,
    }
    write_text(RESULT, json.dumps(result, indent=2) + "\n")
    best = result["test_at_best"]
    print(
        f"MMRec BM3: best epoch {result['best_epoch']}, test recall@20 {best['recall@20']:.4f}, "
        f"ndcg@20 {best['ndcg@20']:.4f} ({result['cpu_seconds']:.0f} CPU-s)"
    )


if __name__ == "__main__":
    main()
