"""tastemaker vs RecBole 1.2.1 on ml-100k and ml-latest-small: accuracy, seconds per
epoch, time to quality, evaluation seconds and peak memory of BPR, LightGCN and SASRec.

Run with ``.venv/bin/python benchmarks/vs_recbole.py [--quick] [--models bpr,lightgcn,sasrec]
[--datasets ml-100k,ml-latest-small]`` (or ``make bench-recbole``). Nothing is installed
into ``.venv``: RecBole lives in ``.venv-recbole``, created on first use from pins this
script writes (torch 2.13 needs setuptools>=77, so ``setuptools<81`` keeps the
``pkg_resources`` that Ray's import needs; numpy<2, pandas<2.2 and scipy<1.12 are
RecBole 1.2.1's limits).

Both toolkits read the *same* split: ``recbole_split.py`` makes it with tastemaker
(random 8:1:1 per user, seeded, for BPR and LightGCN; leave-one-out by time for SASRec)
and writes it as a tastemaker Split and as RecBole's pre-split atomic files
(``benchmark_filename``). Each run is a subprocess (``recbole_worker.py`` in
``.venv-recbole``, ``tastemaker_worker.py`` in this interpreter) with the same
hyper-parameters, alternating RecBole, tastemaker, RecBole, ... so the load of the
machine falls on both alike; full ranking, early stopping on validation NDCG@10.

SASRec is reported under both ranking protocols: the user's train and valid items
excluded from the candidates (tastemaker's default and the protocol of the general
models) and not excluded (RecBole's default for sequential models), each at an equal
number of epochs (``--sasrec-epochs``: the weights after that epoch, no selection) and
to convergence (best validation epoch, patience 10, within ``--sasrec-budget``). Each
toolkit validates (and early-stops) under its own default protocol.

``--quick`` (one repeat; SASRec compared after 1 epoch and given 600 s, so RecBole's
SASRec, at 3-5 CPU-min an epoch, stops after its first) fits in about 30-40 minutes of
two busy cores; the default is 3 repeats, 10 SASRec epochs and 1 h per SASRec run.

Workers run with one torch thread by default (``--threads``): on this shared
2-core machine, two threads made the small per-batch operations of both toolkits
3-10x slower and erratic (RecBole's BPR epoch 0.14 s with one thread, 0.5-2 s
with two), which would measure the neighbours' load rather than the toolkits.
Seconds are wall-clock and CPU seconds of the worker process (``time.process_time``).

The workers use :func:`worker_main` from here, so this module imports only the
standard library (it runs in both virtual environments).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import data_root

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
RESULTS = HERE / "results"
VENV = ROOT / ".venv-recbole"
SCRATCH = HERE / ".scratch"
METRIC = "ndcg@10"
MODELS = ("bpr", "lightgcn", "sasrec")
SEED = 2020  # RecBole's default; repeat r uses SEED + r in both toolkits
RECBOLE_PINS = """\
recbole==1.2.1
torch==2.13.0
numpy<2
pandas<2.2
scipy<1.12
setuptools<81
"""
# What both toolkits get (RecBole's defaults for these models), plus each toolkit's own
# settings where a name or a meaning differs.
SHARED = {"dim": 64, "batch_size": 2048, "learning_rate": 1e-3, "patience": 10}
OWN: dict[str, dict[str, dict[str, Any]]] = {
    # RecBole's BPR has no L2 term (tastemaker's has one by default), and tastemaker's BPR
    # trains with row-wise Adagrad, for which RecBole's Adam learning rate is far too
    # small: it keeps its own default 0.1.
    "bpr": {"tastemaker": {"reg": 0.0, "learning_rate": 0.1}},
    # tastemaker's LightGCN defaults are RecBole's (2 layers, reg 1e-5).
    "lightgcn": {},
    # RecBole trains SASRec on one prefix per sample (2048 targets a batch); tastemaker
    # on windows of up to max_len=50 targets, so 40 windows ≈ the same targets per step.
    "sasrec": {"tastemaker": {"batch_size": 40}},
}
ACCURACY_TOLERANCE = 0.03
SPEED_TARGET = 0.5  # tastemaker's seconds at most half of RecBole's
EPOCH_TARGET_MODELS = ("bpr", "lightgcn")


# ----------------------------------------------------------------- worker side
def worker_main(run: Callable[..., dict[str, Any]], doc: str, argv: list[str] | None) -> None:
    """The command line both workers share: run one model, write its record as JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--data", type=Path, required=True, help="folder of <name>.inter")
    parser.add_argument("--params", required=True, help="the hyper-parameters (JSON)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--time-budget", type=float, default=float("inf"), help="seconds")
    parser.add_argument("--eval-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    record = run(args.model, args.data.resolve(), params, args.time_budget, args.eval_repeats)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


def outcome(
    epochs: list[dict[str, Any]],
    stopped_by_budget: bool,
    fit_seconds: float,
    test: Callable[[], dict[str, float]],
    eval_repeats: int,
) -> dict[str, Any]:
    """The record fields both workers measure the same way: the training log, the
    test metrics, the median of ``eval_repeats`` timed test evaluations, peak RSS."""
    import resource
    import time

    metrics = test()
    eval_seconds = []
    for _ in range(eval_repeats):
        begin = time.perf_counter()
        test()
        eval_seconds.append(time.perf_counter() - begin)
    return {
        "epochs": epochs,
        "stopped_by_budget": stopped_by_budget,
        "fit_seconds": fit_seconds,
        "best_valid": max(e[METRIC] for e in epochs if e[METRIC] is not None),
        "test": {k: float(metrics[k]) for k in ("ndcg@10", "recall@10")},
        "eval_seconds": statistics.median(eval_seconds),
        "eval_seconds_all": eval_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------- driver side
def recbole_python() -> Path:
    """``.venv-recbole``'s interpreter, creating and filling the environment if needed."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import recbole; assert recbole.__version__ == '1.2.1'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {VENV} with RecBole 1.2.1 (a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pins = VENV / "recbole-constraints.txt"
    pins.write_text(RECBOLE_PINS)
    requirements = RECBOLE_PINS.split()
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(pins), *requirements], check=True
    )
    subprocess.run(check, check=True)
    return python


def run_worker(
    toolkit: str,
    python: Path,
    model: str,
    params: dict[str, Any],
    data: Path,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], str]:
    """One worker run on the export in ``data``, in a scratch folder (RecBole writes
    logs and checkpoints there)."""
    SCRATCH.mkdir(exist_ok=True)
    budget = args.sasrec_budget if model == "sasrec" else args.time_budget
    with tempfile.TemporaryDirectory(dir=SCRATCH, prefix=f"{toolkit}-{model}-") as folder:
        out = Path(folder) / "record.json"
        command = [
            str(python),
            str(HERE / f"{toolkit}_worker.py"),
            model,
            "--data", str(data),
            "--params", json.dumps(params),
            "--out", str(out),
            "--eval-repeats", str(args.eval_repeats),
        ]  # fmt: skip
        if budget:
            command += ["--time-budget", str(budget)]
        env = {
            **os.environ,
            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
            "PYTHONWARNINGS": "ignore",
            "OMP_NUM_THREADS": str(args.threads),
            "MKL_NUM_THREADS": str(args.threads),
        }
        load = os.getloadavg()[0]
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"{toolkit} {model} failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        record = json.loads(out.read_text())
    record["load_average_1min"] = load
    shown = [Path(c).name if c.startswith(str(ROOT)) else c for c in command]
    shown[shown.index("--data") + 1] = "EXPORT"
    shown[0] = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    shown[1] = f"benchmarks/{toolkit}_worker.py"
    shown[shown.index("--out") + 1] = "record.json"
    return record, shlex.join(shown)


PROTOCOLS = {
    "ratio": "random 8:1:1 per user, seeded (tastemaker's random_ratio with RecBole's part "
    "sizes), exported to both; train (and valid when testing) items masked",
    "loo": "leave-one-out by time, exported to both (RecBole reads the training prefixes, "
    "≤ 50 items, as its own augmentation makes them)",
}


def save(
    dataset: str,
    model: str,
    pairs: list[tuple[dict, dict]],
    commands: list[str],
    args: argparse.Namespace,
) -> None:
    """Put ``model``'s section on ``dataset`` into the results and write both files.

    The JSON is read again first, so invocations running side by side (e.g. SASRec and
    the general models) keep each other's sections."""
    from tastemaker.atomic import write_text
    from vs_recbole_report import markdown  # not at the top: the workers import this module
    from vs_recbole_summary import summarize

    json_path = RESULTS / "vs_recbole.json"
    report = json.loads(json_path.read_text()) if json_path.exists() else {}
    if "datasets" not in report:  # results of the layout before exported splits: replaced
        report = {"datasets": {}}
    sequential = model == "sasrec"
    report["datasets"].setdefault(dataset, {})[model] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/vs_recbole.py", *sys.argv[1:]]),
        "protocol": PROTOCOLS["loo" if sequential else "ratio"],
        "params": pairs[0][1]["params"],
        "seeds": [SEED + r for r in range(len(pairs))],
        "max_epochs": args.max_epochs,
        "time_budget": args.sasrec_budget if sequential else args.time_budget,
        "snapshot_epoch": args.sasrec_epochs if sequential else None,
        "threads": args.threads,
        "quick": args.quick,
        "commands": commands[:2],
        "summary": summarize(model, pairs),
        "runs": [{"recbole": r, "tastemaker": t} for r, t in pairs],
    }
    recbole, tastemaker = pairs[0]
    report["machine"] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch_recbole": recbole["torch"],
        "torch_tastemaker": tastemaker["torch"],
    }
    write_text(json_path, json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "vs_recbole.md", markdown(report))


