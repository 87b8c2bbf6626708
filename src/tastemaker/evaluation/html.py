"""Results people would rather look at: plots (matplotlib) and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

from tastemaker.evaluation.report import EvaluationReport


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def metrics_chart(reports: Sequence[EvaluationReport], metrics: Sequence[str]) -> bytes:
    """Grouped bars: one group per metric, one bar per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(reports), 1)
    for i, report in enumerate(reports):
        xs = [m + i * width for m in range(len(metrics))]
        ax.bar(xs, [report.metrics.get(m, 0.0) for m in metrics], width, label=report.model)
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(metrics))], list(metrics))
    ax.set_ylabel("test score")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def training_chart(logs: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> bytes | None:
    """Loss and validation ``metric`` per epoch for each iteratively trained model."""
    logs = {name: log for name, log in logs.items() if log}
    if not logs:
        return None
    plt = _pyplot()
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, log in logs.items():
        loss_ax.plot([r["epoch"] for r in log], [r["loss"] for r in log], label=name)
        scored = [r for r in log if r.get(metric) is not None]
        metric_ax.plot([r["epoch"] for r in scored], [r[metric] for r in scored], "o-", label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    metric_ax.set(xlabel="epoch", ylabel=f"validation {metric}")
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    return png_bytes(fig)


def trials_chart(values: Sequence[float | None], metric: str) -> bytes:
    """A search's validation ``metric`` per trial (failed trials, None, as red crosses)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    done = [(i, v) for i, v in enumerate(values) if v is not None]
    if done:
        xs, ys = zip(*done, strict=True)
        ax.plot(xs, ys, "o", label="trial")
        ax.step(xs, list(accumulate(ys, max)), where="post", label="best so far")
    failed = [i for i, v in enumerate(values) if v is None]
    if failed:
        floor = min((v for _, v in done), default=0.0)
        ax.plot(failed, [floor] * len(failed), "x", color="tab:red", label="failed")
    ax.set(xlabel="trial", ylabel=f"validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return png_bytes(fig)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_report(
    title: str,
    reports: Sequence[EvaluationReport],
    metrics: Sequence[str],
    charts: Mapping[str, bytes | None],
    samples: Mapping[str, Mapping[str, Sequence[str]]],
) -> str:
    """A standalone page: leaderboard, charts, and sample recommendations with titles.

    ``samples`` maps a user ID to ``{"history": [...titles], "<model>": [...titles]}``.
    """
    first = reports[0]
    leaderboard = _table(
        ["model", *metrics], [[r.model, *(r.metrics.get(m, 0.0) for m in metrics)] for r in reports]
    )
    figures = "".join(f"<h3>{html.escape(k)}</h3>{_img(v, k)}" for k, v in charts.items() if v)
    users = ""
    for user, lists in samples.items():
        cells = [
            f"<div class='col'><h4>{html.escape(name)}</h4><ol>"
            + "".join(f"<li>{html.escape(t)}</li>" for t in titles)
            + "</ol></div>"
            for name, titles in lists.items()
        ]
        users += f"<h3>user {html.escape(user)}</h3><div class='row'>{''.join(cells)}</div>"
    return _page(
        title,
        f"""<p class="meta">data set {html.escape(first.dataset)} ·
split {html.escape(first.split_kind)} · seed {first.seed} ·
data hash {html.escape(first.data_hash[:16])}… · part {html.escape(first.part)}</p>
<h2>Leaderboard</h2>{leaderboard}
<h2>Charts</h2>{figures}
<h2>Sample recommendations</h2>{users}
""",
    )


def training_page(
    title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], chart: bytes | None
) -> str:
    """A standalone page of training curves: a summary table and the curve chart."""
    figure = _img(chart, "training curves") if chart else ""
    return _page(title, f"<h2>Summary</h2>{_table(header, rows)}\n<h2>Curves</h2>{figure}\n")


def _page(title: str, body: str) -> str:
    """The HTML shell (head, style, title) shared by every page tastemaker writes."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 68rem; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .7rem; border-bottom: 1px solid #ddd; }}
td {{ text-align: right; }} td:first-child {{ text-align: left; }}
.row {{ display: flex; gap: 1.5rem; flex-wrap: wrap; }}
.col {{ flex: 1 1 14rem; font-size: .9rem; }}
.meta {{ color: #666; font-size: .85rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}</body></html>
"""
