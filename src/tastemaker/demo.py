"""The main job, ``tastemaker demo``: the whole loop on the embedded data in minutes.

Prepare a split of the embedded ml-latest-small, encode item text (titles, genres,
tags; all-MiniLM-L6-v2, offline, cached in the embedding store) and, given a poster
folder, images; train the ID-only baselines and a multimodal model (early stopping
on validation), score the test part once, and write a leaderboard, a cold-start
table (test items never seen in training, ranked among themselves: where ID-only
models are at chance and content helps), sample recommendations with titles, and
an HTML report with plots.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastemaker import experiment
from tastemaker.atomic import (
    atomic_path,
    ensure_writable_dir,
    output_lock,
    write_bytes,
    write_text,
)
from tastemaker.config import DataConfig, EvalConfig, FeaturesConfig, ModelSpec, SplitConfig
from tastemaker.data.dataset import Split
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.evaluation import html
from tastemaker.evaluation.cold_start import cold_start_report
from tastemaker.evaluation.report import EvaluationReport, leaderboard_markdown
from tastemaker.generation.demo import demo_generation
from tastemaker.models.base import Recommender
from tastemaker.models.registry import get_model_class

# ID-only baselines and VBPR, which reads item content (text, and posters when given).
DEMO_MODELS: tuple[str, ...] = ("most_popular", "itemknn", "bpr", "vbpr")
SHOWN_METRICS: tuple[str, ...] = ("recall@10", "ndcg@10", "hit@10", "mrr@10", "coverage@10")
COLD_CFG = EvalConfig(ks=[20], metrics=["recall", "ndcg"])
COLD_COLUMNS: tuple[str, ...] = ("warm/recall@20", "warm/ndcg@20", "cold/recall@20", "cold/ndcg@20")


@dataclass
class DemoResult:
    split: Split
    models: dict[str, Recommender]
    reports: list[EvaluationReport]
    cold_start: list[EvaluationReport]
    samples: dict[str, dict[str, list[str]]]
    generation: dict[str, Any]
    out: Path


def run_demo(
    out: Path,
    *,
    data: DataConfig | None = None,
    split: SplitConfig | None = None,
    models: Sequence[str | ModelSpec] | None = None,
    features: FeaturesConfig | Mapping[str, ItemEmbeddings] | None = None,
    n_users: int = 3,
    k: int = 10,
) -> DemoResult:
    """Run the demo and write everything under ``out`` (replaced atomically).

    ``models``: names or specs (default :data:`DEMO_MODELS`). Multimodal ones read
    text, and images when the catalog has any (``data.posters``), unless their
    spec names ``modalities``; ``features`` are given vectors, or how to encode them.
    """
    out = Path(out)
    ensure_writable_dir(out.parent)
    # A folder holding the user's files is refused before any work, and no second run
    # writes the same folder meanwhile.
    with output_lock(out):
        data_split = experiment.prepare(data or DataConfig(), split or SplitConfig())
        names = models or DEMO_MODELS
        specs = [m if isinstance(m, ModelSpec) else ModelSpec(name=m) for m in names]
        fitted = {spec.name: _train(data_split, spec, features) for spec in specs}
        eval_cfg = EvalConfig()
        reports = [experiment.evaluate(m, data_split, "test", eval_cfg) for m in fitted.values()]
        cold = [cold_start_report(m, data_split, "test", COLD_CFG) for m in fitted.values()]
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
            columns = [c for c in COLD_COLUMNS if c in cold[0].metrics]
            write_text(tmp / "cold_start.md", leaderboard_markdown(cold, columns))
            write_text(
                tmp / "cold_start.json",
                json.dumps([r.model_dump(mode="json") for r in cold], indent=2) + "\n",
            )
            charts = {
                "test metrics": html.metrics_chart(reports, SHOWN_METRICS),
                "warm and cold items (test)": html.metrics_chart(cold, columns),
                "training": html.training_chart(
                    {n: m.training_log or [] for n, m in fitted.items()}, "ndcg@10"
                ),
            }
            for name, png in charts.items():
                if png:
                    write_bytes(tmp / f"{name.replace(' ', '_')}.png", png)
            # Personalized generation: one user's history → preference keywords → the prompt
            # (and the image, when a generator is configured).
            generation = demo_generation(data_split, tmp / "generation")
            page = html.render_report(
                "tastemaker demo",
                reports,
                SHOWN_METRICS,
                charts,
                samples,
                sections={"Warm and cold items (test)": (cold, columns)},
                held_out=_test_titles(data_split, samples),
                links=_generation_link(generation, tmp),
            )
            write_text(tmp / "report.html", page)
        generation = _moved(generation, tmp, out)
        return DemoResult(data_split, fitted, reports, cold, samples, generation, out)


def _moved(info: dict[str, Any], tmp: Path, out: Path) -> dict[str, Any]:
    """``info`` with paths inside the temporary folder pointed at the final one."""
    return {
        k: v.replace(str(tmp), str(out)) if isinstance(v, str) and str(tmp) in v else v
        for k, v in info.items()
    }


def _train(
    split: Split, spec: ModelSpec, features: FeaturesConfig | Mapping[str, ItemEmbeddings] | None
) -> Recommender:
    """Train ``spec``; a model with a ``modalities`` setting reads text, and images when
    there are any (fit is the same call for every model)."""
    settings = get_model_class(spec.name).config_class.model_fields
    if "modalities" in settings and "modalities" not in spec.params:
        modalities = ["text", "image"] if split.catalog.n_images else ["text"]
        spec = spec.model_copy(update={"params": {**spec.params, "modalities": modalities}})
    return experiment.train(split, spec, features)


def _test_titles(split: Split, samples: Mapping[str, Any]) -> dict[str, list[str]]:
    """The titles each sampled user interacted with in the test part: the page's hits."""
    test = split.test.frame
    return {
        user: split.catalog.titles(test.filter(user_id=user)["item_id"].to_list())
        for user in samples
    }


def _generation_link(generation: Mapping[str, Any], tmp: Path) -> dict[str, str]:
    """A link to the generation page, relative to the report, when one was written."""
    page = Path(generation["page"])
    if not page.is_file():
        return {}
    label = f"personalized generation for user {generation['user_id']}"
    return {f"{label} and '{generation['item_title']}'": page.relative_to(tmp).as_posix()}


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
