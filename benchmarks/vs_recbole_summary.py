"""The numbers of ``vs_recbole.py``'s report: medians over repeats, ratios, targets.

A repeat is one (RecBole record, tastemaker record) pair on the same exported
split; a target is met on the medians (see ``vs_recbole.py`` for the protocol).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from vs_recbole import ACCURACY_TOLERANCE, EPOCH_TARGET_MODELS, METRIC, SPEED_TARGET


def time_to(record: dict[str, Any], target: float) -> float | None:
    """Seconds from the start of fit to the first validation at ``target`` or above.

    Validation NDCG@10 is compared at RecBole's precision (4 decimals).
    """
    for epoch in record["epochs"]:
        value = epoch[METRIC]
        if value is not None and round(value, 4) >= target:
            return epoch["elapsed_seconds"]
    return None


def median(values: list[float | None]) -> float | None:
    """Median with a missing value (a target never reached) counted as infinitely late;
    None when that is the median."""
    middle = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(middle) else middle


def _at(record: dict[str, Any], where: str, protocol: str, metric: str) -> float | None:
    """A SASRec test metric: ``where`` is test_protocols (best epoch) or test_at_epoch."""
    found = record.get(where)
    return None if not found else found[protocol][metric]


SEQUENTIAL_KEYS = {  # summary key -> (record field, protocol)
    "test_ndcg@10": ("test_protocols", "excluded"),
    "test_recall@10": ("test_protocols", "excluded"),
    "test_ndcg@10_not_excluded": ("test_protocols", "not_excluded"),
    "test_recall@10_not_excluded": ("test_protocols", "not_excluded"),
    "epoch_ndcg@10": ("test_at_epoch", "excluded"),
    "epoch_recall@10": ("test_at_epoch", "excluded"),
    "epoch_ndcg@10_not_excluded": ("test_at_epoch", "not_excluded"),
    "epoch_recall@10_not_excluded": ("test_at_epoch", "not_excluded"),
}


def summarize(model: str, pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
    """Medians over repeats per toolkit, tastemaker/RecBole ratios and the targets."""
    side: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(("recbole", "tastemaker")):
        records = [pair[index] for pair in pairs]

        def per_epoch(key: str, records: list[dict] = records) -> float:
            return statistics.median(
                statistics.median(e[key] for e in r["epochs"]) for r in records
            )

        side[name] = {
            "test_ndcg@10": statistics.median(r["test"]["ndcg@10"] for r in records),
            "test_recall@10": statistics.median(r["test"]["recall@10"] for r in records),
            "seconds_per_epoch": per_epoch("train_seconds"),
            "cpu_seconds_per_epoch": per_epoch("train_cpu_seconds"),
            "epochs_run": statistics.median(len(r["epochs"]) for r in records),
            "best_valid_ndcg@10": statistics.median(r["best_valid"] for r in records),
            "eval_seconds": statistics.median(r["eval_seconds"] for r in records),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in records),
            "stopped_by_budget": sum(r["stopped_by_budget"] for r in records),
        }
        if model == "sasrec":  # both protocols, from the records' own test passes
            for key, (where, protocol) in SEQUENTIAL_KEYS.items():
                values = [_at(r, where, protocol, key.split("_")[1]) for r in records]
                side[name][key] = median(values) if None not in values else None
    # Both toolkits read the same split; the quality to reach is the median of
    # RecBole's best validation values over repeats.
    target = side["recbole"]["best_valid_ndcg@10"]
    reached = [time_to(t, target) for _, t in pairs]
    side["recbole"]["time_to_recbole_best"] = statistics.median(
        time_to(r, r["best_valid"]) for r, _ in pairs
    )
    side["tastemaker"]["time_to_recbole_best"] = median(reached)
    side["tastemaker"]["runs_reaching_recbole_best"] = sum(t is not None for t in reached)
    rb, tm = side["recbole"], side["tastemaker"]

    def ratio(key: str) -> float | None:
        return None if tm.get(key) is None or not rb.get(key) else tm[key] / rb[key]

    ratios = {key: ratio(key) for key in rb if key not in ("stopped_by_budget",)}
    targets = {
        "test_ndcg@10": ratios["test_ndcg@10"] is not None
        and ratios["test_ndcg@10"] >= 1 - ACCURACY_TOLERANCE,
        "time_to_recbole_best": ratios["time_to_recbole_best"] is not None
        and ratios["time_to_recbole_best"] <= SPEED_TARGET,
        "eval_seconds": ratios["eval_seconds"] is not None
        and ratios["eval_seconds"] <= SPEED_TARGET,
        "peak_rss_mb": ratios["peak_rss_mb"] is not None and ratios["peak_rss_mb"] <= 1,
    }
    if model == "sasrec":  # each toolkit validates under its own protocol: not comparable
        del targets["time_to_recbole_best"]
        for key in ("best_valid_ndcg@10", "time_to_recbole_best"):
            ratios[key] = None
    if model in EPOCH_TARGET_MODELS:
        targets["cpu_seconds_per_epoch"] = (ratios["cpu_seconds_per_epoch"] or 0) <= SPEED_TARGET
    loads = [r["load_average_1min"] for pair in pairs for r in pair]
    return {
        "repeats": len(pairs),
        "load_average_1min": {"min": min(loads), "median": statistics.median(loads),
                              "max": max(loads)},
        "recbole": rb,
        "tastemaker": tm,
        "ratios": ratios,
        "targets_met": targets,
    }  # fmt: skip
