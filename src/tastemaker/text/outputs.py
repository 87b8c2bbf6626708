"""A run's folder: predictions.jsonl, metrics.json, metrics.md and page.html, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.atomic import atomic_path
from tastemaker.reporting.html import render
from tastemaker.reporting.markdown import markdown_table

if TYPE_CHECKING:
    from tastemaker.text.runner import TextRun

PAGE_EXAMPLES = 30  # examples shown on the page (all are in predictions.jsonl)


def metric_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    """(metric, value, 95% low, 95% high) for each metric with an interval."""
    return [
        [name, v["value"], v["low"], v["high"]]
        for name, v in metrics.items()
        if isinstance(v, dict)
    ]


def metrics_markdown(run: TextRun) -> str:
    counts = {k: v for k, v in run.metrics.items() if not isinstance(v, dict)}
    lines = [
        f"# {run.task.name} · {run.label} · {run.task.data_name} ({run.part})",
        "",
        markdown_table(["metric", "value", "95% low", "95% high"], metric_rows(run.metrics)),
        "",
        ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "",
        *(f"- {note}" for note in run.task.notes),
    ]
    return "\n".join(lines) + "\n"


def write_run(run: TextRun, out: Path) -> Path:
    """Write the run's files into ``out`` atomically (replacing an earlier tastemaker run)."""
    from tastemaker.text.runner import metrics_json

    with atomic_path(out, directory=True) as tmp:
        with open(tmp / "predictions.jsonl", "w", encoding="utf-8") as fh:
            for record in run.records:
                fh.write(json.dumps(record) + "\n")
        (tmp / "metrics.json").write_text(metrics_json(run), encoding="utf-8")
        (tmp / "metrics.md").write_text(metrics_markdown(run), encoding="utf-8")
        page = render(
            "text_run.html.j2",
            title=f"{run.task.name} · {run.label}",
            run=run,
            rows=metric_rows(run.metrics),
            counts={k: v for k, v in run.metrics.items() if not isinstance(v, dict)},
            records=run.records[:PAGE_EXAMPLES],
            shown=min(PAGE_EXAMPLES, len(run.records)),
        )
        (tmp / "page.html").write_text(page, encoding="utf-8")
    return out
