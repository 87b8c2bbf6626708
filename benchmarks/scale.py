"""Scale: tastemaker vs implicit 0.7.3 on synthetic data of 1M, 5M and 20M interactions.

Run from the repository root: ``.venv/bin/python benchmarks/scale.py [--sizes 1M,5M,20M]``.
Writes ``benchmarks/results/scale.{md,json}``.

Data (:func:`generate`, seeded): n_users x n_items with lognormal user activity
(σ = 1) and Zipf item popularity (exponent 0.9, items in a seeded random order),
1.15x the target rows drawn so that about the target remains after the
preparation, which goes through the public ``tastemaker.data`` API: deduplicate,
5-core, per-user random 8:1:1 (seed 2020). Sizes: 1M = 20k x 10k, 5M = 100k x 50k,
20M = 300k x 200k.

Per size, with torch and implicit on one thread each (``threadpoolctl``,
``num_threads=1``), runs alternate (tastemaker, implicit, tastemaker, ...):

- BPR and ALS epochs (64 factors; implicit's BPR adds its bias column): each run
  fits 3 epochs on the train part; an epoch is the mean of epochs 2-3 from the
  toolkits' per-epoch callbacks (setup and the first epoch left out on both sides),
  in CPU seconds (process time) and wall seconds. Defaults otherwise (ALS: λ = 30,
  α = 3, 3 CG steps on both sides).
- Accuracy after those 3 epochs (test NDCG@10 on a seeded sample of users, train and
  valid masked, the same evaluator for both), so that a faster epoch that learns less
  shows.
- Evaluation: ``tastemaker.evaluation.evaluate`` of the ALS model on the test part of
  a seeded sample of users, as GFLOP/s of its scoring product (2·users·items·factors
  per second of CPU time) and as a share of a plain GEMM of the same shapes measured
  in the same run; implicit's ``recommend`` (top 10, seen items filtered) likewise.
- Preparation time and its peak RSS; ``Split.save`` then ``Split.load``.

Peak RSS per step resets the kernel's high-water mark (``/proc/self/clear_refs``)
before the step, so each row is that step's own peak. The load average is recorded
per size: the machine may be shared, which is why runs alternate and CPU seconds
are reported beside wall seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from tastemaker import Catalog, Dataset, Interactions, Split
from tastemaker.atomic import write_text
from tastemaker.data.filters import deduplicate, k_core
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import random_ratio
from tastemaker.evaluation import evaluate
from tastemaker.models import ALS, BPR
from tastemaker.reporting.markdown import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"1M": (20_000, 10_000, 1_000_000), "5M": (100_000, 50_000, 5_000_000),
         "20M": (300_000, 200_000, 20_000_000)}  # fmt: skip
SEED, SPLIT_SEED, EPOCHS, FACTORS, EVAL_USERS = 0, 2020, 3, 64, 10_000
TARGETED = ("5M", "20M")  # the sizes the targets name


@dataclass
class Measure:
    cpu_s: float
    wall_s: float
    peak_rss_gb: float


def generate(n_users: int, n_items: int, n_rows: int, seed: int = SEED) -> pl.DataFrame:
    """Raw interactions: lognormal activity per user, Zipf(0.9) popularity per item."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = np.maximum(1, np.round(activity / activity.sum() * n_rows * 1.15)).astype(np.int64)
    users = np.repeat(np.arange(n_users), counts)
    popularity = np.cumsum(np.arange(1, n_items + 1, dtype=np.float64) ** -0.9)
    items = rng.permutation(n_items)[
        np.searchsorted(popularity / popularity[-1], rng.random(len(users)))
    ]
    return pl.DataFrame({
        "user_id": pl.Series(users).cast(pl.Utf8), "item_id": pl.Series(items).cast(pl.Utf8),
        "rating": np.ones(len(users), np.float32), "timestamp": rng.integers(0, 10**9, len(users)),
    })  # fmt: skip


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak is the process's so far
        Path("/proc/self/clear_refs").write_text("5")


