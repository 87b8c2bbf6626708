"""Serving: recommendation latency of ``tastemaker serve`` under load, and exact vs ANN retrieval.

Run from the repository root: ``.venv/bin/python benchmarks/serving.py [--data-root DIR]``
(~15 min). Results go to ``benchmarks/results/serving.{md,json}``; progress lines go
to stderr.

1. **Latency under load.** ml-latest-small (``$TASTEMAKER_DATA/ml-latest-small`` with
   its posters when the data root has them, else the embedded copy), the default
   seeded 8:1:1 split; BPR and SASRec trained here with a small seeded budget into a
   temporary folder; the real ``tastemaker serve`` (one uvicorn worker, loopback) in a
   subprocess; locust (``benchmarks/serving_load.py``, its own process) asks for
   k = 10 recommendations of random known users at each target rate for a fixed
   window after a warm-up, per model. Target: p99 < 20 ms at 200 requests/s. The
   load generator and the server share the machine's cores.
2. **Catalog-size sweep** (``benchmarks/serving_sweep.py``): synthetic seeded item
   vectors (structured like trained embeddings, and isotropic as the worst case),
   exact scoring vs FAISS HNSW over ``ef_search`` and ``M``: latency, batch
   throughput, build time, memory and recall@10; a tuning pass on one seed picks
   ``build_index``'s defaults, the reported pass on another seed measures them.

``--skip-load`` or ``--skip-sweep`` runs one part and keeps the other part's earlier
results from the JSON file; ``--sweep-pass tune`` or ``report`` runs one pass of the
sweep, ``--sizes`` / ``--kinds`` some of its rows, which replace the same rows of the
JSON and keep the others (``--skip-load --skip-sweep`` only rewrites the Markdown).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import data_root
import serving_sweep
import serving_sweep_report

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET_P99_MS = 20.0
TARGET_RPS = 200.0
GENERATORS = {"locust": "serving_load.py", "open-loop": "serving_open_loop.py"}


def log(message: str) -> None:
    print(f"serving: {message}", file=sys.stderr, flush=True)


def train_models(root: Path | None, folder: Path, epochs: dict[str, int]) -> dict[str, Any]:
    """The split and the trained models under ``folder``; what was trained, how long."""
    import torch

    from tastemaker import experiment
    from tastemaker.config import DataConfig, ModelSpec, SplitConfig

    torch.set_num_threads(1)
    data = DataConfig()
    if root is not None and (root / "ml-latest-small").is_dir():
        posters = root / "ml-latest-small-posters"
        data = DataConfig(
            dataset="ml-latest-small",
            path=root / "ml-latest-small",
            posters=posters if posters.is_dir() else None,
        )
    split = experiment.prepare(data, SplitConfig())
    split.save(folder / "split")
    trained = {}
    for name, n_epochs in epochs.items():
        start = time.perf_counter()
        spec = ModelSpec(name=name, params={"epochs": n_epochs, "seed": 0})
        model = experiment.train(split, spec)
        model.save(folder / "models" / name)
        scores = [row["ndcg@10"] for row in model.training_log or [] if row.get("ndcg@10")]
        trained[name] = {
            "epochs": n_epochs,
            "train_s": time.perf_counter() - start,
            "best_valid_ndcg@10": max(scores, default=None),
        }
        log(f"trained {name} ({n_epochs} epochs) in {trained[name]['train_s']:.0f} s")
    users = sorted(set(split.train.frame["user_id"].to_list()))
    (folder / "users.json").write_text(json.dumps(users))
    return {
        "data": data_root.shown(data.path, root) if data.path else "embedded ml-latest-small",
        "posters": data.posters is not None,
        "items": len(split.catalog),
        "users": len(users),
        "train_rows": len(split.train),
        "models": trained,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 180.0) -> dict[str, Any]:
    """``GET /ready`` until 200; the server's exit or the timeout is a failure."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before ready")
        try:
            reply = httpx.get(f"{url}/ready", timeout=2.0)
            if reply.status_code == 200:
                return reply.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s")


def serve_and_load(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start ``tastemaker serve`` on the trained models and run locust at each rate."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("tastemaker")),
        *("serve", "--data", str(folder / "split"), "--model-dir", str(folder / "models")),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    server_log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "TASTEMAKER_API_KEY"}
    with server_log.open("wb") as sink:
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        start = time.perf_counter()
        ready = wait_ready(url, server)
        startup = time.perf_counter() - start
        log(f"server ready in {startup:.1f} s: {ready}")
        models = httpx.get(f"{url}/models", timeout=10).json()
        runs = [
            load_run(url, model, rate, generator, folder, server.pid, args)
            for model in args.models
            for rate in args.rates
            for generator in args.generators
        ]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {
        "command": " ".join(
            [".venv/bin/tastemaker", *(w.replace(str(folder), "$TMP") for w in command[1:])]
        ),
        "startup_s": startup,
        "ready": ready,
        "served_models": models,
        "runs": runs,
        "server_log_tail": server_log.read_text(errors="replace").splitlines()[-5:],
    }


