"""Part 2 of ``benchmarks/serving.py``: exact scoring vs the HNSW index as the catalog grows.

Each (vector kind, seed, catalog size) runs in a fresh process (``python
benchmarks/serving_sweep.py --items N --kind K --seed S``), so its memory figures are
its own. Vectors: :mod:`serving_vectors` (``structured``: low-rank, clustered, norms
spread, as trained embeddings are; ``isotropic``: i.i.d. normal, the worst case). For
each run the exact index (:class:`tastemaker.serve.ann.ExactIndex`) answers every query
one at a time (latency p50/p99) and as one batch (queries/s), and its top-10 is the
ground truth; an HNSW index (:class:`tastemaker.serve.ann.HNSWIndex`) per ``M`` is
built (seconds, resident memory growth, the index's own byte count) and searched at
each ``ef_search``: latency, batch queries/s and recall@10 against exact.

Two passes: a *tuning* pass on one seed picks the defaults of
:func:`tastemaker.serve.ann.build_index` (the smallest ``ef_search`` whose recall@10
reaches :data:`TARGET_RECALL` at every tuned size where ``auto`` uses the index), and
the *reported* pass on another seed measures those defaults, so the headline is not
measured on the data it was tuned on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving_vectors import DIM, synthetic

K = 10
EF_SEARCH = (16, 32, 64, 128, 256, 512)
TARGET_RECALL = 0.95
MB = 1e6


def _rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _latencies(index: Any, queries: np.ndarray, limit: int) -> dict[str, float]:
    """p50/p99 in ms of one-query searches over the first ``limit`` queries."""
    times = []
    for row in queries[:limit]:
        start = time.perf_counter()
        index.search(row, K)
        times.append((time.perf_counter() - start) * 1e3)
    cuts = statistics.quantiles(times, n=100)
    return {"p50_ms": statistics.median(times), "p99_ms": cuts[98], "single_queries": len(times)}


def _batch(index: Any, queries: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    found = index.search(queries, K)
    return found.indices, len(queries) / (time.perf_counter() - start)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a) & set(b)) / K for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def worker(
    items: int, kind: str, seed: int, queries: int, single: int, ms: list[int], efc: int
) -> dict[str, Any]:
    """One catalog in this process; see the module docstring."""
    import faiss

    from tastemaker.serve.ann import ExactIndex, HNSWIndex

    vectors, users = synthetic(kind, items, queries, seed)
    exact = ExactIndex(vectors)
    exact.search(users[:100], K)  # warm-up: BLAS threads start, pages fault in
    truth, exact_qps = _batch(exact, users)
    row: dict[str, Any] = {
        "items": items,
        "kind": kind,
        "seed": seed,
        "dim": DIM,
        "queries": queries,
        "threads": faiss.omp_get_max_threads(),
        "exact": {
            **_latencies(exact, users, single),
            "batch_qps": exact_qps,
            "index_mb": exact.nbytes / MB,
        },
        "hnsw": [],
    }
    for m in ms:
        baseline = _rss_kb()
        start = time.perf_counter()
        hnsw = HNSWIndex(vectors, m=m, ef_construction=efc, seed=seed)
        build = time.perf_counter() - start
        graph: dict[str, Any] = {
            "m": m,
            "ef_construction": efc,
            "build_s": build,
            "rss_growth_mb": (_rss_kb() - baseline) * 1000 / MB,
            "index_mb": hnsw.nbytes / MB,
            "by_ef_search": [],
        }
        for ef in EF_SEARCH:
            hnsw.ef_search = ef
            hnsw.search(users[:100], K)
            found, qps = _batch(hnsw, users)
            graph["by_ef_search"].append(
                {
                    "ef_search": ef,
                    **_latencies(hnsw, users, single),
                    "batch_qps": qps,
                    "recall@10": _recall(found, truth),
                }
            )
        row["hnsw"].append(graph)
        del hnsw
    return row


def choose(rows: list[dict[str, Any]], m: int, smallest: int) -> dict[str, Any]:
    """The smallest ef_search reaching :data:`TARGET_RECALL` with ``m`` links at every
    structured size from ``smallest`` items (where ``auto`` builds the index)."""
    used = [r for r in rows if r["kind"] == "structured" and r["items"] >= smallest]
    for ef in EF_SEARCH:
        recalls = {
            r["items"]: run["recall@10"]
            for r in used
            for graph in r["hnsw"]
            if graph["m"] == m
            for run in graph["by_ef_search"]
            if run["ef_search"] == ef
        }
        if recalls and min(recalls.values()) >= TARGET_RECALL:
            return {"m": m, "ef_search": ef, "recalls": recalls}
    return {"m": m, "ef_search": None, "recalls": {}}


def run_plan(plan: list[dict[str, Any]], queries: int, efc: int) -> list[dict[str, Any]]:
    """One worker process per entry of ``plan`` (kind, seed, items, ms), in order."""
    rows = []
    for entry in plan:
        ms = ",".join(str(m) for m in entry["ms"])
        label = f"{entry['kind']} seed {entry['seed']}, {entry['items']:,} items, M {ms}"
        command = [
            sys.executable,
            __file__,
            *("--items", str(entry["items"]), "--kind", entry["kind"]),
            *("--seed", str(entry["seed"]), "--queries", str(queries), "--m", ms),
            *("--ef-construction", str(efc)),
        ]
        print(f"sweep: {label} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        done = subprocess_run(command)
        rows.append(json.loads(done.strip().splitlines()[-1]))
        rows[-1]["load_average_1m"] = os.getloadavg()[0]
        builds = ", ".join(f"M {g['m']}: {g['build_s']:.0f} s" for g in rows[-1]["hnsw"])
        print(
            f"sweep: {label} done in {time.perf_counter() - start:.0f} s (builds {builds})",
            file=sys.stderr,
            flush=True,
        )
    return rows


def subprocess_run(command: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--kind", default="structured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=1000, help="queries timed one by one")
    parser.add_argument("--m", default="16", help="HNSW links per node, comma-separated")
    parser.add_argument("--ef-construction", type=int, default=100)
    args = parser.parse_args()
    ms = [int(m) for m in args.m.split(",")]
    row = worker(
        args.items, args.kind, args.seed, args.queries, args.single, ms, args.ef_construction
    )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
