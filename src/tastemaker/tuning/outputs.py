"""What a search writes: every trial (CSV, Markdown, PNG) and the chosen one (JSON).

The rows come from Optuna's own trial records (:class:`Trial` is read from them),
so the files say exactly what the study holds. Optuna's ``trials_dataframe`` would
need pandas, which tastemaker does not depend on; polars writes the same table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.atomic import write_bytes, write_text
from tastemaker.data.dataset import Split
from tastemaker.errors import DataError
from tastemaker.reporting.markdown import markdown_table

if TYPE_CHECKING:
    from tastemaker.tuning.search import Trial, TuneResult
    from tastemaker.tuning.space import Param

TRIALS_CSV, TRIALS_MD, TRIALS_PNG, BEST_JSON, BEST_MODEL = (
    "trials.csv",
    "trials.md",
    "trials.png",
    "best.json",
    "best-model",
)


def format_params(params: Mapping[str, Any]) -> str:
    """``k=20, reg=0.0123457``: short enough for a table cell."""
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def write_trials(out: Path, trials: Sequence[Trial], metric: str, model: str, split: Split) -> None:
    """``trials.csv`` (one column per parameter), ``trials.md`` (best value in bold) and
    ``trials.png`` (value per trial, best so far)."""
    import polars as pl

    from tastemaker.evaluation.html import trials_chart

    names = list(dict.fromkeys(n for t in trials for n in t.params))
    columns: dict[str, list[Any]] = {
        "number": [t.number for t in trials],
        "state": [t.state for t in trials],
        metric: [t.value for t in trials],
        "epochs": [t.epochs for t in trials],
        "best_epoch": [t.best_epoch for t in trials],
        "seconds": [round(t.seconds, 3) for t in trials],
        **{f"param_{n}": [t.params.get(n) for t in trials] for n in names},
        "error": [t.error for t in trials],
    }
    # strict=False: a choice of mixed kinds (32, "auto") becomes a text column.
    write_text(out / TRIALS_CSV, pl.DataFrame(columns, strict=False).write_csv())

    best = max((t.value for t in trials if t.value is not None), default=None)
    header = ["trial", "state", metric, "epochs", "best epoch", "seconds", "params"]
    rows = [
        [
            t.number,
            t.state,
            f"**{t.value:.4f}**" if t.value is not None and t.value == best else t.value,
            t.epochs,
            t.best_epoch,
            f"{t.seconds:.1f}",
            format_params(t.params) + (f" — {t.error}" if t.error else ""),
        ]
        for t in trials
    ]
    lines = [
        f"# Hyper-parameter search: {model}",
        "",
        f"- selected on: validation {metric} (the test part is never read)",
        f"- data: {split.manifest.name}, split hash `{split.content_hash}`",
        "",
        markdown_table(header, rows, align=["right", "left", *["right"] * 4, "left"]),
    ]
    write_text(out / TRIALS_MD, "\n".join(lines) + "\n")
    write_bytes(out / TRIALS_PNG, trials_chart([t.value for t in trials], metric))


def write_best(
    out: Path,
    result: TuneResult,
    space: Mapping[str, Param],
    split: Split,
    sampler: str,
    seed: int,
) -> None:
    """``best.json``: the chosen configuration with everything needed to reproduce it."""
    from tastemaker import __version__

    info = split.manifest.split
    if info is None:
        raise DataError(
            f"the split of {split.manifest.name} records no split information",
            "re-make the split with tastemaker data prepare",
        )
    best = result.best
    record = {
        "model": result.model,
        "metric": result.metric,
        "value": best.value,
        "params": best.params,
        "config": result.best_model.config.model_dump(mode="json"),
        "trial": best.number,
        "epochs": best.epochs,
        "best_epoch": best.best_epoch,
        "dataset": split.manifest.name,
        "split_kind": info.kind,
        "split_seed": info.seed,
        "content_hash": result.content_hash,
        "space": {n: str(p) for n, p in space.items()},
        "sampler": sampler,
        "seed": seed,
        "n_trials": len(result.trials),
        "n_failed": sum(t.value is None for t in result.trials),
        "tastemaker_version": __version__,
    }
    write_text(out / BEST_JSON, json.dumps(record, indent=2) + "\n")