def load_run(
    url: str,
    model: str,
    rate: float,
    generator: str,
    folder: Path,
    pid: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One load-generator process (locust or the open-loop one) at one target rate."""
    log(f"{model} at {rate:g} requests/s ({generator}): {args.warmup:g} s warm-up + "
        f"{args.duration:g} s")  # fmt: skip
    command = [
        sys.executable,
        str(HERE / GENERATORS[generator]),
        *("--host", url, "--rate", str(rate), "--model", model),
        *("--users-file", str(folder / "users.json"), "--server-pid", str(pid)),
        *("--warmup", str(args.warmup), "--duration", str(args.duration)),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    log(
        f"{model} at {rate:g}/s ({generator}): {run['achieved_rps']:.1f} achieved, "
        f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, {run['failures']} failures"
    )
    return run


def load_markdown(part: dict[str, Any]) -> list[str]:
    """The section of serving.md for part 1."""
    setup, served = part["setup"], part["serve"]
    trained = "; ".join(
        f"{name}: {m['epochs']} epochs, {m['train_s']:.0f} s" for name, m in setup["models"].items()
    )
    lines = [
        "## 1. Recommendation latency under load (`tastemaker serve`, loopback)",
        "",
        f"Data: {setup['data']} ({setup['items']:,} items, {setup['users']:,} users, "
        f"{setup['train_rows']:,} training rows; posters {'on' if setup['posters'] else 'off'}). "
        f"Models trained by the benchmark, seed 0: {trained}. Server: `{served['command']}` "
        f"(one uvicorn worker, ready {served['startup_s']:.1f} s after start). Load, each in "
        f"its own process: locust {part['locust_version']} headless, `constant_throughput` "
        "users (target/2 users, one request each per 0.5 s), and `serving_open_loop.py` "
        "(target/2 keep-alive connections on asyncio, the same schedule, latency from the "
        "scheduled send time, a few tens of microseconds of CPU per request where locust's "
        "gevent loop adds its own delay to what it reports); "
        f"`GET /users/{{random known user}}/recommendations?k=10&model=M`; "
        f"{part['warmup_s']:g} s warm-up, then {part['duration_s']:g} s measured. Server and "
        f"load generator share the machine's {os.cpu_count()} cores; the load average "
        "is the 1-minute one at the end of each window.",
        "",
        "- **locust** simulates users on gevent greenlets in one process on the same cores "
        "as the server, so its own scheduling delay is inside every latency it reports.",
        "- **open-loop** (`serving_open_loop.py`) sends each request at its scheduled time "
        "over asyncio keep-alive connections and times it from that schedule, so it costs "
        "little CPU and hides no queueing (no coordinated omission).",
        "",
        "| model | load generator | target rps | achieved rps | failures | p50 ms | p95 ms "
        "| p99 ms | max ms | server CPU s | generator CPU s | load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in served["runs"]:
        lines.append(
            f"| {run['model']} | {run.get('generator', 'locust')} | {run['target_rps']:g} "
            f"| {run['achieved_rps']:.1f} "
            f"| {run['failures']} | {run['p50_ms']:.1f} | {run['p95_ms']:.1f} "
            f"| {run['p99_ms']:.1f} | {run['max_ms']:.1f} | {run['server_cpu_s']:.1f} "
            f"| {run['loadgen_cpu_s']:.1f} | {run['load_average_1m']:.2f} |"
        )
    lines += ["", *verdict(served["runs"]), ""]
    return lines


def verdict(runs: list[dict[str, Any]]) -> list[str]:
    """Whether p99 < 20 ms at 200 requests/s was met, per model, and by how much."""
    out = []
    for run in runs:
        if run["target_rps"] != TARGET_RPS:
            continue
        p99, achieved = run["p99_ms"], run["achieved_rps"]
        met = p99 < TARGET_P99_MS and achieved >= 0.98 * TARGET_RPS and not run["failures"]
        how = (
            f"met (p99 {p99:.1f} ms, {TARGET_P99_MS - p99:.1f} ms under)"
            if met
            else f"missed (p99 {p99:.1f} ms = {p99 / TARGET_P99_MS:.1f}x the target; "
            f"{achieved:.0f} requests/s achieved, {run['failures']} failures)"
        )
        out.append(
            f"- **{run['model']}**, {run.get('generator', 'locust')}: target p99 < "
            f"{TARGET_P99_MS:g} ms at 200 rps {how}."
        )
    return out


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    """The tuning and/or reported passes of the ANN sweep, as ``--sweep-pass`` says."""
    ms = [int(m) for m in args.hnsw_m.split(",")]

    def plan(sizes: str, seed: int, kinds: list[str]) -> list[dict[str, Any]]:
        return [
            {"kind": kind, "seed": seed, "items": n, "ms": ms if n <= args.m_up_to else ms[:1]}
            for kind in kinds
            for n in (int(x) for x in sizes.split(","))
        ]

    passes = {
        "tuning": plan(args.tune_sizes, args.tune_seed, ["structured"]),
        "reported": plan(args.sizes, args.seed, args.kinds.split(",")),
    }
    wanted = {"both": list(passes), "tune": ["tuning"], "report": ["reported"]}[args.sweep_pass]
    return {
        name: serving_sweep.run_plan(passes[name], args.queries, args.ef_construction)
        for name in wanted
    }


def merged(earlier: Any, new: dict[str, Any]) -> dict[str, Any]:
    """The sweep's passes with ``new`` rows replacing earlier ones of the same (kind, seed,
    items) and the rest kept, so one size or kind can be rerun on its own."""
    done = earlier if isinstance(earlier, dict) else {}
    out = dict(done)
    for name, rows in new.items():
        keyed = {(r["kind"], r["seed"], r["items"]): r for r in [*done.get(name, []), *rows]}
        out[name] = sorted(keyed.values(), key=lambda r: (r["kind"] != "structured", r["items"]))
    return out


def invocations(runs: list[dict[str, Any]]) -> list[str]:
    """One line per invocation that wrote a part of the page: the page is the merge
    of several (the load test and each sweep pass can run on their own)."""
    lines = []
    for run in runs:
        load = run.get("load_average_1m")
        at_start = "not recorded" if load is None else f"{load:.2f}"
        lines.append(
            f"- {run['date']}: `{run['command']}` ({', '.join(run['parts'])}; "
            f"{run['total_s'] / 60:.1f} min; 1-minute load average at start {at_start})"
        )
    return lines


def write(results: dict[str, Any]) -> str:
    from tastemaker.atomic import write_text

    header = [
        "# Serving: recommendation latency under load, exact vs ANN retrieval",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}. "
        "Written by these invocations of the benchmark, oldest first:",
        "",
        *invocations(results["runs"]),
        "",
    ]
    body = load_markdown(results["load"]) if results.get("load") else []
    if results.get("sweep"):
        body += serving_sweep_report.markdown(results["sweep"])
    text = "\n".join(header + body)
    write_text(RESULTS / "serving.md", text)
    write_text(RESULTS / "serving.json", json.dumps(results, indent=1) + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument("--rates", default="50,100,200", help="target requests/s")
    parser.add_argument("--generators", default="locust,open-loop", help="load generators")
    parser.add_argument("--models", default="bpr,sasrec")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--epochs", default="bpr=30,sasrec=3", help="training epochs per model")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="sweep: reported sizes")
    parser.add_argument("--tune-sizes", default="100000", help="sweep: tuned sizes")
    parser.add_argument("--seed", type=int, default=0, help="sweep: the reported pass's seed")
    parser.add_argument("--tune-seed", type=int, default=1, help="sweep: the tuning seed")
    parser.add_argument("--sweep-pass", choices=("both", "tune", "report"), default="both")
    parser.add_argument("--kinds", default="structured,isotropic", help="sweep: reported kinds")
    parser.add_argument("--queries", type=int, default=1000, help="sweep: user vectors")
    parser.add_argument("--hnsw-m", default="16,32", help="sweep: HNSW links per node")
    parser.add_argument(
        "--m-up-to", type=int, default=100_000, help="sweep: larger catalogs use the first M only"
    )
    parser.add_argument(
        "--ef-construction", type=int, default=100, help="sweep: HNSW build candidate list"
    )
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args.rates = [float(r) for r in args.rates.split(",")]
    args.models = args.models.split(",")
    args.generators = args.generators.split(",")
    value = args.data_root or os.environ.get(data_root.ENV)
    root = data_root.data_root(args.data_root) if value else None

    load = os.getloadavg()[0]
    began = time.perf_counter()
    previous = RESULTS / "serving.json"
    results = json.loads(previous.read_text()) if previous.exists() else {}
    skipped = {"load": args.skip_load, "sweep": args.skip_sweep}
    parts = [name for name, skip in skipped.items() if not skip]
    run = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": data_root.command_line(["benchmarks/serving.py", *sys.argv[1:]], root),
        "load_average_1m": load,
        "parts": parts,
    }
    if not args.skip_load:
        epochs = dict(pair.split("=") for pair in args.epochs.split(","))
        with tempfile.TemporaryDirectory(prefix="tastemaker-serving-") as scratch:
            folder = Path(scratch)
            setup = train_models(root, folder, {m: int(epochs[m]) for m in args.models})
            results["load"] = {
                "setup": setup,
                "serve": serve_and_load(folder, args),
                # Importing locust here would monkey-patch this process (gevent).
                "locust_version": version("locust"),
                "warmup_s": args.warmup,
                "duration_s": args.duration,
            }
    if not args.skip_sweep:
        new = sweep(args)
        # Read again: a sweep of one pass may have been written meanwhile by another run.
        latest = json.loads(previous.read_text()) if previous.exists() else {}
        results["sweep"] = merged(latest.get("sweep"), new)
    if parts:  # rendering only (both parts skipped) keeps the record as it is
        run["total_s"] = time.perf_counter() - began
        results["runs"] = [*results.get("runs", []), run]
    print(write(results))


if __name__ == "__main__":
    main()
