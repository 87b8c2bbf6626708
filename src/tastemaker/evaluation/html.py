"""Results people would rather look at: plots (matplotlib) and self-contained HTML pages.

The pages are rendered from ``tastemaker/reporting/templates`` (autoescaped); a
value that was not measured is left out of a chart and shown as "–" in a table,
never drawn or printed as 0.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from itertools import accumulate
from typing import Any

from tastemaker.errors import DataError
from tastemaker.evaluation.report import EvaluationReport
from tastemaker.reporting.html import render
from tastemaker.reporting.plots import png_bytes, pyplot
from tastemaker.reporting.values import is_missing

__all__ = [
    "metrics_chart",
    "png_bytes",
    "render_report",
    "training_chart",
    "training_page",
    "trials_chart",
]


def metrics_chart(reports: Sequence[EvaluationReport], metrics: Sequence[str]) -> bytes:
    """Grouped bars: one group per metric, one bar per model; a missing metric has no bar."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    width = 0.8 / max(len(reports), 1)
    for i, report in enumerate(reports):
        shown = [j for j, m in enumerate(metrics) if not is_missing(report.metrics.get(m))]
        heights = [report.metrics[metrics[j]] for j in shown]
        ax.bar([j + i * width for j in shown], heights, width, label=report.model)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], list(metrics))
    ax.set_ylabel("test score")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def training_chart(logs: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> bytes | None:
    """Loss and validation ``metric`` per epoch for each iteratively trained model."""
    logs = {name: log for name, log in logs.items() if log}
    if not logs:
        return None
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
    for name, log in logs.items():
        losses = [r for r in log if not is_missing(r.get("loss"))]
        loss_ax.plot([r["epoch"] for r in losses], [r["loss"] for r in losses], label=name)
        scored = [r for r in log if not is_missing(r.get(metric))]
        metric_ax.plot([r["epoch"] for r in scored], [r[metric] for r in scored], "o-", label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    metric_ax.set(xlabel="epoch", ylabel=f"validation {metric}")
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    return png_bytes(fig)


def trials_chart(values: Sequence[float | None], metric: str) -> bytes:
    """A search's validation ``metric`` per trial (failed trials, None, as red crosses)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    done = [(i, v) for i, v in enumerate(values) if not is_missing(v)]
    if done:
        xs, ys = zip(*done, strict=True)
        ax.plot(xs, ys, "o", label="trial")
        ax.step(xs, list(accumulate(ys, max)), where="post", label="best so far")
    failed = [i for i, v in enumerate(values) if is_missing(v)]
    if failed:
        floor = min((v for _, v in done), default=0.0)
        ax.plot(failed, [floor] * len(failed), "x", color="tab:red", label="failed")
    ax.set(xlabel="trial", ylabel=f"validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return png_bytes(fig)


def render_report(
    title: str,
    reports: Sequence[EvaluationReport],
    metrics: Sequence[str],
    charts: Mapping[str, bytes | None],
    samples: Mapping[str, Mapping[str, Sequence[str]]],
    *,
    sections: Mapping[str, tuple[Sequence[EvaluationReport], Sequence[str]]] | None = None,
    held_out: Mapping[str, Collection[str]] | None = None,
    links: Mapping[str, str] | None = None,
) -> str:
    """A standalone page: leaderboard, more tables, charts, sample recommendations.

    ``samples`` maps a user ID to ``{"history": [...titles], "<model>": [...titles]}``;
    a recommended title in ``held_out[user]`` (the user's test items) is marked a hit.
    ``sections`` are further tables (title → reports and their columns, e.g. warm and
    cold items); ``links`` are related pages (label → relative address).
    """
    if not reports:
        raise DataError("no evaluation reports for the page", "evaluate at least one model")
    tables = {"Leaderboard": (reports, metrics), **(sections or {})}
    return render(
        "evaluation_report.html.j2",
        title=title,
        first=reports[0],
        tables={
            name: (["model", *cols], [[r.model, *(r.metrics.get(m) for m in cols)] for r in rs])
            for name, (rs, cols) in tables.items()
        },
        charts={name: png for name, png in charts.items() if png},
        samples=samples,
        held_out={user: set(titles) for user, titles in (held_out or {}).items()},
        links=links or {},
    )


def training_page(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    chart: bytes | None,
    settings: tuple[Sequence[str], Sequence[Sequence[Any]]] | None = None,
) -> str:
    """A standalone page of training curves: a summary table, the curve chart and, when
    given, the runs' settings (hyper-parameters and data identity) side by side."""
    return render(
        "training.html.j2", title=title, header=header, rows=rows, chart=chart, settings=settings
    )
