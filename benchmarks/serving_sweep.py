"""Part 2 of ``benchmarks/serving.py``: exact scoring vs the HNSW index as the catalog grows.

Each catalog size runs in a fresh process (``python benchmarks/serving_sweep.py
--items N --out FILE``), so its memory figures are its own. Items and queries are
seeded i.i.d. standard normal float32 vectors (d = 64): no cluster structure for the
graph to exploit, the hard case for an approximate index. For each size: the exact
index (:class:`tastemaker.serve.ann.ExactIndex`) answers every query one at a time
(latency p50/p99) and as one batch (queries/s), and its top-10 is the ground truth;
the HNSW index (:class:`tastemaker.serve.ann.HNSWIndex`) is built (seconds, resident
memory growth, the index's own byte count) and searched at several ``ef_search``
values: latency, batch queries/s and recall@10 against exact.
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

DIM = 64
K = 10
EF_SEARCH = (64, 128, 256, 512)
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


def worker(items: int, queries: int, single: int, m: int, ef_construction: int) -> dict[str, Any]:
    """One catalog size in this process; see the module docstring."""
    import faiss

    from tastemaker.serve.ann import ExactIndex, HNSWIndex

    rng = np.random.default_rng(items)
    vectors = rng.standard_normal((items, DIM), dtype=np.float32)
    users = rng.standard_normal((queries, DIM), dtype=np.float32)
    exact = ExactIndex(vectors)
    exact.search(users[:100], K)  # warm-up: BLAS threads start, pages fault in
    truth, exact_qps = _batch(exact, users)
    row: dict[str, Any] = {
        "items": items,
        "dim": DIM,
        "queries": queries,
        "threads": faiss.omp_get_max_threads(),
        "exact": {
            **_latencies(exact, users, single),
            "batch_qps": exact_qps,
            "index_mb": exact.nbytes / MB,
        },
    }
    baseline = _rss_kb()
    start = time.perf_counter()
    hnsw = HNSWIndex(vectors, m=m, ef_construction=ef_construction, seed=0)
    build = time.perf_counter() - start
    row["hnsw"] = {
        "m": m,
        "ef_construction": ef_construction,
        "build_s": build,
        "rss_growth_mb": (_rss_kb() - baseline) * 1000 / MB,
        "index_mb": hnsw.nbytes / MB,
        "by_ef_search": [],
    }
    for ef in EF_SEARCH:
        hnsw.ef_search = ef
        hnsw.search(users[:100], K)
        found, qps = _batch(hnsw, users)
        row["hnsw"]["by_ef_search"].append(
            {
                "ef_search": ef,
                **_latencies(hnsw, users, single),
                "batch_qps": qps,
                "recall@10": _recall(found, truth),
            }
        )
    return row


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The section of serving.md for part 2."""
    first = rows[0]
    lines = [
        "## 2. Catalog-size sweep: exact scoring vs HNSW (synthetic vectors)",
        "",
        f"Seeded i.i.d. N(0, 1) float32 item and user vectors, d = {first['dim']}, "
        f"{first['queries']:,} user vectors as queries, top-{K} by inner product; each size "
        f"in a fresh process with {first['threads']} BLAS/OpenMP threads. HNSW: FAISS "
        f"`IndexHNSWFlat` (M = {first['hnsw']['m']}, efConstruction = "
        f"{first['hnsw']['ef_construction']}, seed 0). Single-query latency is one "
        "`search` call per query (p50/p99 over the queries timed); batch is all queries "
        "in one call. Recall@10 is the share of the exact top-10 that HNSW returns.",
        "",
        "| items | index | ef_search | build s | index MB | RSS growth MB | p50 ms | p99 ms "
        "| batch queries/s | recall@10 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ex, hn = row["exact"], row["hnsw"]
        lines.append(
            f"| {row['items']:,} | exact | – | – | {ex['index_mb']:.0f} | – "
            f"| {ex['p50_ms']:.2f} | {ex['p99_ms']:.2f} | {ex['batch_qps']:,.0f} | 1.000 |"
        )
        for run in hn["by_ef_search"]:
            lines.append(
                f"| {row['items']:,} | hnsw | {run['ef_search']} | {hn['build_s']:.1f} "
                f"| {hn['index_mb']:.0f} | {hn['rss_growth_mb']:.0f} | {run['p50_ms']:.2f} "
                f"| {run['p99_ms']:.2f} | {run['batch_qps']:,.0f} | {run['recall@10']:.3f} |"
            )
    lines += ["", *crossover(rows), ""]
    return lines


def crossover(rows: list[dict[str, Any]]) -> list[str]:
    """Where HNSW at the default ef_search starts to answer one query faster than exact."""
    from tastemaker.serve.ann import AUTO_EXACT_BELOW, HNSWIndex

    default_ef = HNSWIndex.__init__.__kwdefaults__["ef_search"]
    faster = []
    for row in rows:
        run = next(r for r in row["hnsw"]["by_ef_search"] if r["ef_search"] == default_ef)
        faster.append((row["items"], row["exact"]["p50_ms"], run["p50_ms"], run["recall@10"]))
    text = "; ".join(
        f"{n:,} items: exact {e:.2f} ms vs HNSW {h:.2f} ms (recall {r:.3f})"
        for n, e, h, r in faster
    )
    return [
        f"Crossover at the default ef_search = {default_ef} (p50 of one query): {text}. "
        f'`build_index(kind="auto")` scores exactly below {AUTO_EXACT_BELOW:,} items '
        "(set from a run on a quiet machine; compare the load average above)."
    ]


def run_sizes(sizes: list[int], queries: int, single: int, m: int, efc: int) -> list[dict]:
    """One worker process per catalog size, smallest first; progress on stderr."""
    rows = []
    for items in sizes:
        command = [
            sys.executable,
            __file__,
            *("--items", str(items), "--queries", str(queries), "--single", str(single)),
            *("--m", str(m), "--ef-construction", str(efc)),
        ]
        print(f"sweep: {items:,} items ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        done = subprocess_run(command)
        rows.append(json.loads(done.strip().splitlines()[-1]))
        hn = rows[-1]["hnsw"]
        print(
            f"sweep: {items:,} items done in {time.perf_counter() - start:.0f} s "
            f"(HNSW build {hn['build_s']:.0f} s)",
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
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=1000, help="queries timed one by one")
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(worker(args.items, args.queries, args.single, args.m, args.ef_construction)))


if __name__ == "__main__":
    main()
