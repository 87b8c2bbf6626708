"""tastemaker vs RecBole 1.2.1 on ml-100k: accuracy, seconds per epoch, time to quality,
evaluation seconds and peak memory of BPR, LightGCN and SASRec.

Run with ``.venv/bin/python benchmarks/vs_recbole.py [--models bpr,lightgcn,sasrec]``
(or ``make bench-recbole``). Nothing is installed into ``.venv``: RecBole lives in
``.venv-recbole``, created on first use from pins this script writes (torch 2.13
needs setuptools>=77, so ``setuptools<81`` keeps the ``pkg_resources`` that Ray's
import needs; numpy<2, pandas<2.2 and scipy<1.12 are RecBole 1.2.1's limits).

Each run is a subprocess (``recbole_worker.py`` in ``.venv-recbole``,
``tastemaker_worker.py`` in this interpreter) with the same hyper-parameters,
alternating RecBole, tastemaker, RecBole, ... so the load of the machine falls on
both alike. Protocols are RecBole's: random 8:1:1 per user for BPR and LightGCN,
leave-one-out by time for SASRec, full ranking, early stopping on validation
NDCG@10. Results go to ``benchmarks/results/vs_recbole.{md,json}``; a run of some
models replaces only their sections.

Workers run with one torch thread by default (``--threads``): on this shared
2-core machine, two threads made the small per-batch operations of both toolkits
3-10x slower and erratic (RecBole's BPR epoch 0.14 s with one thread, 0.5-2 s
with two), which would measure the neighbours' load rather than the toolkits.

The workers use :func:`worker_main` from here, so this module imports only the
standard library (it runs in both virtual environments).
"""

from __future__ import annotations

import argparse
import json
import math
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
    # RecBole's BPR has no L2 term; tastemaker's default reg is 1e-2.
    "bpr": {"tastemaker": {"reg": 0.0}},
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
    toolkit: str, python: Path, model: str, params: dict[str, Any], args: argparse.Namespace
) -> tuple[dict[str, Any], str]:
    """One worker run in a scratch folder (RecBole writes logs and checkpoints there)."""
    SCRATCH.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SCRATCH, prefix=f"{toolkit}-{model}-") as folder:
        out = Path(folder) / "record.json"
        command = [
            str(python),
            str(HERE / f"{toolkit}_worker.py"),
            model,
            "--data", str(args.data),
            "--params", json.dumps(params),
            "--out", str(out),
            "--eval-repeats", str(args.eval_repeats),
        ]  # fmt: skip
        if args.time_budget:
            command += ["--time-budget", str(args.time_budget)]
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
    shown[shown.index("--data") + 1] = data_root.shown(args.data, args.data.parent)
    shown[0] = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    shown[1] = f"benchmarks/{toolkit}_worker.py"
    shown[shown.index("--out") + 1] = "record.json"
    return record, shlex.join(shown)


def time_to(record: dict[str, Any], target: float) -> float | None:
    """Seconds from the start of fit to the first validation at ``target`` or above.

    Validation NDCG@10 is compared at RecBole's precision (4 decimals).
    """
    for epoch in record["epochs"]:
        value = epoch[METRIC]
        if value is not None and round(value, 4) >= target:
            return epoch["elapsed_seconds"]
    return None


def median(values: list[float | None]) -> float | None:
    """Median with a missing value (a target never reached) counted as infinitely late;
    None when that is the median."""
    middle = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(middle) else middle


