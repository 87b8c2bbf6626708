"""What the API shows of a generation job's result: the parts the page needs, by URL.

The whole record (every LLM call, token counts, soft tokens) stays in the job's
``result/result.json``; the status endpoint answers with this smaller view, where
candidate images are URLs served by job id and index, never file paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tastemaker.generation.result import GenerationResult, Prepared


def dry_view(prepared: Prepared) -> dict[str, Any]:
    """Stages 1-3 of a job: the history read and both keyword lists (no images)."""
    history = prepared.history
    return {
        "user_id": history.user_id,
        "item_id": prepared.item.item_id,
        "item_title": prepared.item.title,
        "history": [
            {"item_id": item, "title": title}
            for item, title in zip(history.item_ids, history.titles, strict=True)
        ],
        "preference_keywords": list(prepared.preference.keywords),
        "item_keywords": list(prepared.item_keywords.keywords),
        "keyword_sources": {
            "preference": prepared.preference.extractor,
            "item": prepared.item_keywords.extractor,
        },
        "notes": list(prepared.notes),
        "prompts": [],
        "candidates": [],
        "best": None,
    }


def result_view(result: GenerationResult, job_id: str) -> dict[str, Any]:
    """A finished job: :func:`dry_view` plus prompts and candidates with d_p, d_t, z."""
    view = dry_view(result.prepared)
    candidates = []
    for c in result.candidates:
        scores = c.scores or {}
        candidates.append(
            {
                "index": c.index,
                "file": c.file,
                "image_url": None if c.file is None else f"/generations/{job_id}/images/{c.index}",
                "weights": list(c.weights),
                "seed": c.seed,
                "prompt": c.prompt,
                "d_p": scores.get("d_p"),
                "d_t": scores.get("d_t"),
                "z": scores.get("z"),
            }
        )
    view.update(
        method=result.method,
        prompts=list(dict.fromkeys(c.prompt for c in result.candidates)),
        candidates=candidates,
        best=None if result.selection is None else result.selection["best"],
        scorer=None if result.selection is None else result.selection["scorer"],
    )
    return view


__all__ = ["dry_view", "result_view"]
