"""UniMP vs SASRec (recommendation) and biased MF (rating) on ml-latest-small with posters.

One command; time-ordered leave-one-out; the same seeded test users and the same
100 candidates (test item + 99 items the user never rated) for every model:

    python benchmarks/unimp.py --data-root $TASTEMAKER_DATA          # default (<= 90 min)
    python benchmarks/unimp.py --data-root $TASTEMAKER_DATA --quick    # ~15 min

Writes benchmarks/results/unimp.{md,json}: HR/NDCG/MRR@3,5,10 (generative over
candidate titles with constrained decoding, and the retrieval head over the
candidates and over all unseen items) next to SASRec's; rating MAE/RMSE next to
biased MF's on the same test pairs; poster selection accuracy among K next to
chance; CPU seconds, load average and seeds. What it did not run is listed as not
measured. Defaults were fixed before any run; nothing was tuned on the test part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import data_root

RESULTS = data_root.REPO / "benchmarks" / "results"
SEED = 0


def settings(quick: bool) -> dict[str, Any]:
    """The run's model and budget (chosen up front for the CPU budget, not tuned)."""
    if quick:
        return {"lm_layers": 2, "steps": 100, "batch_size": 4, "history": 3, "users": 50,
                "per_user": 4}  # fmt: skip
    return {"lm_layers": 4, "steps": 300, "batch_size": 8, "history": 5, "users": 200,
            "per_user": 16}  # fmt: skip


ABLATIONS: dict[str, dict[str, Any]] = {
    "coarse cross-attention": {"fusion": "coarse"},
    "without images": {"fusion": "none"},
    "single-task recommend": {"tasks": ("recommend",)},
    "single-task rating": {"tasks": ("rating",)},
}


def multi_task_line(measured: dict[str, Any], ablations: dict[str, Any]) -> str:
    """The multi-task target, on the tasks that have a single-task run."""
    if not ablations:
        return "multi-task beats single-task on at least 3 tasks: not measured (no --ablations)"
    rec_multi = measured["generative@100"]["HR@5"]
    rec_single = ablations["single-task recommend"]["generative@100"]["HR@5"]
    mae_multi = measured["rating"]["MAE"]
    mae_single = ablations["single-task rating"]["rating"]["MAE"]
    wins = int(rec_multi > rec_single) + int(mae_multi < mae_single)
    return (
        f"multi-task beats single-task on at least 3 tasks: not measured on 3 (single-task runs "
        f"for 2 tasks only); multi-task wins {wins} of 2: generative HR@5 {rec_multi:.4f} vs "
        f"{rec_single:.4f}, rating MAE {mae_multi:.4f} vs {mae_single:.4f}"
    )


def sasrec_scores(split: Any, users: list[str], seed: int) -> Any:
    """SASRec trained on train (early-stopped on valid), scored with train + valid as context."""
    from tastemaker.data.interactions import Interactions
    from tastemaker.models import create_model

    train, valid = split.part("train"), split.part("valid")
    model = create_model("sasrec", seed=seed)
    model.fit(train, valid)
    context = Interactions.concat([train, valid])
    return model.score_indices(split.users.index(users), context).numpy()


def biased_mf_predictions(split: Any, users: list[str], items: list[str], seed: int) -> Any:
    from tastemaker.models import BiasedMF

    model = BiasedMF(seed=seed).fit(split.part("train"), split.part("valid"))
    return model.predict_ratings(users, items).clip(0.5, 5.0)


