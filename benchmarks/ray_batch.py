"""One batch job on Ray at 1 vs 2 workers: catalog embedding extraction, against one process.

Run with ``OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/ray_batch.py``
(``--items N``, ``--repeats R``). The job: the movie texts (title, genres, tags) of
the bundled ml-latest-small catalog (its first ``--items`` movies) embedded by
all-MiniLM-L6-v2 into a fresh :class:`EmbeddingStore`, (a) in this process at one
torch thread (the peer: ``EmbeddingStore.get_or_encode``), (b) on Ray Data with one
actor, (c) with two (``tastemaker.distributed.encode_catalog_on_ray``), on a local
Ray started once with 2 CPUs. Each repeat runs the three in a rotated order, so
they share the machine's background load evenly; medians go to
``benchmarks/results/ray.{md,json}``, with the 1-minute load average.

CPU seconds are those of this process plus every process Ray started for the job
(its workers and actors, sampled every 0.2 s, so an actor that exits between
samples loses at most that much), not Ray's own daemons (raylet, GCS), which are
left out and idle between jobs. Every path must give the same vectors (asserted, up
to float rounding). No seed is drawn: the job is deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from tastemaker.atomic import write_text
from tastemaker.data.catalog import Catalog
from tastemaker.data.sources import load_bundled
from tastemaker.distributed import connect, encode_catalog_on_ray
from tastemaker.encoders import EmbeddingStore, ItemEmbeddings, TextEncoder

RESULTS = Path(__file__).resolve().parent / "results"
DAEMONS = ("raylet", "gcs_server", "dashboard", "monitor", "log_monitor", "RuntimeEnv")


class CpuMeter:
    """CPU seconds of this process and the job processes Ray forks under it, while running."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def _sample(self) -> None:
        for child in self.me.children(recursive=True):
            try:
                name = " ".join(child.cmdline()[:2])
                if any(daemon in name for daemon in DAEMONS):
                    continue
                times = child.cpu_times()
                self.seen[child.pid] = times.user + times.system
            except psutil.Error:  # exited between listing and reading
                continue

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def measure(self, run: Callable[[], Any]) -> tuple[Any, float, float]:
        """``run()``'s result, wall seconds and CPU seconds (this process + job processes)."""
        self._sample()
        before = dict(self.seen)
        own = time.process_time()
        thread = threading.Thread(target=self._loop, daemon=True)
        wall = time.perf_counter()
        thread.start()
        result = run()
        wall = time.perf_counter() - wall
        self.stop.set()
        thread.join()
        self.stop.clear()
        self._sample()
        children = sum(cpu - before.get(pid, 0.0) for pid, cpu in self.seen.items())
        return result, wall, time.process_time() - own + children


