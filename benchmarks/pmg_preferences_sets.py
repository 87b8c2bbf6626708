"""Do the keyword defaults hold on users they were not chosen on? Two user sets side by side.

Run with ``.venv/bin/python benchmarks/pmg_preferences_sets.py`` after
``benchmarks/pmg_preferences.py`` wrote both sets (``--help``): the set the
defaults were chosen on (``pmg_preferences.json``, ``--seed 0``) and a disjoint one
(``pmg_preferences_seed1.json``, ``--seed 1 --disjoint-from 0``), and, where it
exists, Gemma 3 270M's run on a subset (``pmg_preferences_gemma.json``). The
sets must share no user (checked here again). The movies scenario's defaults
under test: the statistical extractor rather than SmolLM2, and user keywords that
keep the genres and tags the history lists. Writes
``benchmarks/results/pmg_preferences_sets.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pmg_preferences import GEMMA, bootstrap_ci, paired
from tastemaker.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("ndcg@20", "recall@20")
# (label, a, b): the comparisons behind the defaults, a - b
DEFAULTS = (
    ("SmolLM2 - statistical (default: statistical)", "smollm2", "statistical"),
    (
        "listed values kept - dropped, SmolLM2 (default: kept)",
        "smollm2",
        "smollm2, listed values dropped",
    ),
    ("statistical - popular", "statistical", "popular"),
)


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run benchmarks/pmg_preferences.py first")
    return json.loads(path.read_text())


def values(record: dict[str, Any], name: str, metric: str) -> np.ndarray:
    return np.asarray(record["per_user"][name][metric], dtype=np.float64)


def cell(summary: dict[str, Any]) -> str:
    return f"{summary['mean']:.4f} [{summary['ci95'][0]:.4f}, {summary['ci95'][1]:.4f}]"


def diff_cell(d: dict[str, Any]) -> str:
    verdict = "a" if d["ci95"][0] > 0 else "b" if d["ci95"][1] < 0 else "="
    return (
        f"{d['mean_diff']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] "
        f"({d['wins']}/{d['losses']}/{d['ties']}) {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chosen", type=Path, default=RESULTS / "pmg_preferences.json")
    parser.add_argument("--fresh", type=Path, default=RESULTS / "pmg_preferences_seed1.json")
    parser.add_argument(
        "--fresh-llm",
        type=Path,
        default=RESULTS / "pmg_preferences_seed1_smollm2.json",
        help="SmolLM2 on a --subset of the fresh users (when the full set ran without it)",
    )
    parser.add_argument("--gemma", type=Path, default=RESULTS / "pmg_preferences_gemma.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = load(args.chosen)
    fresh = {"fresh (seed 1)": load(args.fresh)}
    if args.fresh_llm.is_file():
        subset = load(args.fresh_llm)
        fresh[f"fresh, first {subset['users']} (seed 1)"] = subset
    sets = {"chosen on (seed 0)": chosen, **fresh}
    seen = set(chosen["per_user"]["user_ids"])
    for r in fresh.values():
        if shared := seen & set(r["per_user"]["user_ids"]):
            raise SystemExit(f"the sets share users {sorted(shared)}: not a fresh set")
    seed = 0
    pooled: dict[str, Any] = {}
    for label, a, b in DEFAULTS:  # the chosen set and the largest fresh one that ran both
        other = next((r for r in fresh.values() if has(r, a, b)), None)
        if other is None or not has(chosen, a, b):
            continue
        pooled[label] = {
            m: paired(
                np.concatenate([values(chosen, a, m), values(other, a, m)]),
                np.concatenate([values(chosen, b, m), values(other, b, m)]),
                seed,
            )
            for m in METRICS
        }
    per_set = {
        name: {
            label: {m: paired(values(r, a, m), values(r, b, m), seed) for m in METRICS}
            for label, a, b in DEFAULTS
            if has(r, a, b)
        }
        for name, r in sets.items()
    }
    means = {
        name: {
            ex: {m: r["summary"][ex][m] for m in METRICS}
            for ex in ("statistical", "smollm2", "smollm2, listed values dropped", "popular")
            if ex in r["summary"]
        }
        for name, r in sets.items()
    }
    gemma = load(args.gemma) if args.gemma.is_file() else None
    record = {
        "benchmark": "pmg_preferences_sets",
        "sets": {
            name: {
                "users": len(r["per_user"]["user_ids"]),
                "seed": r["settings"]["seed"],
                "disjoint_from": r["settings"].get("disjoint_from"),
                "subset": r["settings"].get("subset"),
                "no_llm": r["settings"]["no_llm"],
                "max_new_tokens": r["settings"].get("max_new_tokens", 64),
                "loadavg": r["machine"]["loadavg"],
            }
            for name, r in sets.items()
        },
        "shared_users": 0,
        "means": means,
        "differences": per_set,
        "pooled": pooled,
        "gemma_subset": gemma_summary(gemma, chosen) if gemma else None,
    }
    write_text(args.out / "pmg_preferences_sets.json", json.dumps(record, indent=2) + "\n")
    markdown = render(record)
    write_text(args.out / "pmg_preferences_sets.md", markdown)
    print(markdown)


def has(record: dict[str, Any], *names: str) -> bool:
    return all(n in record["per_user"] for n in names)


def gemma_summary(record: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """Gemma's subset run: per extractor means with intervals, paired differences, quality.

    Without SmolLM2 in the same run, SmolLM2's per-user values come from the seed-0
    run for the same users; the statistical values of both runs must then agree
    (the same users, the same deterministic extractor), which is checked.
    """
    summary = dict(record["summary"])
    comparisons = dict(record["comparisons"])
    cross = "smollm2" not in record["per_user"]
    if cross:
        rows = [chosen["per_user"]["user_ids"].index(u) for u in record["per_user"]["user_ids"]]
        for m in METRICS:
            here = values(record, "statistical", m)
            there = values(chosen, "statistical", m)[rows]
            if not np.allclose(here, there, atol=1e-6):
                raise SystemExit(f"statistical {m} differs between the runs: no cross-run pairing")
        smollm2 = {m: values(chosen, "smollm2", m)[rows] for m in METRICS}
        summary["smollm2"] = {
            m: {"mean": float(v.mean()), "ci95": list(bootstrap_ci(v, 0))}
            for m, v in smollm2.items()
        }
        comparisons[f"{GEMMA} vs smollm2"] = {
            m: paired(values(record, GEMMA, m), smollm2[m], 0) for m in METRICS
        }
    names = [n for n in (GEMMA, "smollm2", "statistical", "popular") if n in summary]
    return {
        "smollm2_from_seed0_run": cross,
        "users": record["users"],
        "user_ids": record["per_user"]["user_ids"],
        "settings": {k: record["settings"][k] for k in ("seed", "subset", "max_new_tokens")},
        "loadavg": record["machine"]["loadavg"],
        "summary": {n: summary[n] for n in names},
        "comparisons": {
            k: v
            for k, v in comparisons.items()
            if k in (f"{GEMMA} vs smollm2", f"{GEMMA} vs statistical", "smollm2 vs statistical")
        },
        "quality": record["keyword_quality"],
        "llm": {
            m: {k: v[k] for k in ("layout", "load_s", "s_per_user", "s_per_item")}
            for m, v in record["llm"].items()
        },
        "statistical_s_per_user": record["seconds"]["statistical_per_user"],
        "note": record["gemma3_270m"],
    }


def render(record: dict[str, Any]) -> str:
    sets = record["sets"]
    lines = [
        "# Keyword defaults on users they were not chosen on",
        "",
        "`benchmarks/pmg_preferences_sets.py`, from the runs of `benchmarks/pmg_preferences.py` "
        "named below; the sets share no user (checked). Mean [95% bootstrap CI]; differences "
        "a - b paired per user, (wins/losses/ties), and '=' where the interval holds 0.",
        "",
        "| set | users | command | reply cap (tokens) | load average |",
        "|---|---|---|---|---|",
    ]
    for name, s in sets.items():
        flags = f"--seed {s['seed']}" + (
            f" --disjoint-from {s['disjoint_from']}" if s["disjoint_from"] is not None else ""
        )
        flags += (f" --subset {s['subset']}" if s["subset"] else "") + (
            " --no-llm" if s["no_llm"] else ""
        )
        lines.append(
            f"| {name} | {s['users']} | `{flags}` | {s['max_new_tokens']} | {s['loadavg'][0]:.1f} |"
        )
    for metric in METRICS:
        lines += ["", f"**{metric}**", "", "| extractor | " + " | ".join(sets) + " |"]
        lines.append("|---" * (len(sets) + 1) + "|")
        for ex in next(iter(record["means"].values())):
            cells = [
                cell(record["means"][s][ex][metric]) if ex in record["means"][s] else "not run"
                for s in sets
            ]
            lines.append(f"| {ex} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| difference (a - b) | metric | " + " | ".join(sets) + " | seed 0 + fresh, pooled |",
        "|---" * (len(sets) + 3) + "|",
    ]
    for label, _, _ in DEFAULTS:
        for metric in METRICS:
            cells = [
                diff_cell(d[label][metric]) if label in d else "not run"
                for d in (record["differences"][s] for s in sets)
            ]
            pooled = diff_cell(record["pooled"][label][metric]) if label in record["pooled"] else ""
            lines.append(f"| {label} | {metric} | " + " | ".join(cells) + f" | {pooled} |")
    if gemma := record["gemma_subset"]:
        lines += gemma_lines(gemma)
    return "\n".join(lines) + "\n"


def gemma_lines(g: dict[str, Any]) -> list[str]:
    s = g["settings"]
    lines = [
        "",
        f"## Gemma 3 270M on {g['users']} of the seed-0 users"
        if s["subset"]
        else f"## Gemma 3 270M on the {g['users']} seed-0 users",
        "",
        f"`benchmarks/pmg_preferences.py --seed {s['seed']} "
        + (f"--subset {s['subset']} " if s["subset"] else "")
        + ("--no-llm " if g["smollm2_from_seed0_run"] else "")
        + "--gemma PATH "
        f"--max-new-tokens {s['max_new_tokens']}` ("
        + (f"the first {g['users']} by ID of the 40 above" if s["subset"] else "the same users")
        + f"; load average {g['loadavg'][0]:.1f}). "
        + (
            "SmolLM2's values are its per-user values in the seed-0 run above for the same "
            "users (reply cap 64, before this change's name filter); the statistical values of "
            "both runs agree user by user (checked), so the pairs are the same users."
            if g["smollm2_from_seed0_run"]
            else "SmolLM2 and Gemma ran in the same process, one after the other, with the same "
            "reply cap."
        ),
        "",
        "| extractor | ndcg@20 | recall@20 | s per user | s per item |",
        "|---|---|---|---|---|",
    ]
    for name, summary in g["summary"].items():
        llm = g["llm"].get(name)
        per_user = (
            llm["s_per_user"]
            if llm
            else g["statistical_s_per_user"]
            if name == "statistical"
            else None
        )
        lines.append(
            f"| {name} | {cell(summary['ndcg@20'])} | {cell(summary['recall@20'])} | "
            + (f"{per_user:.2f}" if per_user is not None else "")
            + " | "
            + (f"{llm['s_per_item']:.2f}" if llm else "")
            + " |"
        )
    lines += ["", "| comparison | ndcg@20 | recall@20 |", "|---|---|---|"]
    for name, metrics in g["comparisons"].items():
        lines.append(
            f"| {name} | {diff_cell(metrics['ndcg@20'])} | {diff_cell(metrics['recall@20'])} |"
        )
    lines += [
        "",
        "| keywords | extractor | per list | empty lists | echoed | genre names | case duplicates "
        "| names |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, rows in g["quality"].items():
        for name, q in rows.items():
            if "parser only" in name:
                continue
            lines.append(
                f"| {kind} | {name} | {q['keywords_per_list']:.1f} | {q['empty_lists']} of "
                f"{q['lists']} | {q['echoed_share']:.0%} | {q['genre_share']:.0%} | "
                f"{q['case_duplicate_share']:.0%} | {q['name_share']:.0%} |"
            )
    lines += ["", g["note"]]
    return lines


if __name__ == "__main__":
    main()
