"""Scale: tastemaker vs implicit 0.7.3 on synthetic data of 1M, 5M and 20M interactions.

Run from the repository root: ``.venv/bin/python benchmarks/scale.py [--sizes 1M,5M,20M]``.
Writes ``benchmarks/results/scale.{md,json}`` after every step (sizes and steps not run
keep their earlier figures). On a machine short of memory the 20M steps run one per
process: ``--steps prepare --split-dir DIR``, then ``--steps bpr --split-dir DIR`` and
``--steps als,evaluation --split-dir DIR`` (each loads the split ``DIR`` holds).

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
  shows. For BPR also accuracy against time: validation NDCG@10 (train masked; a
  seeded sample of validation users) after every epoch, off the clock, against the
  CPU seconds since ``fit`` began. ``--bpr-set reg=3e-4`` (repeatable) adds a tastemaker
  fit with those settings beside the defaults: the data have no user-item structure
  (popularity ranking is the best any model can do), which rewards a weaker L2 than
  real data do.
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
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch

from scale_clock import EpochClock, Measure, measured, peak_gb, reset_peak
from scale_report import report
from tastemaker import Catalog, Dataset, Interactions, Split
from tastemaker.atomic import write_text
from tastemaker.data.filters import deduplicate, k_core
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import random_ratio
from tastemaker.errors import ConfigError
from tastemaker.evaluation import evaluate
from tastemaker.models import ALS, BPR

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"1M": (20_000, 10_000, 1_000_000), "5M": (100_000, 50_000, 5_000_000),
         "20M": (300_000, 200_000, 20_000_000)}  # fmt: skip
SEED, SPLIT_SEED, EPOCHS, FACTORS, EVAL_USERS = 0, 2020, 3, 64, 10_000
VALID_USERS = 5_000  # BPR's accuracy after each epoch: validation users, seeded (SEED + 1)


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


def prepare(frame: pl.DataFrame) -> Split:
    """Dedupe, 5-core, ratio split: the public data API end to end."""
    catalog = Catalog(pl.DataFrame({"item_id": frame["item_id"].unique().sort()}))
    ds = Dataset(catalog, Interactions(frame), Manifest(name="synthetic"))
    ds = deduplicate(ds)  # each step rebinds ds: the step before it is freed
    ds = k_core(ds, 5, 5)
    return random_ratio(ds, (0.8, 0.1, 0.1), seed=SPLIT_SEED)


Probe = Callable[[Any], float]  # a score of a model as it stands (after an epoch)


def run_ours(
    kind: str, train: Interactions, probe: Probe | None = None, **params: Any
) -> tuple[Any, EpochClock]:
    model = (BPR if kind == "bpr" else ALS)(factors=FACTORS, epochs=EPOCHS, seed=SEED, **params)
    model.on_epoch = clock = EpochClock(None if probe is None else lambda: probe(model))
    reset_peak()
    clock.start()
    model.fit(train)
    return model, clock


def run_implicit(
    kind: str, matrix: sp.csr_matrix, probe: Probe | None = None
) -> tuple[Any, EpochClock]:
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
    scorer = FactorScorer.of  # the factors as they stand (implicit updates them in place)
    clock = EpochClock(None if probe is None else lambda: probe(scorer(model)))
    reset_peak()
    clock.start()
    model.fit(matrix, show_progress=False, callback=clock)
    return model, clock


def epoch_measure(clock: EpochClock) -> Measure:
    cpu, wall = clock.per_epoch()
    return Measure(cpu, wall, peak_gb())


class FactorScorer:
    """A user x item factor model (implicit's) for tastemaker's evaluator."""

    scores_are_new = True

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.users, self.items = torch.from_numpy(users), torch.from_numpy(items)

    @classmethod
    def of(cls, model: Any) -> FactorScorer:
        return cls(model.user_factors, model.item_factors)

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.users[torch.from_numpy(user_idx)] @ self.items.T


def sampled(part: Interactions, users: np.ndarray) -> Interactions:
    return part.with_frame(part.frame.filter(pl.col("user_id").is_in(pl.Series(users).implode())))


def ndcg(scorer: Any, split: Split, users: np.ndarray, part: str = "test") -> float:
    """NDCG@10 on ``part`` (test: train and valid masked; valid: train masked)."""
    known = [split.train, split.valid] if part == "test" else [split.train]
    target = sampled(split.test if part == "test" else split.valid, users)
    return float(evaluate(scorer, target, exclude=known, ks=(10,))["ndcg@10"])


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


STEPS = ("bpr", "als", "evaluation", "prepare")


def bench_size(
    name: str,
    repeats: int,
    steps: tuple[str, ...],
    record: Callable[[dict[str, Any]], None],
    previous: dict[str, Any] | None = None,
    split_dir: Path | None = None,
    bpr_variants: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Measure the ``steps`` of one size, calling ``record`` with the result after each
    step (a long run keeps what it measured); steps not run keep ``previous``'s figures.
    ``bpr_variants``: also fit tastemaker's BPR with each of these settings ("k=v,k=v")
    for the accuracy rows.

    The prepared split is saved to ``split_dir`` (a temporary folder if None) and read
    back with ``Split.load``, both measured; without the ``prepare`` step an existing
    ``split_dir`` is only loaded, so each 20M step can run in a fresh process.
    """
    result: dict[str, Any] = dict(previous or {}, size=name)
    result["steps"] = dict(result.get("steps", {}))
    result["dates"] = result.get("dates") or {k: result.get("date", "?") for k in result["steps"]}
    result["load_average"] = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = split_dir or Path(tmp) / "split"
        if "prepare" in steps or not folder.is_dir():
            frame = generate(*SIZES[name])
            split, prep = measured(partial(prepare, frame))
            del frame
            split.save(folder)
            del split
            result.update(prepare=asdict(prep), repeats=repeats, code=_code_state())
            result["dates"]["prepare"] = _now()
        split, load = measured(lambda: Split.load(folder))
    counts = split.counts()
    result.update(
        users=counts["users"], items=counts["items"], split_load=asdict(load),
        interactions=sum(counts[p] for p in ("train", "valid", "test")),
    )  # fmt: skip
    result["load_average"]["after"] = os.getloadavg()
    record(result)
    if not {"bpr", "als", "evaluation"} & set(steps):
        return result
    train = split.train
    matrix = train.to_csr()
    rng = np.random.default_rng(SEED)
    test_users = np.unique(split.test.frame["user_id"].to_numpy())
    users = rng.choice(test_users, min(EVAL_USERS, len(test_users)), replace=False)
    valid_users = np.unique(split.valid.frame["user_id"].to_numpy())
    valid_users = np.random.default_rng(SEED + 1).choice(
        valid_users, min(VALID_USERS, len(valid_users)), replace=False
    )
    for kind in ("bpr", "als"):
        if kind not in steps and not (kind == "als" and "evaluation" in steps):
            continue
        fits = {"tastemaker": partial(run_ours, kind, train),
                "implicit": partial(run_implicit, kind, matrix)}  # fmt: skip
        for spec in bpr_variants if kind == "bpr" else ():
            fits[f"tastemaker, {spec}"] = partial(run_ours, kind, train, **settings(spec))
        runs: dict[str, list[Measure]] = {k: [] for k in fits}
        curves: dict[str, list[list[dict[str, float]]]] = {k: [] for k in fits}
        models: dict[str, Any] = {}
        probe = partial(ndcg, split=split, users=valid_users, part="valid")
        for _ in range(repeats):  # timed fits are never probed: a probe evicts the caches
            for toolkit, fit in fits.items():
                models.pop(toolkit, None)  # its last fit is not resident in this one's peak
                models[toolkit], clock = fit(None)
                runs[toolkit].append(epoch_measure(clock))
            print(name, kind, {k: asdict(v[-1]) for k, v in runs.items()}, flush=True)
        for toolkit, fit in fits.items() if kind == "bpr" else ():  # then one probed fit each
            models.pop(toolkit, None)
            models[toolkit], clock = fit(probe)
            curves[toolkit].append(clock.curve())
        ours, theirs = models["tastemaker"], models["implicit"]
        result["steps"][kind] = {
            "runs": {k: [asdict(m) for m in v] for k, v in runs.items()},
            **({"curves": curves} if kind == "bpr" else {}),
            "ndcg@10": {
                k: ndcg(FactorScorer.of(m) if k == "implicit" else m, split, users)
                for k, m in models.items()
            },
        }
        result["load_average"]["after"] = os.getloadavg()
        result["dates"][kind], result["code"] = _now(), _code_state()
        result["repeats"] = repeats
        record(result)
        if kind == "als" and "evaluation" in steps:
            known = Interactions.concat([split.train, split.valid]).to_csr()
            result["steps"]["evaluation"] = bench_evaluation(ours, theirs, split, known, users)
            result["load_average"]["after"] = os.getloadavg()
            result["dates"]["evaluation"] = _now()
            record(result)
        del models, ours, theirs
    return result


def settings(spec: str) -> dict[str, str]:
    """``"reg=3e-4,negative_candidates=2"`` as keyword arguments (the config parses them)."""
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"'{spec}' is not K=V[,K=V]")
    return {key.strip(): value.strip() for key, value in pairs}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _code_state() -> dict[str, str]:
    """Which code was measured: the commit, and a hash of the files another change may
    touch during a session (so two runs of one commit can still be told apart)."""
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root
    ).stdout.strip()
    files = ("models/bpr.py", "models/als.py", "data/splits.py", "data/dataset.py")
    return {"commit": head or "unknown"} | {
        f: hashlib.sha256((root / "src/tastemaker" / f).read_bytes()).hexdigest()[:12]
        for f in files
        if (root / "src/tastemaker" / f).is_file()
    }


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