def markdown(out: dict[str, Any]) -> str:
    from tastemaker.reporting.markdown import markdown_table as table

    ks = ("HR@3", "NDCG@3", "MRR@3", "HR@5", "NDCG@5", "MRR@5", "HR@10", "NDCG@10", "MRR@10")
    rows = []
    for name, key in (("UniMP generative (100 cand.)", "generative@100"),
                      ("UniMP retrieval head (100 cand.)", "retrieval@100"),
                      ("SASRec (100 cand.)", "sasrec@100"),
                      ("UniMP retrieval head (full)", "retrieval@full"),
                      ("SASRec (full)", "sasrec@full")):  # fmt: skip
        values = out["recommendation"].get(key)
        rows.append([name, *(f"{values[k]:.4f}" if values else "–" for k in ks)])
    lines = [
        "# UniMP on ml-latest-small (posters), time-ordered leave-one-out",
        "",
        f"Command: `{out['command']}`; seed {out['seed']}; {out['users']} seeded test users; "
        f"load average {out['load_average']}; CPU seconds {out['cpu_seconds']}; "
        f"wall {out['wall_seconds']} s.",
        f"UniMP settings: `{json.dumps(out['config'])}`.",
        "",
        "## Next-item recommendation",
        "",
        table(["model", *ks], rows),
        "",
        "## Rating and poster selection",
        "",
        table(
            ["measure", "UniMP", "peer"],
            [
                [
                    "rating MAE",
                    _f(out["rating"], "MAE"),
                    _f(out["biased_mf"], "MAE") + " (biased MF)",
                ],
                [
                    "rating RMSE",
                    _f(out["rating"], "RMSE"),
                    _f(out["biased_mf"], "RMSE") + " (biased MF)",
                ],
                [
                    "selection accuracy",
                    _f(out["select"], "accuracy"),
                    _f(out["select"], "chance") + " (chance)",
                ],
            ],
        ),
        "",
        *ablation_table(out["ablations"]),
        "## Targets",
        "",
        *[f"- {line}" for line in out["targets"]],
        "",
        "## Notes",
        "",
        *[f"- {line}" for line in out["notes"]],
        "",
        "## Not measured",
        "",
        *[f"- {line}" for line in out["not_measured"]],
        "",
    ]
    return "\n".join(lines)


def ablation_table(ablations: dict[str, Any]) -> list[str]:
    """Markdown lines of the ablation runs (none when they were not run)."""
    from tastemaker.reporting.markdown import markdown_table

    if not ablations:
        return []
    header = ["variant", "gen. HR@5", "gen. NDCG@5", "retr. HR@5", "rating MAE", "selection acc."]
    rows = [
        [
            name,
            _f(run.get("generative@100"), "HR@5"),
            _f(run.get("generative@100"), "NDCG@5"),
            _f(run.get("retrieval@100"), "HR@5"),
            _f(run.get("rating"), "MAE"),
            _f(run.get("select"), "accuracy"),
        ]
        for name, run in ablations.items()
    ]
    return ["## Ablations (same settings, one change each)", "", markdown_table(header, rows), ""]