def job(catalog: Catalog, workers: int | None) -> Callable[[], ItemEmbeddings]:
    """Extraction into a fresh store: in this process (None) or on ``workers`` Ray actors."""

    def run() -> ItemEmbeddings:
        with tempfile.TemporaryDirectory() as folder:
            store = EmbeddingStore(Path(folder))
            if workers is None:
                return store.get_or_encode(catalog, TextEncoder(), progress=False)
            return encode_catalog_on_ray(
                catalog, TextEncoder(), store, workers=workers, progress=False
            )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1200, help="movies embedded per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--render", action="store_true", help="rewrite ray.md from ray.json")
    args = parser.parse_args()
    if args.render:
        report = json.loads((RESULTS / "ray.json").read_text(encoding="utf-8"))
        write_text(RESULTS / "ray.md", markdown(report))
        return
    torch.set_num_threads(1)
    catalog = load_bundled().catalog
    catalog = catalog.subset(catalog.frame["item_id"].head(args.items).to_list())
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    ray = connect_local()
    ray_start = time.perf_counter() - started
    paths = {"one process": None, "ray, 1 worker": 1, "ray, 2 workers": 2}
    meter = CpuMeter()
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    reference: np.ndarray | None = None
    for repeat in range(args.repeats):
        names = list(paths)
        names = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in names:
            result, wall, cpu = meter.measure(job(catalog, paths[name]))
            if reference is None:
                reference = result.vectors
            np.testing.assert_allclose(result.vectors, reference, atol=1e-5)
            runs[name].append((wall, cpu))
            print(f"repeat {repeat + 1}: {name}: {wall:.1f} s wall, {cpu:.1f} CPU-s", flush=True)
    load_end = os.getloadavg()[0]
    ray.shutdown()
    rows = {
        name: {
            "wall_s": statistics.median(w for w, _ in values),
            "cpu_s": statistics.median(c for _, c in values),
            "runs": [{"wall_s": w, "cpu_s": c} for w, c in values],
        }
        for name, values in runs.items()
    }
    base = rows["one process"]
    for row in rows.values():
        row["items_per_s"] = args.items / row["wall_s"]
        row["speedup_wall"] = base["wall_s"] / row["wall_s"]
        row["cpu_ratio"] = row["cpu_s"] / base["cpu_s"]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}",
        "packages": {p: version(p) for p in ("ray", "torch", "sentence-transformers")},
        "job": f"embed {args.items} ml-latest-small movie texts with all-MiniLM-L6-v2",
        "repeats": args.repeats,
        "ray_start_s": ray_start,
        "load_average": {"start": load_start, "end": load_end},
        "paths": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "ray.json", json.dumps(report, indent=1) + "\n")
    write_text(RESULTS / "ray.md", markdown(report))
    print(markdown(report))


def connect_local() -> Any:
    """A local Ray with 2 CPUs (one per actor), started once for every run."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return connect()


def markdown(report: dict[str, Any]) -> str:
    load = report["load_average"]
    lines = [
        "# One batch job on Ray: catalog embedding extraction at 1 vs 2 workers",
        "",
        f"{report['date']}; {report['machine']}; "
        + ", ".join(f"{p} {v}" for p, v in report["packages"].items())
        + f". 1-minute load average {load['start']:.2f} at start, {load['end']:.2f} at end: "
        "the 2 cores were shared with other sessions' work, so two Ray workers compete "
        "with it for the same 2 cores and wall times carry that noise.",
        "",
        f"Job: {report['job']} into a fresh embedding store (same shards either way; vectors "
        f"asserted equal). Median of {report['repeats']} repeats, paths in rotated order. "
        "CPU-s: this process plus the processes Ray ran the job in (sampled every 0.2 s), "
        "not Ray's daemons. Each Ray run starts its actors afresh (each loads torch and the "
        f"model): that start is part of the job's time. Starting Ray once took "
        f"{report['ray_start_s']:.1f} s (not counted).",
        "",
        "| path | wall s | CPU-s | items/s | wall speed-up vs one process | CPU-s vs one process |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in report["paths"].items():
        lines.append(
            f"| {name} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | {row['items_per_s']:.1f} | "
            f"{row['speedup_wall']:.2f}x | {row['cpu_ratio']:.2f}x |"
        )
    paths = report["paths"]
    base = paths["one process"]
    extra = {k: row["cpu_s"] - base["cpu_s"] for k, row in paths.items() if k != "one process"}
    two = paths["ray, 2 workers"]
    lines += [
        "",
        "Reading: Ray's CPU-s beyond one process are "
        + ", ".join(f"{v:+.1f} ({k})" for k, v in extra.items())
        + ": mostly each actor's start (a fresh process importing torch and "
        "sentence-transformers and loading the model), paid again by every job. "
        f"Two workers {'beat' if two['speedup_wall'] > 1 else 'did not beat'} one process "
        f"here ({two['speedup_wall']:.2f}x wall): both cores were already busy with other "
        "work, so a second worker found no idle core. Ray pays off when the workers run on "
        "cores (machines) of their own and the job is long enough to amortise the actors' "
        "start; this run does not show that, and no speed-up is claimed from it.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
