"""The Markdown page of ``vs_recbole.py``: per data set and model, the two toolkits side
by side with tastemaker/RecBole ratios and the targets; SASRec under both protocols."""

from __future__ import annotations

import json
from typing import Any

from vs_recbole import ACCURACY_TOLERANCE, DATASETS, MODELS, RESULTS, SPEED_TARGET
from vs_recbole_summary import summarize

ROWS = (  # (label, key, format, target text)
    ("test NDCG@10", "test_ndcg@10", "{:.4f}", f"≥ {1 - ACCURACY_TOLERANCE:.2f}"),
    ("test Recall@10", "test_recall@10", "{:.4f}", ""),
    ("best valid NDCG@10", "best_valid_ndcg@10", "{:.4f}", ""),
    ("s / training epoch (median)", "seconds_per_epoch", "{:.3f}", ""),
    ("CPU s / training epoch (median)", "cpu_seconds_per_epoch", "{:.3f}", f"≤ {SPEED_TARGET}"),
    ("epochs run", "epochs_run", "{:g}", ""),
    ("s to RecBole's best valid NDCG@10", "time_to_recbole_best", "{:.1f}", f"≤ {SPEED_TARGET}"),
    ("full-ranking eval on test (s)", "eval_seconds", "{:.3f}", f"≤ {SPEED_TARGET}"),
    ("peak RSS (MiB)", "peak_rss_mb", "{:.0f}", "≤ 1"),
)


def sequential_rows(snapshot: int | None) -> tuple[tuple[str, str, str, str], ...]:
    """SASRec's extra rows: the other protocol, and both after ``snapshot`` epochs."""
    at = f"after epoch {snapshot}"
    return (
        ("test NDCG@10, seen items not excluded", "test_ndcg@10_not_excluded", "{:.4f}", ""),
        ("test Recall@10, seen items not excluded", "test_recall@10_not_excluded", "{:.4f}", ""),
        (f"test NDCG@10 {at}, seen excluded", "epoch_ndcg@10", "{:.4f}", ""),
        (f"test Recall@10 {at}, seen excluded", "epoch_recall@10", "{:.4f}", ""),
        (f"test NDCG@10 {at}, not excluded", "epoch_ndcg@10_not_excluded", "{:.4f}", ""),
        (f"test Recall@10 {at}, not excluded", "epoch_recall@10_not_excluded", "{:.4f}", ""),
    )


def _cell(value: float | None, fmt: str, missing: str) -> str:
    return fmt.format(value) if value is not None else missing


