"""Pages that show why an image came out as it did: history, keywords, prompts, scores.

:func:`result_page` is written beside a :class:`~tastemaker.generation.pipeline.GenerationResult`
(its candidate PNGs are linked by relative path); the user's history images and the
target's real image are embedded as small base64 thumbnails, so the page still
shows them when the data folder moves. :func:`evaluation_page` shows the
ablation table of :mod:`tastemaker.generation.evaluation`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tastemaker.evaluation.html import _page, _table

if TYPE_CHECKING:
    from tastemaker.generation.evaluation import GenerationEvaluation
    from tastemaker.generation.keywords import Keywords
    from tastemaker.generation.pipeline import GenerationResult

THUMBNAIL = (96, 144)  # width, height: a poster's 2:3

_STYLE = """<style>
.grid { display: flex; flex-wrap: wrap; gap: .8rem; }
.card { width: 8.5rem; font-size: .8rem; text-align: center; }
.card img { max-width: 8rem; max-height: 12rem; image-rendering: pixelated; }
.candidate { border: 2px solid transparent; padding: .3rem; width: 11rem; }
.candidate img { width: 10rem; }
.best { border-color: #2a7; background: #efe; }
.note { background: #fff4d6; padding: .4rem .8rem; border-left: 4px solid #e0a000; }
.kw { display: inline-block; background: #eef; border-radius: .6rem; padding: .05rem .5rem;
      margin: .1rem; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .5rem; font-size: .8rem; }
</style>"""


def thumbnail(path: str | Path | None, size: tuple[int, int] = THUMBNAIL) -> str | None:
    """An ``<img>`` with the image at ``path`` as an inline JPEG thumbnail (None: unreadable)."""
    if not path:
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            small = image.convert("RGB")
            small.thumbnail(size)
    except OSError:
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/jpeg;base64,{data}">'


def number(value: float | None, digits: int = 4) -> str:
    """A score as the pages and tables print it ("n/a" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _keywords(keywords: Keywords) -> str:
    chips = "".join(f"<span class='kw'>{html.escape(k)}</span>" for k in keywords.keywords)
    scores = (
        f"<p class='meta'>relevance: {', '.join(number(s, 3) for s in keywords.scores)}</p>"
        if keywords.scores
        else ""
    )
    attempts = "".join(
        f"<details><summary>LLM call {i} (temperature {a.temperature:g}, seed {a.seed}): "
        f"kept {len(a.parsed)}</summary><pre>"
        + html.escape("\n\n".join(f"[{m.role}] {m.content}" for m in a.messages))
        + f"</pre><p>raw reply:</p><pre>{html.escape(a.raw)}</pre></details>"
        for i, a in enumerate(keywords.attempts, 1)
    )
    return (
        f"<p>{chips}</p><p class='meta'>extractor {html.escape(keywords.extractor)}</p>"
        f"{scores}{attempts}"
    )


def _history(result: GenerationResult) -> str:
    history = result.prepared.history
    cards = []
    for title, line, path in zip(
        history.titles, history.lines, result.prepared.history_images, strict=True
    ):
        image = thumbnail(path) or ""
        cards.append(
            f"<div class='card'>{image}<div title='{html.escape(line)}'>"
            f"{html.escape(title)}</div></div>"
        )
    kept = f"rating ≥ {history.min_rating:g}, " if history.min_rating is not None else ""
    return (
        f"<p class='meta'>{len(history)} of {history.n_interactions} interactions "
        f"({kept}in the order serialized below)</p><div class='grid'>{''.join(cards)}</div>"
        f"<details><summary>serialized history</summary><pre>{html.escape(history.text)}"
        "</pre></details>"
    )


def _candidates(result: GenerationResult) -> str:
    best = result.best
    cards = []
    for c in result.candidates:
        scores = c.scores or {}
        chosen = best is not None and c.index == best.index
        image = f"<img alt='candidate {c.index}' src='{c.file}'>" if c.file else ""
        lines = [
            f"w_p:w_t {c.weights[0]:g}:{c.weights[1]:g} · seed {c.seed}",
            *(
                f"{name} {number(scores.get(name))}"
                for name in ("d_p", "d_t", "z")
                if c.scores is not None
            ),
        ]
        label = "<strong>chosen (highest z)</strong><br>" if chosen else ""
        cards.append(
            f"<div class='card candidate{' best' if chosen else ''}'>{image}<div>{label}"
            + "<br>".join(html.escape(line) for line in lines)
            + "</div></div>"
        )
    return f"<div class='grid'>{''.join(cards)}</div>"


def _prompts(result: GenerationResult) -> str:
    rows = []
    for weights in dict.fromkeys(c.weights for c in result.candidates):
        condition = next(c.condition for c in result.candidates if c.weights == weights)
        dropped = [k for ks in condition.get("dropped_keywords", {}).values() for k in ks]
        rows.append(
            [
                f"{weights[0]:g}:{weights[1]:g}",
                condition["prompt"],
                condition["negative_prompt"],
                ", ".join(dropped) or "-",
            ]
        )
    return _table(["w_p:w_t", "prompt", "negative prompt", "dropped keywords"], rows)


def result_page(result: GenerationResult) -> str:
    """The page of one generation: history, keywords (with LLM calls), prompts, candidates."""
    p = result.prepared
    components = result.components
    selection = result.selection
    scored = (
        f"scorer {html.escape(str(selection['scorer']))}, α = {selection['alpha']:g}: "
        "z = α·log d_p + (1−α)·log d_t"
        if selection
        else "not scored (no scorer configured: pass --scorer clip:ID or aligned:DIR)"
    )
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in result.notes)
    target = thumbnail(p.item_image)
    soft = (
        f"<p>{p.soft_tokens.shape[0]} soft preference tokens from "
        f"{html.escape(str(components.get('soft_checkpoint')))}</p>"
        if p.soft_tokens is not None
        else "<p class='meta'>no soft preference tokens</p>"
    )
    body = f"""{_STYLE}
<p class="meta">user {html.escape(result.user_id)} · target {html.escape(result.item_id)} ·
domain {html.escape(str(components.get("domain")))} · method {html.escape(result.method)} ·
extractor {html.escape(str(components.get("extractor")))} · generator
{html.escape(str((components.get("generator") or {}).get("model", "none (prompts only)")))}</p>
{notes}
<h2>History</h2>{_history(result)}
<h2>Target</h2><div class="row"><div>{target or ""}</div>
<pre>{html.escape(p.item.text)}</pre></div>
<h2>Preference keywords</h2>{_keywords(p.preference)}
<h2>Target keywords</h2>{_keywords(p.item_keywords)}
<h2>Soft tokens</h2>{soft}
<h2>Prompts</h2>{_prompts(result)}
<h2>Candidates</h2><p class="meta">{scored}</p>{_candidates(result)}
"""
    return _page(f"Generated for user {result.user_id}: {p.item.title}", body)


def evaluation_page(
    evaluation: GenerationEvaluation, images: Mapping[tuple[str, str, str], str]
) -> str:
    """The ablation: one row per method, then each pair's best image per method.

    ``images`` maps (user, item, method) to the image's path relative to the page.
    """
    header, rows = evaluation.table_rows()
    pairs = "".join(
        f"<h3>user {html.escape(u)} · item {html.escape(i)}</h3><div class='grid'>"
        + "".join(
            f"<div class='card candidate'><img alt='{html.escape(r.method)}' "
            f"src='{images[(u, i, r.method)]}'><div>{html.escape(r.method)}<br>"
            f"z {number(r.z)}<br>target cos {number(r.target_cosine)}</div></div>"
            for r in evaluation.records
            if (r.user_id, r.item_id) == (u, i) and (u, i, r.method) in images
        )
        + "</div>"
        for u, i in dict.fromkeys((r.user_id, r.item_id) for r in evaluation.records)
    )
    body = f"""{_STYLE}
<p class="meta">{len(evaluation.pairs)} (user, item) pairs · α = {evaluation.alpha:g} ·
the same seeds for every method</p>
{"".join(f"<p class='note'>{html.escape(n)}</p>" for n in evaluation.notes)}
<h2>Methods</h2>{_table(header, rows)}
<p class="meta">{html.escape(evaluation.legend())}</p>
<h2>Best image per method</h2>{pairs}
"""
    return _page("Personalized generation: the PMG ablation", body)


def batch_page(rows: list[dict[str, object]]) -> str:
    """The index of a batch: one line per (user, item) with its best prompt and z, linked."""
    lines = "".join(
        f"<tr><td><a href='{html.escape(str(r['folder']))}/index.html'>"
        f"{html.escape(str(r['user_id']))}</a></td><td>{html.escape(str(r['title']))}</td>"
        f"<td>{number(r['z'] if isinstance(r['z'], float) else None)}</td>"
        f"<td>{html.escape(str(r['prompt']))}</td></tr>"
        for r in rows
    )
    table = (
        "<table><thead><tr><th>user</th><th>item</th><th>best z</th><th>prompt</th></tr>"
        f"</thead><tbody>{lines}</tbody></table>"
    )
    return _page(f"Personalized generation: {len(rows)} pairs", table)