def _peak_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measured(fn: Callable[[], Any]) -> tuple[Any, Measure]:
    _reset_peak()
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, Measure(time.process_time() - cpu, time.perf_counter() - wall, _peak_gb())


def prepare(frame: pl.DataFrame) -> Split:
    """Dedupe, 5-core, ratio split: the public data API end to end."""
    catalog = Catalog(pl.DataFrame({"item_id": frame["item_id"].unique().sort()}))
    ds = Dataset(catalog, Interactions(frame), Manifest(name="synthetic"))
    return random_ratio(k_core(deduplicate(ds), 5, 5), (0.8, 0.1, 0.1), seed=SPLIT_SEED)


class _Clock:
    """Process and wall time at each epoch end, from a toolkit's per-epoch callback."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def __call__(self, *_: Any) -> None:
        self.marks.append((time.process_time(), time.perf_counter()))

    def per_epoch(self) -> tuple[float, float]:
        """Mean (CPU s, wall s) of the epochs after the first."""
        (c0, w0), (c1, w1) = self.marks[0], self.marks[-1]
        n = len(self.marks) - 1
        return (c1 - c0) / n, (w1 - w0) / n


def run_ours(kind: str, train: Interactions) -> tuple[Any, Measure]:
    clock = _Clock()
    model = (BPR if kind == "bpr" else ALS)(factors=FACTORS, epochs=EPOCHS, seed=SEED)
    model.on_epoch = clock
    _reset_peak()
    model.fit(train)
    cpu, wall = clock.per_epoch()
    return model, Measure(cpu, wall, _peak_gb())


def run_implicit(kind: str, matrix: sp.csr_matrix) -> tuple[Any, Measure]:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    common = {"factors": FACTORS, "iterations": EPOCHS, "num_threads": 1, "random_state": SEED}
    model = (
        BayesianPersonalizedRanking(**common)
        if kind == "bpr"
        else AlternatingLeastSquares(
            **common, regularization=30.0, alpha=3.0, calculate_training_loss=False
        )
    )
    clock = _Clock()
    _reset_peak()
    model.fit(matrix, show_progress=False, callback=clock)
    cpu, wall = clock.per_epoch()
    return model, Measure(cpu, wall, _peak_gb())


class FactorScorer:
    """A user x item factor model (implicit's) for tastemaker's evaluator."""

    scores_are_new = True

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.users, self.items = torch.from_numpy(users), torch.from_numpy(items)

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.users[torch.from_numpy(user_idx)] @ self.items.T


def sampled(part: Interactions, users: np.ndarray) -> Interactions:
    return part.with_frame(part.frame.filter(pl.col("user_id").is_in(pl.Series(users).implode())))


def ndcg(scorer: Any, split: Split, users: np.ndarray) -> float:
    test = sampled(split.test, users)
    return float(evaluate(scorer, test, exclude=[split.train, split.valid], ks=(10,))["ndcg@10"])


def gemm_gflops(n_users: int, n_items: int) -> float:
    """A plain (1024 x 64) @ (64 x n_items) GEMM over ``n_users`` rows, GFLOP/s of CPU time."""
    items = torch.randn(FACTORS, n_items)
    block = torch.randn(1024, FACTORS)
    block @ items  # warm-up
    cpu = time.process_time()
    for _ in range(0, n_users, 1024):
        block @ items
    rows = -(-n_users // 1024) * 1024
    return 2 * rows * n_items * FACTORS / (time.process_time() - cpu) / 1e9


def bench_size(name: str, repeats: int) -> dict[str, Any]:
    n_users, n_items, n_rows = SIZES[name]
    load_before = os.getloadavg()
    frame = generate(n_users, n_items, n_rows)
    split, prep = measured(partial(prepare, frame))
    del frame
    with tempfile.TemporaryDirectory() as tmp:
        split.save(Path(tmp) / "split")
        split, load = measured(lambda: Split.load(Path(tmp) / "split"))
    train = split.train
    matrix = train.to_csr()
    known = Interactions.concat([split.train, split.valid]).to_csr()
    rng = np.random.default_rng(SEED)
    test_users = np.unique(split.test.frame["user_id"].to_numpy())
    users = rng.choice(test_users, min(EVAL_USERS, len(test_users)), replace=False)
    steps: dict[str, Any] = {}
    for kind in ("bpr", "als"):
        runs: dict[str, list[Measure]] = {"tastemaker": [], "implicit": []}
        models: dict[str, Any] = {}
        for _ in range(repeats):
            models["tastemaker"], m = run_ours(kind, train)
            runs["tastemaker"].append(m)
            models["implicit"], m = run_implicit(kind, matrix)
            runs["implicit"].append(m)
            print(name, kind, {k: asdict(v[-1]) for k, v in runs.items()}, flush=True)
        ours, theirs = models["tastemaker"], models["implicit"]
        steps[kind] = {
            "runs": {k: [asdict(m) for m in v] for k, v in runs.items()},
            "ndcg@10": {
                "tastemaker": ndcg(ours, split, users),
                "implicit": ndcg(
                    FactorScorer(theirs.user_factors, theirs.item_factors), split, users
                ),
            },
        }
        if kind == "als":
            steps["evaluation"] = bench_evaluation(ours, theirs, split, known, users)
    return {
        "size": name, "users": split.counts()["users"], "items": split.counts()["items"],
        "interactions": sum(split.counts()[p] for p in ("train", "valid", "test")),
        "prepare": asdict(prep), "split_load": asdict(load), "steps": steps,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }  # fmt: skip


def bench_evaluation(
    ours: ALS, theirs: Any, split: Split, known: sp.csr_matrix, users: np.ndarray
) -> dict[str, Any]:
    """GFLOP/s of the scoring product: tastemaker's evaluator, implicit's recommend, a GEMM."""
    n_items = len(split.items)
    test = sampled(split.test, users)
    n_eval = test.n_active_users
    flops = 2 * n_eval * n_items * FACTORS
    peak = gemm_gflops(n_eval, n_items)
    _, ours_m = measured(lambda: evaluate(ours, test, exclude=[split.train, split.valid], ks=(10,)))
    rows = np.unique(test.indices()[0])
    _, theirs_m = measured(lambda: theirs.recommend(rows, known[rows], N=10))
    return {
        "users": n_eval, "gemm_gflops": peak,
        "tastemaker": {**asdict(ours_m), "gflops": flops / ours_m.cpu_s / 1e9},
        "implicit": {**asdict(theirs_m), "gflops": flops / theirs_m.cpu_s / 1e9},
    }  # fmt: skip


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _target(size: str, ratio: float, goal: float, hard: float | None = None) -> str:
    if size not in TARGETED:
        return "– (no target at this size)"
    if ratio <= goal:
        return f"met (≤ {goal:g}x)"
    miss = f"missed by {ratio / goal - 1:.0%}"
    return miss + (f", within {hard:g}x" if hard is not None and ratio <= hard else "")


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    rows = []
    for r in results:
        size = r["size"]
        for kind in ("bpr", "als"):
            step = r["steps"][kind]
            ours, theirs = step["runs"]["tastemaker"], step["runs"]["implicit"]
            ratio = _median(ours, "cpu_s") / _median(theirs, "cpu_s")
            peaks = [max(m["peak_rss_gb"] for m in runs) for runs in (ours, theirs)]
            rows.append([
                size, f"{kind.upper()} epoch", f"{_median(ours, 'cpu_s'):.2f}",
                f"{_median(theirs, 'cpu_s'):.2f}", f"{ratio:.2f}x",
                f"{_median(ours, 'wall_s'):.2f} / {_median(theirs, 'wall_s'):.2f}",
                f"{peaks[0]:.2f} / {peaks[1]:.2f}",
                f"{step['ndcg@10']['tastemaker']:.4f} / {step['ndcg@10']['implicit']:.4f}",
                _target(size, ratio, 1.0, 1.5),
            ])  # fmt: skip
        ev = r["steps"]["evaluation"]
        share = {k: ev[k]["gflops"] / ev["gemm_gflops"] for k in ("tastemaker", "implicit")}
        mine = share["tastemaker"]
        met = "met (≥ 50%)" if mine >= 0.5 else f"missed: {mine:.0%} of ≥ 50%"
        rows.append([
            size, f"evaluation ({ev['users']:,} users), share of a "
            f"{ev['gemm_gflops']:.1f} GFLOP/s GEMM",
            f"{ev['tastemaker']['cpu_s']:.2f}", f"{ev['implicit']['cpu_s']:.2f}",
            f"{share['tastemaker']:.0%} / {share['implicit']:.0%}",
            f"{ev['tastemaker']['wall_s']:.2f} / {ev['implicit']['wall_s']:.2f}",
            f"{ev['tastemaker']['peak_rss_gb']:.2f} / {ev['implicit']['peak_rss_gb']:.2f}", "–",
            met if size in TARGETED else "– (no target at this size)",
        ])  # fmt: skip
        prep, load = r["prepare"], r["split_load"]
        goal = size == "20M"
        rows.append([
            size, "prepare (dedupe, 5-core, 8:1:1)", f"{prep['cpu_s']:.1f}", "–", "–",
            f"{prep['wall_s']:.1f}", f"{prep['peak_rss_gb']:.2f}", "–",
            ("met" if prep["cpu_s"] <= 60 and prep["peak_rss_gb"] <= 2.5 else
             f"missed ({prep['cpu_s']:.0f} CPU-s of ≤ 60, {prep['peak_rss_gb']:.2f} GB of ≤ 2.5)")
            if goal else "– (target at 20M)",
        ])  # fmt: skip
        rows.append([size, "Split.load", f"{load['cpu_s']:.2f}", "–", "–",
                     f"{load['wall_s']:.2f}", f"{load['peak_rss_gb']:.2f}", "–", "–"])  # fmt: skip
    header = ["size", "step", "tastemaker CPU-s", "implicit CPU-s", "ratio (CPU)",
              "wall s (tm / imp)", "peak RSS GB (tm / imp)", "test NDCG@10 (tm / imp)",
              "target"]  # fmt: skip
    sizes = "; ".join(
        f"{r['size']}: {r['interactions']:,} interactions, {r['users']:,} users x {r['items']:,} "
        f"items, load average {r['load_average']['before'][0]:.1f} before / "
        f"{r['load_average']['after'][0]:.1f} after"
        for r in results
    )
    return "\n".join([
        "# Scale: tastemaker vs implicit 0.7.3 (one thread each)", "",
        f"Written by `benchmarks/scale.py` on {meta['date']} ({meta['machine']}; "
        f"torch {meta['torch']}, implicit {meta['implicit']}; {meta['repeats']} alternating runs "
        "per step, medians; seeds: data 0, split 2020, models 0). See the script's docstring "
        "for the data generator and the protocol.", "",
        markdown_table(header, rows), "",
        f"Data: {sizes}.", "",
        "Epochs are the mean of epochs 2-3 of a 3-epoch fit (CPU seconds of the process, "
        "one thread); NDCG@10 is measured after those 3 epochs on a seeded sample of "
        f"{EVAL_USERS:,} test users. The evaluation share is GFLOP/s of the scoring product "
        "(2·users·items·factors per CPU second) over a plain GEMM of the same shapes.",
    ]) + "\n"  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,5M,20M", help="comma-separated: 1M, 5M, 20M")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per step")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes or args.repeats < 1:
        parser.exit(2, f"error: --sizes takes {', '.join(SIZES)} and --repeats >= 1\n")
    import implicit
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    results = []
    with threadpool_limits(1):
        for size in sizes:  # written after each size, so a long run keeps what it measured
            results.append(bench_size(size, args.repeats))
            meta = {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "torch": torch.__version__, "implicit": implicit.__version__,
                "repeats": args.repeats,
            }  # fmt: skip
            payload = json.dumps({"meta": meta, "results": results}, indent=2)
            write_text(args.out / "scale.json", payload)
            write_text(args.out / "scale.md", report(results, meta))
    print(report(results, meta))


if __name__ == "__main__":
    main()
