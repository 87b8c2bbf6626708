"""Warm and cold-start accuracy of ID-only, multimodal and sequential recommenders.

Run with::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multimodal.py \\
        --config configs/multimodal-ml-latest-small.toml [--only bpr,clcrec-text] \\
        [--set early_stopping_metric=recall@20]

The config is a TOML file with the usual ``[data]``, ``[split]``, ``[features]``
and ``[eval]`` tables and one ``[[run]]`` table per model run (``model``, optional
``modalities``, ``params``, ``label``, and ``features``: ``[features]`` fields
that differ for this run, e.g. another text template). The split is made once and the item
features are encoded once (through the embedding store); each run trains on
train, early-stops on valid, and is scored once on test by
:func:`tastemaker.evaluation.cold_start.cold_start_report`: warm items among the
warm items, cold items among the test's cold items. A run whose model is not
registered is skipped with a note, so the config can name models still being
built. ``--set NAME=VALUE`` adds a model parameter to every run of this invocation
(recorded with the run and shown in its row). Results go to
``benchmarks/results/multimodal.{md,json,png}``; the cross-modal alignment results
(``results/alignment.md``) are included when present, and so is the authors' own BM3
on the same split (``results/multimodal.mmrec*.json``, from ``mmrec_bm3.py``) with the
validation curves of both BM3s (``multimodal.curves.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from tastemaker import experiment
from tastemaker.config import (
    SECTIONS,
    DataConfig,
    EvalConfig,
    FeaturesConfig,
    ModelSpec,
    SplitConfig,
    read_toml,
)
from tastemaker.config import validate as validate_config
from tastemaker.data.dataset import Split
from tastemaker.errors import ConfigError
from tastemaker.evaluation.cold_start import (
    GROUPS,
    chance_recall,
    cold_start_report,
    item_groups,
    restrict,
)
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models.registry import available_models, get_model_class

RESULTS = Path(__file__).resolve().parent / "results"


class Run(BaseModel):
    """One model run: a registered model, the modalities it reads, its parameters."""

    model_config = ConfigDict(extra="forbid")

    model: str
    modalities: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    features: dict[str, Any] | None = None  # [features] fields this run changes

    @property
    def name(self) -> str:
        """``label``, else e.g. ``clcrec-text+image`` (the model alone without modalities)."""
        if self.label:
            return self.label
        return f"{self.model}-{'+'.join(self.modalities)}" if self.modalities else self.model


class Experiment(BaseModel):
    """The whole config file."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: list[Run] = Field(min_length=1)


def load_experiment(path: Path) -> Experiment:
    """The validated config at ``path`` (a bad value is a one-line ConfigError)."""
    tables = read_toml(path, known=[*SECTIONS, "run"])
    return validate_config(Experiment, tables, where=str(path))