def model_markdown(dataset: str, model: str, entry: dict[str, Any]) -> list[str]:
    """One model's section: settings, the table with targets, and the commands."""
    s = entry["summary"]
    loads = s["load_average_1min"]
    lines = [
        f"### {model} on {dataset}",
        "",
        f"{entry['date']}, `{entry['command']}`: {s['repeats']} repeat(s), seeds "
        f"{entry['seeds']}; 1-minute load average during the runs {loads['min']:.1f}–"
        f"{loads['max']:.1f} (median {loads['median']:.1f}); max {entry['max_epochs']} epochs, "
        f"time budget {entry['time_budget'] or 'none'} s per run, {entry['threads']} torch "
        "thread(s) per worker.",
        f"Protocol: {entry['protocol']}. Hyper-parameters: `{json.dumps(entry['params'])}`.",
        "",
        "| | RecBole | tastemaker | tastemaker / RecBole | target | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    rows = ROWS
    if model == "sasrec":
        rows = (
            ("test NDCG@10, seen items excluded", *ROWS[0][1:]),
            ("test Recall@10, seen items excluded", *ROWS[1][1:]),
            *sequential_rows(entry.get("snapshot_epoch")),
            ("best valid NDCG@10 (own protocol each)", *ROWS[2][1:]),
            *ROWS[3:6],
            ("s to RecBole's best valid NDCG@10 (own protocol each)", *ROWS[6][1:]),
            *ROWS[7:],
        )
    for label, key, fmt, target in rows:
        rb, tm, ratio = s["recbole"].get(key), s["tastemaker"].get(key), s["ratios"].get(key)
        met = s["targets_met"].get(key)
        verdict = "" if met is None else ("met" if met else "**not met**")
        shown_target = target if key in s["targets_met"] else ""
        lines.append(
            f"| {label} | {_cell(rb, fmt, '–')} | {_cell(tm, fmt, 'not reached')} | "
            f"{f'{ratio:.2f}' if ratio is not None else '–'} | {shown_target} | {verdict} |"
        )
    if model != "sasrec":  # SASRec's validations follow two protocols: not comparable
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
            '"best" is the best within the budget, not converged.',
        ]
    if model == "sasrec":
        own = [r["recbole"].get("recbole_evaluate") for r in entry["runs"]]
        mine = [r["recbole"]["test_protocols"]["not_excluded"] for r in entry["runs"]]
        same = all(
            o is not None and abs(o["ndcg@10"] - m["ndcg@10"]) < 1e-4
            for o, m in zip(own, mine, strict=True)
        )
        lines += [
            "",
            "RecBole's own `evaluate` (its sequential protocol) gave the same not-excluded "
            "test NDCG@10 as this benchmark's ranking of its scores in every run (to 1e-4)."
            if same
            else "**RecBole's own `evaluate` differs from this benchmark's not-excluded "
            f"ranking of its scores**: {own} vs {mine}.",
        ]
    lines += ["", "Commands (one repeat; EXPORT is the exported split):", "", "```"]
    lines += [*entry["commands"], "```", ""]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The whole page."""
    m = report["machine"]
    lines = [
        "# tastemaker vs RecBole 1.2.1 on ml-100k and ml-latest-small",
        "",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['processor'] or 'n/a'}), python "
        f"{m['python']}; torch {m['torch_tastemaker']} (tastemaker) and "
        f"{m['torch_recbole']} (RecBole). Other work shared the machine (see the load "
        "averages), so runs alternate between the toolkits and the tables report medians "
        "over repeats. Written by `benchmarks/vs_recbole.py`.",
        "",
        "Both toolkits read the same split of each data set: tastemaker makes it and "
        "exports it to RecBole's pre-split atomic files (`benchmark_filename`), so neither "
        "toolkit's own splitter plays a part. tastemaker's defaults were tuned on ml-100k; "
        "ml-latest-small was not used for tuning.",
        "",
        "Seconds per training epoch exclude validation (wall-clock and the worker's CPU "
        "seconds); time to RecBole's best counts wall-clock seconds from the start of "
        "`fit` (training plus every validation) until the validation NDCG@10 (4 decimals) "
        "first reaches RecBole's best (the median over repeats; a run that never reaches "
        "it counts as infinitely late). Evaluation: full ranking of the test part over all "
        "items, each toolkit's default evaluation batch, median of repeated calls on the "
        "trained model. Peak RSS is the worker process's maximum resident set. Targets: "
        f"test NDCG@10 within {ACCURACY_TOLERANCE:.0%} of RecBole's or better; CPU s/epoch "
        f"(BPR, LightGCN) and time to RecBole's best at most {SPEED_TARGET} of RecBole's; "
        "evaluation at least 2x faster; peak RSS no higher.",
        "",
        "SASRec: RecBole trains on every prefix of a sequence (one target per sample), "
        "tastemaker on whole windows (every target of a window at once), so one epoch is "
        "one pass over the same targets but costs each toolkit very different work. Test "
        "metrics come under both ranking protocols: the user's train and valid items "
        "*excluded* from the candidates (tastemaker's default, and what both toolkits do "
        "for BPR and LightGCN) and *not excluded* (RecBole's default for sequential "
        "models), after the best validation epoch (each toolkit validating under its own "
        "default) and after an equal number of epochs (the weights after that epoch).",
        "",
    ]
    missing = [
        f"- {model} on {dataset}: `python benchmarks/vs_recbole.py --quick --models {model} "
        f"--datasets {dataset}`"
        for dataset in DATASETS
        for model in MODELS
        if model not in report["datasets"].get(dataset, {})
    ]
    if missing:
        lines += ["Not measured in the runs below (run each with):", "", *missing, ""]
    lines += [*report.get("notes", []), ""] if report.get("notes") else []
    for dataset in DATASETS:
        models = report["datasets"].get(dataset, {})
        if models:
            lines += [f"## {dataset}", ""]
        for model in MODELS:
            if model in models:
                lines += model_markdown(dataset, model, models[model])
    return "\n".join(lines)


def render() -> None:
    """Summaries and the page again from the runs in the JSON (after a change of either)."""
    from tastemaker.atomic import write_text

    json_path = RESULTS / "vs_recbole.json"
    if not json_path.exists():
        raise SystemExit(f"{json_path} does not exist: run the benchmark first")
    report = json.loads(json_path.read_text())
    for models in report["datasets"].values():
        for model, entry in models.items():
            pairs = [(run["recbole"], run["tastemaker"]) for run in entry["runs"]]
            entry["summary"] = summarize(model, pairs)
    write_text(json_path, json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "vs_recbole.md", markdown(report))