def _previous(out: Path) -> dict[str, dict[str, Any]]:
    """Results of an earlier run by size, kept for the sizes and steps not rerun."""
    try:
        data = json.loads((out / "scale.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    meta = data.get("meta", {})
    return {r["size"]: {"date": meta.get("date"), "repeats": meta.get("repeats"), **r}
            for r in data.get("results", [])}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1M,5M,20M", help="comma-separated: 1M, 5M, 20M")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"of {', '.join(STEPS)}")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per step")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--split-dir", type=Path, help="keep the prepared split here (one size): later runs "
        "without the prepare step load it, so steps can run in separate processes",
    )  # fmt: skip
    parser.add_argument(
        "--bpr-set", action="append", default=[], metavar="K=V[,K=V]", help="also fit "
        "tastemaker's BPR with these settings (accuracy rows; repeat for more fits)",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    if {*sizes} - {*SIZES} or not sizes or {*steps} - {*STEPS} or not steps or args.repeats < 1:
        parser.exit(2, f"error: --sizes takes {', '.join(SIZES)}, --steps {', '.join(STEPS)}, "
                       "--repeats >= 1\n")  # fmt: skip
    try:
        for spec in args.bpr_set:
            BPR(**settings(spec))
    except (ConfigError, ValueError) as exc:
        parser.exit(2, f"error: --bpr-set: {exc}\n")
    import implicit
    import torch._dynamo  # torch.optim imports it on first use: an import, not training
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    results = _previous(args.out)
    meta = {
        "eval_users": EVAL_USERS, "valid_users": VALID_USERS,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "implicit": implicit.__version__,
    }  # fmt: skip

    def record(result: dict[str, Any]) -> None:
        results[result["size"]] = result
        ordered = [results[s] for s in SIZES if s in results]
        write_text(
            args.out / "scale.json", json.dumps({"meta": meta, "results": ordered}, indent=2)
        )
        write_text(args.out / "scale.md", report(ordered, meta))

    with threadpool_limits(1):
        for size in sizes:
            bench_size(
                size, args.repeats, steps, record, results.get(size), args.split_dir,
                tuple(args.bpr_set),
            )  # fmt: skip
    print(report([results[s] for s in SIZES if s in results], meta))


if __name__ == "__main__":
    main()