def run_one(
    run: Run, split: Split, exp: Experiment, features: dict, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train and score one run (``extra``: parameters added to the run's); its record."""
    multimodal = "modalities" in get_model_class(run.model).config_class.model_fields
    if (run.modalities is not None or run.features is not None) and not multimodal:
        raise ConfigError(
            f"run '{run.name}': model '{run.model}' reads no item content",
            "drop its modalities and features",
        )
    extra = extra or {}
    params = {**run.params, **extra}
    if run.modalities is not None:
        params["modalities"] = run.modalities
    if run.features is not None:  # its own content: encoded (or read from the store) now
        cfg = validate_config(
            FeaturesConfig, {**exp.features.model_dump(), **run.features}, f"run {run.name}"
        )
        features = experiment.item_features(split.catalog, run.modalities or ["text"], cfg)
    start = time.perf_counter()
    model = experiment.train(split, ModelSpec(name=run.model, params=params), features)
    trained = time.perf_counter()
    report = cold_start_report(model, split, "test", exp.eval)
    # MMRec's protocol, for the comparison with the authors' BM3: every item ranked,
    # only the training items masked.
    mmrec = evaluate(
        model, split.test, exclude=[split.train], ks=exp.eval.ks, metrics=exp.eval.metrics
    )
    return {
        "run": run.name,
        "model": run.model,
        "modalities": getattr(model.config, "modalities", None),
        "features": run.features,
        "params_added": extra or None,
        "early_stopping_metric": getattr(model.config, "early_stopping_metric", None),
        "log": model.training_log,
        "test_all_items_train_masked": {k: v for k, v in mmrec.items() if "@" in k},
        "train_seconds": trained - start,
        "eval_seconds": time.perf_counter() - trained,
        "epochs": len(model.training_log or []),
        "best_epoch": getattr(model, "best_epoch", None),
        "report": report.model_dump(mode="json"),
    }


def protocol(split: Split, cfg: EvalConfig) -> dict[str, Any]:
    """Counts that say what the warm and cold numbers are over, and chance levels."""
    groups = item_groups(split, "test")
    test = {g: len(restrict(split.test, groups[g])) for g in GROUPS}
    info = split.manifest.split
    cold_ids = pl.Series(split.items.decode(groups.cold), dtype=pl.Utf8).implode()
    cold = split.catalog.frame.filter(pl.col("item_id").is_in(cold_ids))
    return {
        "split": info.model_dump(mode="json") if info else None,
        "counts": split.counts(),
        "warm_items": len(groups.warm),
        "cold_items": len(groups.cold),
        "cold_items_with_image": cold.height - cold["image"].null_count(),
        "test_interactions": test,
        "chance_recall": {
            g: {f"recall@{k}": chance_recall(k, len(groups[g])) for k in cfg.ks} for g in GROUPS
        },
    }


def merge(
    records: list[dict[str, Any]], previous: dict[str, Any] | None, exp: Experiment, split: Split
) -> list[dict[str, Any]]:
    """Every run of the config in its order: this invocation's records, else those of an
    earlier one on the same split and settings (so runs can be added one at a time).

    The split's content hash stands for the data: where the data lie (``[data]`` paths,
    expanded from TASTEMAKER_DATA) and options added since do not matter when it agrees."""
    kept: dict[str, dict[str, Any]] = {}
    compared = ("split", "features", "eval")
    settings = exp.model_dump(mode="json", include=set(compared))
    if previous is not None:
        same_split = previous["protocol"]["split"]["content_hash"] == split.content_hash
        before = {k: previous["experiment"][k] for k in compared}
        if same_split and before == settings:
            kept = {r["run"]: r for r in previous["runs"] if "report" in r}
    kept.update({r["run"]: r for r in records})
    not_run = "not run yet (`--only {}`)"
    return [kept.get(r.name, {"run": r.name, "skipped": not_run.format(r.name)}) for r in exp.run]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", type=Path, default=Path("configs/multimodal-ml-latest-small.toml")
    )
    parser.add_argument("--only", default="", help="comma-separated run labels or model names")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model parameter added to every run trained now (JSON value or text)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the result files")
    parser.add_argument(
        "--render", action="store_true", help="only re-write the .md and .png from the .json"
    )
    args = parser.parse_args()
    from multimodal_report import NAME, read_json, write_results  # beside this script

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.render:
        previous = read_json(args.out / f"{NAME}.json")
        if previous is None:
            raise SystemExit(f"{args.out / NAME}.json does not exist: run the experiment first")
        write_results(previous, args.out, with_json=False)
        return

    exp = load_experiment(args.config)
    extra = parse_settings(args.set)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    runs = [r for r in exp.run if not only or r.name in only or r.model in only]
    if not runs:
        raise SystemExit(f"no run of {args.config} is named {sorted(only)}")
    load_start = os.getloadavg()[0]
    started = datetime.now(UTC)
    split = experiment.prepare(exp.data, exp.split)
    registered = set(available_models())
    wanted = [
        m for r in runs if r.model in registered and not r.features for m in (r.modalities or [])
    ]
    features = experiment.item_features(split.catalog, wanted, exp.features) if wanted else {}

    records: list[dict[str, Any]] = []
    for run in tqdm(runs, desc="runs", unit="run"):
        if run.model not in registered:
            note = f"model '{run.model}' is not registered yet"
            records.append({"run": run.name, "skipped": note})
            continue
        records.append(run_one(run, split, exp, features, extra))
        records[-1]["date"] = datetime.now(UTC).isoformat(timespec="seconds")
        records[-1]["load_average_1min"] = os.getloadavg()[0]
        tqdm.write(f"{run.name}: {_summary(records[-1])}")
    records = merge(records, read_json(args.out / f"{NAME}.json"), exp, split)

    result = {
        "date": started.isoformat(timespec="seconds"),
        "config": str(args.config),
        "experiment": exp.model_dump(mode="json"),
        "protocol": protocol(split, exp.eval),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average_1min": [load_start, os.getloadavg()[0]],
        },
        "runs": records,
    }
    write_results(result, args.out)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` flags as parameters (the value as JSON when it parses, else text)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--set {pair!r}: write NAME=VALUE, e.g. patience=20")
        try:
            settings[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[name.strip()] = value
    return settings


def _summary(record: dict[str, Any]) -> str:
    metrics = record["report"]["metrics"]
    shown = ", ".join(
        f"{k} {v:.4f}" for k, v in metrics.items() if "@" in k and "coverage" not in k
    )
    return f"{shown} ({record['train_seconds']:.0f} s)"


if __name__ == "__main__":
    main()
