"""Users per second: the batched full-ranking evaluator vs a per-user Python loop.

Run from the repository root with ``TASTEMAKER_DATA=/path/to/data make bench`` or
``.venv/bin/python benchmarks/evaluation_throughput.py [--data-root DIR]``. On
ml-latest-small and ml-100k (folders of the data root), a seeded random 80/20
per-row split is scored by a PureSVD model (64 factors); both evaluators rank all
items with train masked, must agree on every metric, and are timed over repeated
runs (median). Results go to ``benchmarks/results/evaluation_throughput.{md,json}``.

Near the hardware limit: on synthetic data shaped like 5M and 20M interactions
(100k users x 50k items, 300k x 200k; Zipf items, lognormal user activity, seeded),
a random 64-factor scorer is evaluated (full ranking, train masked, K = 10, 20) for
a seeded sample of users, and the same matrix product is timed on its own as
``torch.mm`` into a preallocated output, alternating with the evaluation in the
same run: evaluation GFLOP/s (2 · users · items · factors over its time) as a share
of the GEMM's. ``--sizes`` picks the sizes (``--sizes none`` skips them).

:func:`evaluate_per_user` is also the straightforward reference implementation the
tests compare the batched evaluator against.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

import data_root
from tastemaker.atomic import write_text
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocab import Vocab
from tastemaker.evaluation import Scorer, evaluate

RESULTS = Path(__file__).resolve().parent / "results"
KS = (10, 20)
REPEATS = 5
FACTORS = 64
SEED = 0
BATCH_SIZE = 1024


def evaluate_per_user(
    scorer: Scorer, truth: Interactions, exclude: Sequence[Interactions] = (), ks=KS
) -> dict[str, float]:
    """The obvious protocol: one user at a time, mask, full argsort, metrics in plain Python."""
    relevant: dict[int, set[int]] = defaultdict(set)
    for user, item in zip(*(a.tolist() for a in truth.indices()), strict=True):
        relevant[user].add(item)
    seen: dict[int, set[int]] = defaultdict(set)
    for part in exclude:
        for user, item in zip(*(a.tolist() for a in part.indices()), strict=True):
            seen[user].add(item)

    sums: dict[str, float] = defaultdict(float)
    covered: dict[int, set[int]] = {k: set() for k in ks}
    for user in sorted(relevant):
        scores = torch.as_tensor(scorer.score_indices(np.array([user]))).numpy()[0]
        scores = scores.astype(np.float64)
        scores[sorted(seen[user])] = -np.inf
        ranking = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > -np.inf]
        rel = relevant[user]
        for k in ks:
            top = ranking[:k]
            hit_ranks = [rank for rank, item in enumerate(top, start=1) if item in rel]
            ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(rel), k) + 1))
            sums[f"recall@{k}"] += len(hit_ranks) / len(rel)
            sums[f"precision@{k}"] += len(hit_ranks) / k
            sums[f"hit@{k}"] += float(bool(hit_ranks))
            sums[f"mrr@{k}"] += 1 / hit_ranks[0] if hit_ranks else 0.0
            sums[f"ndcg@{k}"] += sum(1 / math.log2(rank + 1) for rank in hit_ranks) / ideal
            sums[f"map@{k}"] += sum(
                n_found / rank for n_found, rank in enumerate(hit_ranks, start=1)
            ) / min(len(rel), k)
            covered[k].update(top)
    result = {key: total / len(relevant) for key, total in sums.items()}
    result.update({f"coverage@{k}": len(covered[k]) / len(truth.items) for k in ks})
    result["n_users"] = float(len(relevant))
    return result


class PureSVD:
    """Truncated SVD of the binary train matrix: a deterministic, non-trivial scorer."""

    scores_are_new = True  # a new product per call: the evaluator may mask it in place

    def __init__(self, train: Interactions, factors: int = FACTORS, seed: int = SEED) -> None:
        from scipy.sparse.linalg import svds

        u, s, vt = svds(train.to_csr().astype(np.float64), k=factors, random_state=seed)
        self.users = torch.from_numpy((u * s).astype(np.float32))
        self.items = torch.from_numpy(vt.T.astype(np.float32).copy())

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.users[torch.from_numpy(user_idx)] @ self.items.T


def load_ratings(folder: Path) -> pl.DataFrame:
    """(user_id, item_id, rating, timestamp) straight from the original files of the
    data set in ``folder`` (ml-latest-small's ratings.csv, else ``<name>.inter``)."""
    name = folder.name
    if name == "ml-latest-small":
        frame = pl.read_csv(
            folder / "ratings.csv", schema_overrides={"userId": pl.Utf8, "movieId": pl.Utf8}
        ).rename({"userId": "user_id", "movieId": "item_id"})
    else:
        frame = pl.read_csv(
            folder / f"{name}.inter",
            separator="\t",
            schema_overrides={"user_id:token": pl.Utf8, "item_id:token": pl.Utf8},
        ).rename(lambda column: column.split(":")[0])
    return frame.with_columns(pl.col("timestamp").cast(pl.Int64))


def random_split(frame: pl.DataFrame, seed: int = SEED) -> tuple[Interactions, Interactions]:
    """Seeded 80/20 per-row split; both parts share the user and item vocabularies."""
    whole = Interactions(frame)
    in_train = np.random.default_rng(seed).random(frame.height) < 0.8
    return whole.with_frame(frame.filter(in_train)), whole.with_frame(frame.filter(~in_train))


def median_seconds(run: Callable[[], Any], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(folder: Path) -> dict[str, Any]:
    name = folder.name
    train, test = random_split(load_ratings(folder))
    scorer = PureSVD(train)
    batched = evaluate(scorer, test, [train], ks=KS, batch_size=BATCH_SIZE)
    looped = evaluate_per_user(scorer, test, [train], ks=KS)
    assert batched.keys() == looped.keys(), (batched.keys(), looped.keys())
    for key, value in batched.items():
        assert math.isclose(value, looped[key], rel_tol=1e-9, abs_tol=1e-12), (key, value)
    batched_s = median_seconds(
        lambda: evaluate(scorer, test, [train], ks=KS, batch_size=BATCH_SIZE)
    )
    looped_s = median_seconds(lambda: evaluate_per_user(scorer, test, [train], ks=KS))
    n_users = int(batched["n_users"])
    return {
        "dataset": name,
        "train_rows": len(train),
        "test_rows": len(test),
        "users_evaluated": n_users,
        "items": len(test.items),
        "batched_seconds": batched_s,
        "per_user_seconds": looped_s,
        "batched_users_per_s": n_users / batched_s,
        "per_user_users_per_s": n_users / looped_s,
        "speedup": looped_s / batched_s,
        "metrics": batched,
    }


#: name: (interactions, users, items), as in the scale benchmark's 5M and 20M sizes.
SIZES = {"5M": (5_000_000, 100_000, 50_000), "20M": (20_000_000, 300_000, 200_000)}
SAMPLE_USERS = 4096  # evaluated users per size: the rates do not depend on how many
TRUTH_SHARE = 0.1


class RandomFactors:
    """A 64-factor scorer with seeded random vectors: a matrix product per chunk, new tensors."""

    scores_are_new = True

    def __init__(self, n_users: int, n_items: int, seed: int = SEED) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.users = torch.randn(n_users, FACTORS, generator=generator)
        self.items = torch.randn(n_items, FACTORS, generator=generator)

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.users[torch.from_numpy(user_idx)] @ self.items.T


def synthetic_parts(rows: int, n_users: int, n_items: int) -> tuple[Interactions, Interactions]:
    """Train and truth of SAMPLE_USERS users drawn from a synthetic table of ``rows``
    interactions (Zipf(0.9) items, lognormal(0, 1) activity, seed 0): only the sampled
    users' rows are built, on vocabularies of every user and item."""
    rng = np.random.default_rng(SEED)
    activity = rng.lognormal(0.0, 1.0, n_users)
    per_user = np.maximum(1, np.round(activity / activity.sum() * rows)).astype(np.int64)
    sample = np.sort(rng.choice(n_users, SAMPLE_USERS, replace=False))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    users = np.repeat(sample, per_user[sample])
    items = rng.permutation(n_items)[rng.choice(n_items, len(users), p=popularity)]
    in_truth = rng.random(len(users)) < TRUTH_SHARE
    user_vocab = Vocab([f"u{u}" for u in range(n_users)], kind="user")
    item_vocab = Vocab([f"i{i}" for i in range(n_items)], kind="item")

    def part(mask: np.ndarray) -> Interactions:
        frame = pl.DataFrame(
            {"user_id": user_vocab.decode(users[mask]), "item_id": item_vocab.decode(items[mask])}
        )
        return Interactions(frame, user_vocab, item_vocab)

    return part(~in_truth), part(in_truth)


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    started_cpu, started = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - started, time.process_time() - started_cpu


def gemm(scorer: RandomFactors, users: np.ndarray) -> None:
    """The evaluation's matrix product alone: chunks of BATCH_SIZE users into one output."""
    out = torch.empty(BATCH_SIZE, scorer.items.shape[0])
    for begin in range(0, len(users), BATCH_SIZE):
        chunk = torch.from_numpy(users[begin : begin + BATCH_SIZE])
        torch.mm(scorer.users[chunk], scorer.items.T, out=out[: len(chunk)])


def bench_size(name: str) -> dict[str, Any]:
    """Evaluation vs GEMM GFLOP/s at one synthetic size, alternating, median of REPEATS."""
    rows, n_users, n_items = SIZES[name]
    train, truth = synthetic_parts(rows, n_users, n_items)
    scorer = RandomFactors(n_users, n_items)
    users = np.unique(truth.indices()[0])
    flops = 2.0 * len(users) * n_items * FACTORS
    evaluate(scorer, truth, [train], ks=KS, batch_size=BATCH_SIZE)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {"gemm": [], "evaluation": []}
    for _ in range(REPEATS):  # alternating, so load changes hit both alike
        times["gemm"].append(timed(lambda: gemm(scorer, users)))
        times["evaluation"].append(
            timed(lambda: evaluate(scorer, truth, [train], ks=KS, batch_size=BATCH_SIZE))
        )
    # CPU seconds decide (one thread: on a shared machine wall time also counts waiting).
    gflops = {
        name: flops / statistics.median(cpu for _, cpu in runs) / 1e9
        for name, runs in times.items()
    }
    wall = {name: statistics.median(w for w, _ in runs) for name, runs in times.items()}
    return {
        "size": name,
        "interactions": rows,
        "users": n_users,
        "items": n_items,
        "users_evaluated": len(users),
        "train_rows": len(train),
        "runs_wall_cpu_seconds": times,
        "gemm_gflops": gflops["gemm"],
        "evaluation_gflops": gflops["evaluation"],
        "share_of_gemm": gflops["evaluation"] / gflops["gemm"],
        "share_of_gemm_wall": wall["gemm"] / wall["evaluation"],
        "load_average_1min_after": os.getloadavg()[0],
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        f"| {r['dataset']} | {r['users_evaluated']} | {r['items']} | "
        f"{r['batched_users_per_s']:,.0f} | {r['per_user_users_per_s']:,.0f} | "
        f"{r['speedup']:.1f}x | {r['metrics']['recall@20']:.4f} | {r['metrics']['ndcg@10']:.4f} |"
        for r in report["results"]
    ]
    machine = report["machine"]
    return "\n".join(
        [
            "# Evaluation throughput: batched vs per-user loop",
            "",
            f"{report['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"torch {report['torch']} ({report['torch_threads']} threads), "
            f"python {machine['python']}; 1-minute load average at start "
            f"{machine['load_average_1min']:.2f}.",
            "",
            f"Full ranking over all items with train masked, K = {report['ks']}, "
            f"PureSVD scorer ({FACTORS} factors), seeded random 80/20 per-row split "
            f"(seed {SEED}), batch size {BATCH_SIZE}, median of {REPEATS} runs. Both "
            "evaluators produced the same value for every metric (asserted).",
            "",
            "| data set | users | items | batched users/s | per-user users/s | speedup "
            "| recall@20 | ndcg@10 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            *synthetic_markdown(report.get("synthetic", [])),
        ]
    )


def synthetic_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The GEMM-share table, when synthetic sizes were run."""
    if not results:
        return []
    rows = [
        f"| {r['size']} | {r['users']:,} x {r['items']:,} | {r['users_evaluated']:,} | "
        f"{r['gemm_gflops']:.1f} | {r['evaluation_gflops']:.1f} | "
        f"{r['share_of_gemm']:.0%} | {r['share_of_gemm_wall']:.0%} | "
        f"{r['load_average_1min_after']:.1f} |"
        for r in results
    ]
    return [
        "## Near the hardware limit: evaluation vs the same GEMM",
        "",
        f"Synthetic data (Zipf(0.9) items, lognormal(0, 1) users, seed {SEED}); a "
        f"{FACTORS}-factor random scorer; {SAMPLE_USERS} sampled users with "
        f"{TRUTH_SHARE:.0%} of their rows as truth, the rest masked; K = {list(KS)}, "
        f"batch size {BATCH_SIZE}. GEMM: the same product as `torch.mm` into a "
        "preallocated output, timed alternately with the evaluation (median of "
        f"{REPEATS}). GFLOP/s = 2 · users · items · factors / CPU seconds (one thread); "
        "the wall-time share is given beside it, as on a shared machine wall time also "
        "counts waiting for a core.",
        "",
        "| size | users x items | evaluated users | GEMM GFLOP/s | evaluation GFLOP/s "
        "| share of GEMM (CPU) | share (wall) | load (1 min) after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument(
        "--sizes", default="5M,20M", help="synthetic sizes, comma-separated (5M, 20M) or none"
    )
    args = parser.parse_args()
    sizes = [] if args.sizes == "none" else args.sizes.split(",")
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; use {', '.join(SIZES)} or none")
    names = ("ml-latest-small", "ml-100k")
    root = data_root.data_root(args.data_root, *names)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            # other work on the machine slows the multi-threaded batched side most
            "load_average_1min": os.getloadavg()[0],
        },
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "ks": list(KS),
        "repeats": REPEATS,
        "results": [bench(root / name) for name in names],
        "synthetic": [bench_size(size) for size in sizes],
    }
    write_text(RESULTS / "evaluation_throughput.json", json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "evaluation_throughput.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