def summarize(model: str, pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
    """Medians over repeats per toolkit, tastemaker/RecBole ratios and the targets."""
    side: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(("recbole", "tastemaker")):
        records = [pair[index] for pair in pairs]
        side[name] = {
            "test_ndcg@10": statistics.median(r["test"]["ndcg@10"] for r in records),
            "test_recall@10": statistics.median(r["test"]["recall@10"] for r in records),
            "seconds_per_epoch": statistics.median(
                statistics.median(e["train_seconds"] for e in r["epochs"]) for r in records
            ),
            "epochs_run": statistics.median(len(r["epochs"]) for r in records),
            "best_valid_ndcg@10": statistics.median(r["best_valid"] for r in records),
            "eval_seconds": statistics.median(r["eval_seconds"] for r in records),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in records),
            "stopped_by_budget": sum(r["stopped_by_budget"] for r in records),
        }
    # The random splits differ between the toolkits, and so do their validation parts:
    # the quality to reach is the median of RecBole's bests, not each repeat's own.
    target = side["recbole"]["best_valid_ndcg@10"]
    reached = [time_to(t, target) for _, t in pairs]
    side["recbole"]["time_to_recbole_best"] = statistics.median(
        time_to(r, r["best_valid"]) for r, _ in pairs
    )
    side["tastemaker"]["time_to_recbole_best"] = median(reached)
    side["tastemaker"]["runs_reaching_recbole_best"] = sum(t is not None for t in reached)
    rb, tm = side["recbole"], side["tastemaker"]

    def ratio(key: str) -> float | None:
        return None if tm[key] is None or not rb[key] else tm[key] / rb[key]

    ratios = {
        key: ratio(key)
        for key in (
            "test_ndcg@10", "test_recall@10", "seconds_per_epoch", "time_to_recbole_best",
            "eval_seconds", "peak_rss_mb",
        )
    }  # fmt: skip
    targets = {
        "test_ndcg@10": ratios["test_ndcg@10"] >= 1 - ACCURACY_TOLERANCE,
        "time_to_recbole_best": ratios["time_to_recbole_best"] is not None
        and ratios["time_to_recbole_best"] <= SPEED_TARGET,
        "eval_seconds": ratios["eval_seconds"] <= SPEED_TARGET,
        "peak_rss_mb": ratios["peak_rss_mb"] <= 1,
    }
    if model in EPOCH_TARGET_MODELS:
        targets["seconds_per_epoch"] = ratios["seconds_per_epoch"] <= SPEED_TARGET
    loads = [r["load_average_1min"] for pair in pairs for r in pair]
    return {
        "repeats": len(pairs),
        "load_average_1min": {"min": min(loads), "median": statistics.median(loads),
                              "max": max(loads)},
        "recbole": rb,
        "tastemaker": tm,
        "ratios": ratios,
        "targets_met": targets,
    }  # fmt: skip


ROWS = (  # (label, key, format, target text)
    ("test NDCG@10", "test_ndcg@10", "{:.4f}", f"≥ {1 - ACCURACY_TOLERANCE:.2f}"),
    ("test Recall@10", "test_recall@10", "{:.4f}", ""),
    ("best valid NDCG@10", "best_valid_ndcg@10", "{:.4f}", ""),
    ("s / training epoch (median)", "seconds_per_epoch", "{:.3f}", f"≤ {SPEED_TARGET}"),
    ("epochs run", "epochs_run", "{:g}", ""),
    ("s to RecBole's best valid NDCG@10", "time_to_recbole_best", "{:.1f}", f"≤ {SPEED_TARGET}"),
    ("full-ranking eval on test (s)", "eval_seconds", "{:.3f}", f"≤ {SPEED_TARGET}"),
    ("peak RSS (MiB)", "peak_rss_mb", "{:.0f}", "≤ 1"),
)


def model_markdown(model: str, entry: dict[str, Any]) -> list[str]:
    """One model's section: settings, the table with targets, and the commands."""
    s = entry["summary"]
    lines = [
        f"## {model}",
        "",
        f"{entry['date']}, `{entry['command']}`: {s['repeats']} repeat(s), seeds {entry['seeds']}; "
        f"1-minute load average during the runs {s['load_average_1min']['min']:.1f}–"
        f"{s['load_average_1min']['max']:.1f} (median {s['load_average_1min']['median']:.1f}); "
        f"max {entry['max_epochs']} epochs, time budget "
        f"{entry['time_budget'] or 'none'} s per run, {entry['threads']} torch thread(s) "
        "per worker.",
        f"Protocol: {entry['protocol']}. Hyper-parameters: `{json.dumps(entry['params'])}`.",
        "",
        "| | RecBole | tastemaker | tastemaker / RecBole | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, key, fmt, target in ROWS:
        rb, tm, ratio = s["recbole"][key], s["tastemaker"][key], s["ratios"].get(key)
        met = s["targets_met"].get(key)
        verdict = "" if met is None else ("met" if met else "**not met**")
        if key not in s["targets_met"]:
            target = ""
        lines.append(
            f"| {label} | {fmt.format(rb) if rb is not None else '–'} | "
            f"{fmt.format(tm) if tm is not None else 'not reached'} | "
            f"{f'{ratio:.2f}' if ratio is not None else '–'} | {target} | {verdict} |"
        )
    lines += [
        "",
        f"tastemaker reached RecBole's best validation NDCG@10 "
        f"({s['recbole']['best_valid_ndcg@10']:.4f}) in "
        f"{s['tastemaker']['runs_reaching_recbole_best']} of {s['repeats']} runs.",
    ]
    budget_stops = s["recbole"]["stopped_by_budget"] + s["tastemaker"]["stopped_by_budget"]
    if budget_stops:
        lines += [
            "",
            f"RecBole stopped by the time budget in {s['recbole']['stopped_by_budget']} and "
            f"tastemaker in {s['tastemaker']['stopped_by_budget']} of {s['repeats']} runs: "
            '"best" is the best within the budget.',
        ]
    lines += ["", "Commands (one repeat; run from a scratch folder):", "", "```"]
    lines += [*entry["commands"], "```", ""]
    return lines


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# tastemaker vs RecBole 1.2.1 on ml-100k",
        "",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['processor'] or 'n/a'}), python "
        f"{m['python']}; torch {m['torch_tastemaker']} (tastemaker) and "
        f"{m['torch_recbole']} (RecBole). Other work shared the machine (see the load "
        "averages), so runs alternate between the toolkits and the tables report medians "
        "over repeats.",
        "",
        "Seconds per training epoch exclude validation; time to RecBole's best counts "
        "wall-clock seconds from the start of `fit` (training plus every validation) until "
        "the validation NDCG@10 (4 decimals) first reaches RecBole's best (the median over "
        "repeats; a run that never reaches it counts as infinitely late). Evaluation: full "
        "ranking of the test part over all items, NDCG@10 and "
        "Recall@10, each toolkit's default evaluation batch (RecBole's `eval_batch_size` "
        "4096 score rows), median of repeated calls on the trained model. Peak RSS is "
        "the worker process's maximum resident set (data loading included). Targets: "
        f"test NDCG@10 within {ACCURACY_TOLERANCE:.0%} of RecBole's or better; s/epoch "
        f"(BPR, LightGCN) and time to RecBole's best at most {SPEED_TARGET} of RecBole's; "
        "evaluation at least 2x faster; peak RSS no higher.",
        "",
    ]
    for model in MODELS:
        if model in report["models"]:
            lines += model_markdown(model, report["models"][model])
    return "\n".join(lines)


