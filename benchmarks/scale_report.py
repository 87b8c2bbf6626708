"""The Markdown report of ``benchmarks/scale.py``: one row per size and step measured so
far (a partial run too), with the issue's targets at the sizes they name."""

from __future__ import annotations

import statistics
from typing import Any

from tastemaker.reporting.markdown import markdown_table

TARGETED = ("5M", "20M")  # the sizes the targets name


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _target(size: str, ratio: float, goal: float, hard: float | None = None) -> str:
    if size not in TARGETED:
        return "– (no target at this size)"
    if ratio <= goal:
        return f"met (≤ {goal:g}x)"
    miss = f"missed by {ratio / goal - 1:.0%}"
    return miss + (f", within {hard:g}x" if hard is not None and ratio <= hard else "")


def _epoch_row(size: str, kind: str, step: dict[str, Any]) -> list[str]:
    ours, theirs = step["runs"]["tastemaker"], step["runs"]["implicit"]
    ratio = _median(ours, "cpu_s") / _median(theirs, "cpu_s")
    peaks = [max(m["peak_rss_gb"] for m in runs) for runs in (ours, theirs)]
    return [
        size, f"{kind.upper()} epoch", f"{_median(ours, 'cpu_s'):.2f}",
        f"{_median(theirs, 'cpu_s'):.2f}", f"{ratio:.2f}x",
        f"{_median(ours, 'wall_s'):.2f} / {_median(theirs, 'wall_s'):.2f}",
        f"{peaks[0]:.2f} / {peaks[1]:.2f}",
        f"{step['ndcg@10']['tastemaker']:.4f} / {step['ndcg@10']['implicit']:.4f}",
        _target(size, ratio, 1.0, 1.5),
    ]  # fmt: skip


def _evaluation_row(size: str, ev: dict[str, Any]) -> list[str]:
    share = {k: ev[k]["gflops"] / ev["gemm_gflops"] for k in ("tastemaker", "implicit")}
    mine = share["tastemaker"]
    met = "met (≥ 50%)" if mine >= 0.5 else f"missed: {mine:.0%} of ≥ 50%"
    return [
        size, f"evaluation ({ev['users']:,} users), share of a "
        f"{ev['gemm_gflops']:.1f} GFLOP/s GEMM",
        f"{ev['tastemaker']['cpu_s']:.2f}", f"{ev['implicit']['cpu_s']:.2f}",
        f"{share['tastemaker']:.0%} / {share['implicit']:.0%}",
        f"{ev['tastemaker']['wall_s']:.2f} / {ev['implicit']['wall_s']:.2f}",
        f"{ev['tastemaker']['peak_rss_gb']:.2f} / {ev['implicit']['peak_rss_gb']:.2f}", "–",
        met if size in TARGETED else "– (no target at this size)",
    ]  # fmt: skip


def _data_rows(size: str, prep: dict[str, float] | None, load: dict[str, float]) -> list[list[str]]:
    """The prepare row (when this size was prepared by a run; a split folder may have
    been only loaded) and the ``Split.load`` row."""
    loaded = [size, "Split.load", f"{load['cpu_s']:.2f}", "–", "–", f"{load['wall_s']:.2f}",
              _peak(load), "–", "–"]  # fmt: skip
    if prep is None:
        return [loaded]
    goal = "– (target at 20M)"
    if size == "20M":
        goal = (
            "met" if prep["cpu_s"] <= 60 and prep["peak_rss_gb"] <= 2.5 else
            f"missed ({prep['cpu_s']:.0f} CPU-s of ≤ 60, {prep['peak_rss_gb']:.2f} GB of ≤ 2.5)"
        )  # fmt: skip
    return [
        [size, "prepare (dedupe, 5-core, 8:1:1)", f"{prep['cpu_s']:.1f}", "–", "–",
         f"{prep['wall_s']:.1f}", _peak(prep), "–", goal],
        loaded,
    ]  # fmt: skip


