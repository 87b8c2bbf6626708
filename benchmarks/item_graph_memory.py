"""Time and peak memory of FREEDOM's chunked kNN item graph on 100k synthetic items.

Run with ``.venv/bin/python benchmarks/item_graph_memory.py`` (``--help`` for sizes).
Each build runs in a fresh subprocess with one torch thread: seeded random float32
features (n x d) are made, the process's resident memory is read (baseline), then
:func:`tastemaker.models.item_graph.knn_graph` builds the top-k cosine graph in chunks
and the peak resident memory (``VmHWM``) is read. The table compares the growth over
the baseline with the formula in the module's docstring:
n·k·(4 + 8) bytes kept + chunk·n·4 bytes of similarities + n·d·4 bytes of normalised
features. Results go to ``benchmarks/results/item_graph_memory.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1e6


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def worker(n: int, dim: int, k: int, chunk: int) -> dict[str, Any]:
    """One build in this process; memory figures in bytes."""
    import numpy as np
    import torch

    from tastemaker.models.item_graph import knn_graph

    torch.set_num_threads(1)
    features = torch.from_numpy(
        np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    )
    baseline = _status_kb("VmRSS") * 1000
    start = time.perf_counter()
    graph = knn_graph(features, k, chunk_size=chunk)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") * 1000
    assert graph.shape == (n, n) and graph.nnz == n * k
    return {
        "items": n,
        "dim": dim,
        "k": k,
        "chunk": chunk,
        "seconds": seconds,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "growth": peak - baseline,
        "predicted": n * k * (4 + 8) + chunk * n * 4 + n * dim * 4,
        "graph_bytes": graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes,
    }


def markdown(rows: list[dict[str, Any]], load: float) -> str:
    import torch

    n, dim, k = rows[0]["items"], rows[0]["dim"], rows[0]["k"]
    lines = [
        "# Item kNN graph: time and memory (FREEDOM's frozen item-item graph)",
        "",
        f"{datetime.now(UTC).isoformat(timespec='seconds')}; {platform.platform()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} (1 thread), python "
        f"{platform.python_version()}; 1-minute load average at start {load:.2f}.",
        "",
        f"{n:,} items with {dim}-dim seeded random float32 features, top-{k} cosine "
        "neighbours of every item among all items, built in chunks of query rows; each "
        "build in a fresh process. The dense similarity matrix would need "
        f"{n * n * 4 / 1e9:.0f} GB. *Growth* is the peak resident memory minus the "
        "resident memory once the features exist; *predicted* is n·k·(4 + 8) + "
        "chunk·n·4 + n·d·4 bytes.",
        "",
        "| chunk rows | build s | baseline RSS MB | peak RSS MB | growth MB | predicted MB "
        "| graph MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['chunk']} | {row['seconds']:.1f} | {row['baseline_rss'] / MB:.0f} "
            f"| {row['peak_rss'] / MB:.0f} | {row['growth'] / MB:.0f} "
            f"| {row['predicted'] / MB:.0f} | {row['graph_bytes'] / MB:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunks", default="256,1024", help="comma-separated chunk sizes")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.items, args.dim, args.k, args.worker)))
        return

    from tastemaker.atomic import write_text

    load = os.getloadavg()[0]
    rows = []
    for chunk in (int(c) for c in args.chunks.split(",")):
        command = [
            sys.executable,
            __file__,
            *("--items", str(args.items), "--dim", str(args.dim), "--k", str(args.k)),
            *("--worker", str(chunk)),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"chunk {chunk}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    text = markdown(rows, load)
    write_text(RESULTS / "item_graph_memory.md", text)
    write_text(RESULTS / "item_graph_memory.json", json.dumps(rows, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
