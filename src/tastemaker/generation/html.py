"""Pages that show why an image came out as it did: history, keywords, prompts, scores.

:func:`result_page` is written beside a :class:`~tastemaker.generation.result.GenerationResult`
(its candidate PNGs are linked by relative path); the user's history images and the
target's real image are embedded as small base64 thumbnails, so the page still
shows them when the data folder moves. :func:`evaluation_page` shows the
ablation table of :mod:`tastemaker.generation.evaluation`. The pages are rendered
from ``tastemaker/reporting/templates/generation_*.html.j2`` (autoescaped: titles,
prompts and LLM replies are shown, never interpreted).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.reporting.html import data_uri, render
from tastemaker.reporting.values import format_value

if TYPE_CHECKING:
    from tastemaker.generation.evaluation import GenerationEvaluation
    from tastemaker.generation.keywords import Keywords
    from tastemaker.generation.result import Candidate, GenerationResult

THUMBNAIL = (96, 144)  # width, height: a poster's 2:3
SCORES = ("d_p", "d_t", "z")


def thumbnail_uri(path: str | Path | None, size: tuple[int, int] = THUMBNAIL) -> str | None:
    """The image at ``path`` as an inline JPEG thumbnail (None: no path, or unreadable)."""
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
    return data_uri(buffer.getvalue(), "image/jpeg")


def number(value: float | None, digits: int = 4) -> str:
    """A score as the pages and tables print it ("–" when missing)."""
    return format_value(None if value is None else float(value), digits)


def _keywords(keywords: Keywords) -> dict[str, Any]:
    return {
        "keywords": keywords.keywords,
        "extractor": keywords.extractor,
        "scores": [number(s, 3) for s in keywords.scores],
        "score_label": keywords.score_label or "score",
        "attempts": [
            {
                "temperature": f"{a.temperature:g}",
                "seed": a.seed,
                "kept": len(a.parsed),
                "transcript": "\n\n".join(f"[{m.role}] {m.content}" for m in a.messages),
                "raw": a.raw,
            }
            for a in keywords.attempts
        ],
    }


def _history(result: GenerationResult) -> dict[str, Any]:
    history = result.prepared.history
    cards = [
        {"title": title, "line": line, "image": thumbnail_uri(path)}
        for title, line, path in zip(
            history.titles, history.lines, result.prepared.history_images, strict=True
        )
    ]
    rule = f"rating ≥ {history.min_rating:g}, " if history.min_rating is not None else ""
    return {
        "kept": len(history),
        "total": history.n_interactions,
        "rule": rule,
        "cards": cards,
        "text": history.text,
    }


def _candidate(candidate: Candidate, best: Candidate | None) -> dict[str, Any]:
    w_p, w_t = candidate.weights
    lines = [f"w_p:w_t {w_p:g}:{w_t:g} · seed {candidate.seed}"]
    if candidate.nsfw:  # the pipeline never scores or chooses these (see pipeline.py)
        lines.append("flagged by the safety checker: not scored, not chosen")
    if candidate.scores is not None:
        lines += [f"{name} {number(candidate.scores.get(name))}" for name in SCORES]
    return {
        "index": candidate.index,
        "file": candidate.file,
        "chosen": best is not None and candidate.index == best.index,
        "lines": lines,
    }


def _prompts(result: GenerationResult) -> list[list[str | None]]:
    rows: list[list[str | None]] = []
    for weights in dict.fromkeys(c.weights for c in result.candidates):
        condition = next(c.condition for c in result.candidates if c.weights == weights)
        dropped = [k for ks in condition.get("dropped_keywords", {}).values() for k in ks]
        rows.append(
            [
                f"{weights[0]:g}:{weights[1]:g}",
                condition["prompt"],
                condition["negative_prompt"],
                ", ".join(dropped) or None,
            ]
        )
    return rows


def result_page(result: GenerationResult) -> str:
    """The page of one generation: history, keywords (with LLM calls), prompts, candidates."""
    p = result.prepared
    components = result.components
    selection = result.selection
    scored = (
        f"scorer {selection['scorer']}, α = {selection['alpha']:g}: z = α·log d_p + (1−α)·log d_t"
        if selection
        else "not scored (no scorer configured: pass --scorer clip:ID or aligned:DIR)"
    )
    soft = (
        {"count": p.soft_tokens.shape[0], "checkpoint": components.get("soft_checkpoint")}
        if p.soft_tokens is not None
        else None
    )
    best = result.best
    return render(
        "generation_result.html.j2",
        title=f"Generated for user {result.user_id}: {p.item.title}",
        user_id=result.user_id,
        item_id=result.item_id,
        domain=components.get("domain"),
        method=result.method,
        extractor=components.get("extractor"),
        generator=(components.get("generator") or {}).get("model", "none (prompts only)"),
        notes=result.notes,
        history=_history(result),
        target={"title": p.item.title, "text": p.item.text, "image": thumbnail_uri(p.item_image)},
        preference=_keywords(p.preference),
        item_keywords=_keywords(p.item_keywords),
        soft=soft,
        prompts=_prompts(result),
        scored=scored,
        candidates=[_candidate(c, best) for c in result.candidates],
    )


def evaluation_page(
    evaluation: GenerationEvaluation, images: Mapping[tuple[str, str, str], str]
) -> str:
    """The ablation: one row per method, then each pair's best image per method.

    ``images`` maps (user, item, method) to the image's path relative to the page.
    """
    from tastemaker.generation.evaluation import METRICS

    header, _ = evaluation.table_rows()
    # The summary's own numbers (None when unmeasured), so the table aligns and dashes them.
    rows = [
        [row["method"], row["pairs"], *(row[m] for m in METRICS)] for row in evaluation.summary()
    ]
    pairs = [
        {
            "user_id": u,
            "item_id": i,
            "cards": [
                {
                    "method": r.method,
                    "src": images[(u, i, r.method)],
                    "z": r.z,
                    "target_cosine": r.target_cosine,
                }
                for r in evaluation.records
                if (r.user_id, r.item_id) == (u, i) and (u, i, r.method) in images
            ],
        }
        for u, i in dict.fromkeys((r.user_id, r.item_id) for r in evaluation.records)
    ]
    return render(
        "generation_evaluation.html.j2",
        title="Personalized generation: the PMG ablation",
        n_pairs=len(evaluation.pairs),
        alpha=f"{evaluation.alpha:g}",
        notes=evaluation.notes,
        header=header,
        rows=rows,
        legend=evaluation.legend(),
        pairs=pairs,
    )


def batch_page(rows: list[dict[str, object]]) -> str:
    """The index of a batch: one line per (user, item) with its best prompt and z, linked."""
    shown = [{**r, "z": r["z"] if isinstance(r["z"], float) else None} for r in rows]
    return render(
        "generation_batch.html.j2", title=f"Personalized generation: {len(rows)} pairs", rows=shown
    )