def _f(values: dict[str, Any] | None, key: str) -> str:
    return "–" if not values or values.get(key) is None else f"{values[key]:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument("--quick", action="store_true", help="the ~15 min variant")
    parser.add_argument(
        "--ablations", action="store_true", help="also train the ablations (4 more runs)"
    )
    args = parser.parse_args(argv)
    root = data_root.data_root(args.data_root, "ml-latest-small", "ml-latest-small-posters")

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from tastemaker.data.sources.movielens import load_movielens
    from tastemaker.unimp.config import UniMPConfig
    from tastemaker.unimp.evaluate import rank_metrics, target_ranks
    from tastemaker.unimp.pipeline import prepare, train_unimp
    from tastemaker.unimp.report import eval_plan, evaluate_all, full_ranks

    plan_settings = settings(args.quick)
    config = UniMPConfig(
        lm_layers=plan_settings["lm_layers"], steps=plan_settings["steps"],
        batch_size=plan_settings["batch_size"], history=plan_settings["history"],
        save_every=plan_settings["steps"], seed=SEED,
    )  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    folder = root / "ml-latest-small"
    dataset = load_movielens(folder, root / "ml-latest-small-posters")
    data = prepare(dataset, config, tags_folder=folder)
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "tastemaker-unimp-bench"
    model, result = train_unimp(data, config, out_dir, per_user=plan_settings["per_user"])
    train_seconds = result.seconds
    measured = evaluate_all(model, data, users=plan_settings["users"], seed=SEED)

    plan = eval_plan(data, plan_settings["users"], SEED)
    sasrec = sasrec_scores(data.split, plan.users, SEED)
    sampled = np.take_along_axis(sasrec, plan.candidates, axis=1)
    recommendation = {k: v for k, v in measured.items() if "@" in k}
    recommendation["sasrec@100"] = rank_metrics(target_ranks(sampled))
    recommendation["sasrec@full"] = rank_metrics(full_ranks(sasrec, plan, data))

    items = [data.test[u][0][0] for u in plan.users]
    gold = np.array([data.test[u][0][1] for u in plan.users], dtype=np.float64)
    predicted = biased_mf_predictions(data.split, plan.users, items, SEED)
    biased = {"MAE": float(np.abs(predicted - gold).mean()),
              "RMSE": float(np.sqrt(((predicted - gold) ** 2).mean())), "n": len(gold)}  # fmt: skip

    ablations = {}
    if args.ablations:
        from dataclasses import replace

        from tastemaker.unimp.visual import VisualBank

        for name, changes in ABLATIONS.items():
            variant = config.model_copy(update=changes)
            variant_data = data
            if variant.fusion == "none":  # no poster anywhere: not in the retrieval head either
                variant_data = replace(data, bank=VisualBank.empty(data.split.items))
            run = out_dir.with_name(out_dir.name + "-" + name.replace(" ", "-"))
            variant_model, _ = train_unimp(
                variant_data, variant, run, per_user=plan_settings["per_user"]
            )
            ablations[name] = evaluate_all(
                variant_model, variant_data, users=plan_settings["users"], seed=SEED
            )
            del variant_model

    hr5 = recommendation.get("generative@100", {}).get("HR@5")
    best = max(recommendation["generative@100"]["HR@5"], recommendation["retrieval@100"]["HR@5"])
    peer = recommendation["sasrec@100"]["HR@5"]
    targets = [
        f"UniMP beats SASRec on HR@5 (100 candidates): {'met' if best > peer else 'missed'} "
        f"(best UniMP head {best:.4f} vs SASRec {peer:.4f}; difference {best - peer:+.4f}; "
        f"generative {hr5:.4f})",
        multi_task_line(measured, ablations),
    ]
    out = {
        "command": "python benchmarks/unimp.py --data-root $TASTEMAKER_DATA"
        + (" --quick" if args.quick else "")
        + (" --ablations" if args.ablations else ""),
        "seed": SEED,
        "users": measured["users"],
        "config": config.model_dump(mode="json"),
        "settings": plan_settings,
        "train_seconds": round(train_seconds, 1),
        "train_log": result.log,
        "recommendation": recommendation,
        "rating": measured["rating"],
        "biased_mf": biased,
        "select": measured["select"],
        "ablations": ablations,
        "targets": targets,
        "notes": [
            f"Why the targets are missed at this budget: the backbone keeps "
            f"{config.lm_layers or 'all'} decoder layers (cut SmolLM2's early-layer states are far "
            "from what its output head reads: its answer-token loss starts near 25 nats, against "
            "0.4 for the whole model on a plain sentence) and trains "
            f"{config.steps} steps x {config.batch_size} examples, under one epoch of its pool; "
            "SASRec trains to early stopping.",
        ],
        "not_measured": [
            "mm_sasrec, UniSRec and VBPR peers; explanation measures; search Recall@10",
            "ablations without context reconstruction and without re-weighting"
            + ("" if ablations else "; all ablations (run with --ablations)"),
            "held-out users and the ml-100k new-domain transfer; PMG conditioning",
        ],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "wall_seconds": round(time.perf_counter() - wall, 1),
    }
    from tastemaker.atomic import write_text

    write_text(RESULTS / "unimp.json", json.dumps(out, indent=2) + "\n")
    write_text(RESULTS / "unimp.md", markdown(out))
    print(markdown(out))


if __name__ == "__main__":
    sys.exit(main())