DATASETS = ("ml-100k", "ml-latest-small")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    parser.add_argument(
        "--quick", action="store_true", help="1 repeat; SASRec: 1 epoch compared, 600 s"
    )
    parser.add_argument("--repeats", type=int, help="runs per toolkit and model (3; quick 1)")
    parser.add_argument("--max-epochs", type=int, default=300, help="RecBole's default")
    parser.add_argument(
        "--time-budget", type=float, default=1200.0, help="seconds of training per run (0: none)"
    )
    parser.add_argument("--sasrec-epochs", type=int, help="epochs of the equal-epoch comparison")
    parser.add_argument("--sasrec-budget", type=float, help="seconds of SASRec training per run")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each worker (1: see the module docstring)",
    )
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument(
        "--render", action="store_true", help="only re-summarize the JSON's runs and rewrite"
    )
    data_root.add_argument(parser)
    args = parser.parse_args(argv)
    if args.render:
        from vs_recbole_report import render

        render()
        return
    defaults = (1, 1, 600.0) if args.quick else (3, 10, 3600.0)
    for name, value in zip(("repeats", "sasrec_epochs", "sasrec_budget"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(datasets) - set(DATASETS))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}; use {', '.join(MODELS + DATASETS)}")
    root = data_root.data_root(args.data_root, *datasets)
    import recbole_split  # tastemaker (this interpreter); the workers never import it

    pythons = {"recbole": recbole_python(), "tastemaker": Path(sys.executable)}
    for dataset in datasets:
        for model in models:
            protocol = "loo" if model == "sasrec" else "ratio"
            pairs, commands = [], []
            for repeat in range(args.repeats):
                seed = SEED + repeat
                params = {**SHARED, **OWN[model], "epochs": args.max_epochs, "seed": seed}
                if model == "sasrec":
                    params["snapshot_epoch"] = args.sasrec_epochs
                export = SCRATCH / "splits" / recbole_split.token(dataset, protocol, seed)
                recbole_split.export(dataset, root, protocol, seed, export)
                pair = []
                for toolkit in ("recbole", "tastemaker"):
                    record, command = run_worker(
                        toolkit, pythons[toolkit], model, params, export, args
                    )
                    pair.append(record)
                    commands.append(command)
                    print(
                        f"{dataset} {model} #{repeat} {toolkit}: test ndcg@10 "
                        f"{record['test']['ndcg@10']:.4f}, {len(record['epochs'])} epochs, "
                        f"fit {record['fit_seconds']:.1f}s, eval {record['eval_seconds']:.3f}s, "
                        f"load {record['load_average_1min']:.1f}",
                        flush=True,
                    )
                pairs.append(tuple(pair))
                # written after every repeat, so an interrupted benchmark keeps what it measured
                save(dataset, model, pairs, commands, args)


if __name__ == "__main__":
    main()