def save(
    report: dict[str, Any],
    model: str,
    pairs: list[tuple[dict, dict]],
    commands: list[str],
    args: argparse.Namespace,
) -> None:
    """Put ``model``'s section (summary and raw runs) into ``report`` and write both files."""
    from tastemaker.atomic import write_text  # not at the top: the workers import this module

    report["models"][model] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/vs_recbole.py", *sys.argv[1:]]),
        "protocol": "leave-one-out by time (RecBole LS valid_and_test, order TO)"
        if model == "sasrec"
        else "random 8:1:1 per user (RecBole RS [0.8,0.1,0.1], order RO, group_by user)",
        "params": {**SHARED, **OWN[model], "epochs": args.max_epochs},
        "seeds": [SEED + r for r in range(len(pairs))],
        "max_epochs": args.max_epochs,
        "time_budget": args.time_budget,
        "threads": args.threads,
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
    write_text(RESULTS / "vs_recbole.json", json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "vs_recbole.md", markdown(report))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per toolkit and model")
    parser.add_argument("--max-epochs", type=int, default=300, help="RecBole's default")
    parser.add_argument(
        "--time-budget", type=float, default=1200.0, help="seconds of training per run (0: none)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each worker (1: see the module docstring)",
    )
    parser.add_argument("--eval-repeats", type=int, default=3)
    data_root.add_argument(parser)
    args = parser.parse_args(argv)
    args.data = data_root.data_root(args.data_root, "ml-100k") / "ml-100k"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; use {', '.join(MODELS)}")
    if not (args.data / "ml-100k.inter").is_file():
        data_root.fail(f"{args.data} has no ml-100k.inter (the RecBole atomic file)")

    pythons = {"recbole": recbole_python(), "tastemaker": Path(sys.executable)}
    json_path = RESULTS / "vs_recbole.json"
    report = json.loads(json_path.read_text()) if json_path.exists() else {"models": {}}
    for model in models:
        pairs, commands = [], []
        for repeat in range(args.repeats):
            params = {
                **SHARED, **OWN[model], "epochs": args.max_epochs, "seed": SEED + repeat,
            }  # fmt: skip
            pair = []
            for toolkit in ("recbole", "tastemaker"):
                record, command = run_worker(toolkit, pythons[toolkit], model, params, args)
                pair.append(record)
                commands.append(command)
                print(
                    f"{model} #{repeat} {toolkit}: test ndcg@10 {record['test']['ndcg@10']:.4f}, "
                    f"{len(record['epochs'])} epochs, fit {record['fit_seconds']:.1f}s, "
                    f"eval {record['eval_seconds']:.3f}s, load {record['load_average_1min']:.1f}",
                    flush=True,
                )
            pairs.append(tuple(pair))
            # written after every repeat, so an interrupted benchmark keeps what it measured
            save(report, model, pairs, commands, args)
    print(markdown(report))


if __name__ == "__main__":
    main()