def _curve_rows(size: str, step: dict[str, Any]) -> list[list[str]]:
    """Per fit: after each epoch, CPU seconds since the fit began (median over runs) and
    validation NDCG@10, so accuracy is read against time, not only seconds per epoch."""
    rows, curves, test = [], step["curves"], step["ndcg@10"]
    last = statistics.median(run[-1]["ndcg@10"] for run in curves["implicit"])
    for toolkit, runs in curves.items():
        cells = [
            f"{statistics.median(run[k]['cpu_s'] for run in runs):.2f} s: "
            f"{statistics.median(run[k]['ndcg@10'] for run in runs):.4f}"
            for k in range(len(runs[0]))
        ]
        ratio = statistics.median(run[-1]["ndcg@10"] for run in runs) / last
        rows.append([size, toolkit, *cells, f"{ratio:.2f}", f"{test[toolkit]:.4f}"])
    return rows


def _peak(step: dict[str, float]) -> str:
    """The step's peak RSS, and what was resident when it began (where recorded)."""
    start = step.get("start_rss_gb")
    return f"{step['peak_rss_gb']:.2f}" + ("" if start is None else f" (at start {start:.2f})")


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The Markdown table of every size and step measured so far (a partial run too)."""
    rows = []
    for r in results:
        size, steps = r["size"], r["steps"]
        rows += [_epoch_row(size, kind, steps[kind]) for kind in ("bpr", "als") if kind in steps]
        if "evaluation" in steps:
            rows.append(_evaluation_row(size, steps["evaluation"]))
        rows += _data_rows(size, r.get("prepare"), r["split_load"])
    curves = [
        row
        for r in results
        if "curves" in r["steps"].get("bpr", {})
        for row in _curve_rows(r["size"], r["steps"]["bpr"])
    ]
    header = ["size", "step", "tastemaker CPU-s", "implicit CPU-s", "ratio (CPU)",
              "wall s (tm / imp)", "peak RSS GB (tm / imp)", "test NDCG@10 (tm / imp)",
              "target"]  # fmt: skip
    sizes = "; ".join(
        f"{r['size']} (measured {_dates(r)}, "
        f"{r.get('repeats', meta.get('repeats', '?'))} alternating runs"
        + (f", commit {r['code']['commit']}" if "code" in r else "")
        + f"): {r['interactions']:,} interactions, {r['users']:,} users x {r['items']:,} "
        f"items, load average {r['load_average']['before'][0]:.1f} before / "
        f"{r['load_average']['after'][0]:.1f} after"
        for r in results
    )
    return "\n".join([
        "# Scale: tastemaker vs implicit 0.7.3 (one thread each)", "",
        f"Written by `benchmarks/scale.py` ({meta['machine']}; torch {meta['torch']}, "
        f"implicit {meta['implicit']}; medians of alternating runs; seeds: data 0, split "
        "2020, models 0). See the script's docstring for the data generator and the "
        "protocol.", "",
        markdown_table(header, rows), "",
        f"Data: {sizes}.", "",
        "Epochs are the mean of epochs 2-3 of a 3-epoch fit (CPU seconds of the process, "
        "one thread); NDCG@10 is measured after those 3 epochs on a seeded sample of "
        f"{meta['eval_users']:,} test users. The evaluation share is GFLOP/s of the scoring "
        "product (2·users·items·factors per CPU second) over a plain GEMM of the same shapes. "
        "Preparation and `Split.load` include everything those calls do (Polars on its "
        "default threads; CPU seconds of all threads).",
        *_curve_section(curves, meta),
    ]) + "\n"  # fmt: skip


def _curve_section(rows: list[list[str]], meta: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    epochs = [f"epoch {k}: CPU-s, valid NDCG@10" for k in range(1, len(rows[0]) - 3)]
    header = ["size", "fit", *epochs, "last valid NDCG ÷ implicit's", "test NDCG@10"]
    return [
        "", "## BPR: accuracy against training time", "",
        markdown_table(header, rows), "",
        "One fit per toolkit after the timed ones (a probe between epochs would disturb "
        "their timing); its time counts from the call to `fit` (setup included: tastemaker builds "
        "its training matrix and negative sampler from the interactions, implicit gets a "
        "ready CSR matrix) to the end of each epoch; validation NDCG@10 (train masked) on "
        f"a seeded sample of {meta.get('valid_users', '?'):,} validation users is taken "
        "after every epoch, off the clock.",
    ]  # fmt: skip


def _dates(result: dict[str, Any]) -> str:
    """When each step of a size was measured (runs may update a size a step at a time)."""
    dates = result.get("dates") or {"all steps": result.get("date", "?")}
    return ", ".join(f"{step} {date}" for step, date in dates.items())
