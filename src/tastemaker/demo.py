"""The main job, ``tastemaker demo``: the whole loop on the embedded data in minutes.

Prepare a split of the embedded ml-latest-small, train the baselines (early
stopping on validation), score the test part once, and write a leaderboard,
sample recommendations with titles, and an HTML report with plots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastemaker import experiment
from tastemaker.atomic import atomic_path, ensure_writable_dir, write_bytes, write_text
from tastemaker.config import DataConfig, EvalConfig, ModelSpec, SplitConfig
from tastemaker.data.dataset import Split
from tastemaker.evaluation import html
from tastemaker.evaluation.report import EvaluationReport, leaderboard_markdown
from tastemaker.models.base import Recommender

DEMO_MODELS: tuple[str, ...] = ("most_popular", "itemknn", "bpr")
SHOWN_METRICS: tuple[str, ...] = ("recall@10", "ndcg@10", "hit@10", "mrr@10", "coverage@10")


@dataclass
class DemoResult:
    split: Split
    models: dict[str, Recommender]
    reports: list[EvaluationReport]
    samples: dict[str, dict[str, list[str]]]
    out: Path


def run_demo(
    out: Path,
    *,
    data: DataConfig | None = None,
    split: SplitConfig | None = None,
    models: Sequence[str] = DEMO_MODELS,
    n_users: int = 3,
    k: int = 10,
) -> DemoResult:
    """Run the demo and write everything under ``out`` (replaced atomically)."""
    out = Path(out)
    ensure_writable_dir(out.parent)
    data_split = experiment.prepare(data or DataConfig(), split or SplitConfig())
    fitted = {name: experiment.train(data_split, ModelSpec(name=name)) for name in models}
    eval_cfg = EvalConfig()
    reports = [experiment.evaluate(m, data_split, "test", eval_cfg) for m in fitted.values()]
    samples = _samples(data_split, fitted, n_users, k)

    with atomic_path(out, directory=True) as tmp:
        data_split.save(tmp / "split")
        for (name, model), report in zip(fitted.items(), reports, strict=True):
            model.save(tmp / "models" / name)
            report.write(tmp / "models" / name / "eval-test")
        write_text(tmp / "leaderboard.md", leaderboard_markdown(reports, list(SHOWN_METRICS)))
        write_text(
            tmp / "leaderboard.json",
            json.dumps([r.model_dump(mode="json") for r in reports], indent=2) + "\n",
        )
        charts = {
            "test metrics": html.metrics_chart(reports, SHOWN_METRICS),
            "training": html.training_chart(
                {n: m.training_log or [] for n, m in fitted.items()}, "ndcg@10"
            ),
        }
        for name, png in charts.items():
            if png:
                write_bytes(tmp / f"{name.replace(' ', '_')}.png", png)
        page = html.render_report("tastemaker demo", reports, SHOWN_METRICS, charts, samples)
        write_text(tmp / "report.html", page)
    return DemoResult(data_split, fitted, reports, samples, out)


def _samples(
    split: Split, models: dict[str, Recommender], n_users: int, k: int
) -> dict[str, dict[str, list[str]]]:
    """For a few seeded-random users: their best-rated history and each model's top-k titles."""
    info = split.manifest.split
    rng = np.random.default_rng(info.seed if info and info.seed is not None else 0)
    users = split.train.frame["user_id"].unique().sort().to_list()
    chosen = [
        users[i]
        for i in sorted(rng.choice(len(users), size=min(n_users, len(users)), replace=False))
    ]
    samples: dict[str, dict[str, list[str]]] = {}
    for user in chosen:
        history = (
            split.train.frame.filter(user_id=user)
            .sort(["rating", "timestamp"], descending=True, nulls_last=True)
            .head(k)["item_id"]
            .to_list()
        )
        lists = {"liked in training": split.catalog.titles(history)}
        for name, model in models.items():
            recs = experiment.recommend(model, split, [user], k)
            lists[name] = recs["title"].to_list()
        samples[user] = lists
    return samples
