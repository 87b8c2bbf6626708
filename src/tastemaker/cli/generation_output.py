"""What ``tastemaker generate`` prints and writes: one result's table, a batch's folders.

Shared by ``generate``, ``generate batch`` and ``generate missing``; results are
written atomically (a folder appears whole or not at all).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from tastemaker.atomic import atomic_path
from tastemaker.cli.common import console
from tastemaker.generation.html import number

if TYPE_CHECKING:
    from tastemaker.generation.data import Data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
    from tastemaker.generation.result import GenerationResult


def show_progress() -> bool:
    """Progress bars only on a terminal (piped output gets the log lines)."""
    return sys.stderr.isatty()


def print_result(result: GenerationResult, out: Path) -> None:
    p = result.prepared
    console.print(
        f"[bold]user {result.user_id}[/bold] · {p.item.title} · "
        f"{len(p.history)} liked items · method {result.method}"
    )
    console.print(f"preference keywords ({p.preference.extractor}): {p.preference.text}")
    console.print(f"item keywords: {p.item_keywords.text}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table("#", "w_p:w_t", "seed", "d_p", "d_t", "z", "prompt")
    best = result.best
    for c in result.candidates:
        s = c.scores or {}
        chosen = best is not None and c.index == best.index
        mark = " *" if chosen else " (flagged: safety checker)" if c.nsfw else ""
        table.add_row(
            f"{c.index}{mark}",
            f"{c.weights[0]:g}:{c.weights[1]:g}",
            str(c.seed),
            number(s.get("d_p")),
            number(s.get("d_t")),
            number(s.get("z")),
            c.prompt,
        )
    console.print(table)
    console.print(f"written to {out} (page: {out / 'index.html'})")


def write_batch(
    pipe: PersonalizedGenerationPipeline,
    dataset: Data,
    todo: list[tuple[str, str]],
    out: Path,
    method: str | None,
) -> None:
    """Every (user, item) pair checked, then generated into ``out`` (one folder each, a
    ``summary.json`` and an index page), written atomically."""
    from tqdm.auto import tqdm

    from tastemaker.generation.html import batch_page

    for u, i in todo:
        pipe.describe(dataset, u, i)
    pipe.load()
    rows = []
    with atomic_path(out, directory=True) as tmp:
        bar = tqdm(todo, desc="generate", unit="pair", disable=not show_progress())
        for k, (u, i) in enumerate(bar):
            result = pipe(dataset, u, i, method=method)
            folder = f"{k:03d}-user{u}-item{i}"
            result.save(tmp / folder)
            best = result.best
            rows.append(
                {
                    "user_id": u,
                    "item_id": i,
                    "title": result.prepared.item.title,
                    "folder": folder,
                    "best": None if best is None else best.index,
                    "z": None if best is None or best.scores is None else best.scores["z"],
                    "prompt": (best or result.candidates[0]).prompt,
                    "notes": result.notes,
                }
            )
        (tmp / "summary.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        (tmp / "index.html").write_text(batch_page(rows), encoding="utf-8")
    console.print(f"{len(rows)} pairs written to {out} (page: {out / 'index.html'})")


__all__ = ["print_result", "show_progress", "write_batch"]
