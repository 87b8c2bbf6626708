"""What the pipeline did for one (user, target), kept whole and written where one can look.

:class:`GenerationResult` holds every intermediate (history, keywords with their
LLM calls, soft tokens, each candidate's condition and scores, the best by z);
:meth:`GenerationResult.save` writes it as JSON, PNGs and an HTML page, so one can
see why an image came out as it did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.atomic import atomic_path
from tastemaker.generation.history import ItemText, UserHistory
from tastemaker.generation.keywords import Keywords
from tastemaker.generation.scenario import METHODS

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

RESULT_FILE = "result.json"
PAGE_FILE = "index.html"
BEST_FILE = "best.png"
CANDIDATES = "candidates"


@dataclass
class Prepared:
    """Stages 1-4 for one (user, target): what every weight and method share."""

    history: UserHistory
    item: ItemText
    history_images: list[str | None]
    item_image: str | None
    preference: Keywords
    item_keywords: Keywords
    soft_tokens: torch.Tensor | None
    notes: list[str]
    seconds: dict[str, float]


@dataclass
class Candidate:
    """One generated (or, in a dry run, only composed) candidate."""

    index: int
    weights: tuple[float, float]
    seed: int
    condition: dict[str, Any]
    image: Image | None = None
    scores: dict[str, float] | None = None
    nsfw: bool | None = None  # the safety checker's flag; None: the pipeline has none

    @property
    def file(self) -> str | None:
        return None if self.image is None else f"{CANDIDATES}/{self.index:02d}.png"

    @property
    def prompt(self) -> str:
        return str(self.condition["prompt"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "weights": list(self.weights),
            "seed": self.seed,
            "condition": self.condition,
            "scores": self.scores,
            "nsfw": self.nsfw,
        }


@dataclass
class GenerationResult:
    """Everything the pipeline did for one (user, target), in order."""

    prepared: Prepared
    method: str
    candidates: list[Candidate]
    selection: dict[str, Any] | None  # {"alpha", "best", "scorer"} when scored
    components: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def user_id(self) -> str:
        return self.prepared.history.user_id

    @property
    def item_id(self) -> str:
        return self.prepared.item.item_id

    @property
    def notes(self) -> list[str]:
        return self.prepared.notes

    @property
    def best(self) -> Candidate | None:
        """The candidate with the highest z (None when unscored, or when the safety checker
        flagged every candidate)."""
        index = None if self.selection is None else self.selection["best"]
        return None if index is None else self.candidates[index]

    @property
    def seeds(self) -> list[int]:
        return sorted({c.seed for c in self.candidates})

    def to_dict(self) -> dict[str, Any]:
        p = self.prepared
        return {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "method": self.method,
            "preference_keywords_in_condition": METHODS[self.method][0],
            "soft_tokens_in_condition": METHODS[self.method][1],
            "history": {**p.history.to_dict(), "images": p.history_images},
            "item": {**p.item.to_dict(), "image": p.item_image},
            "preference_keywords": p.preference.to_dict(),
            "item_keywords": p.item_keywords.to_dict(),
            "notes": p.notes,
            "soft_tokens": _soft_summary(p.soft_tokens, self.components.get("soft_checkpoint")),
            "weights": [list(w) for w in dict.fromkeys(c.weights for c in self.candidates)],
            "seeds": self.seeds,
            "candidates": [c.to_dict() for c in self.candidates],
            "selection": self.selection,
            "best_file": BEST_FILE if self.best is not None and self.best.image else None,
            "components": self.components,
            "seconds": {**p.seconds, **self.seconds},
        }

    def save(self, folder: Path | str) -> Path:
        """Write ``result.json``, the candidate PNGs, ``best.png`` and ``index.html``, atomically
        (the folder appears complete or not at all; an existing one is replaced)."""
        from tastemaker.generation.html import result_page

        folder = Path(folder)
        with atomic_path(folder, directory=True) as tmp:
            for candidate in self.candidates:
                if candidate.image is not None and candidate.file is not None:
                    (tmp / CANDIDATES).mkdir(exist_ok=True)
                    candidate.image.save(tmp / candidate.file, format="PNG")
            best = self.best
            if best is not None and best.image is not None:
                best.image.save(tmp / BEST_FILE, format="PNG")
            record = self.to_dict()
            (tmp / RESULT_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            (tmp / PAGE_FILE).write_text(result_page(self), encoding="utf-8")
        return folder


def _soft_summary(tokens: torch.Tensor | None, checkpoint: str | None) -> dict[str, Any] | None:
    if tokens is None:
        return None
    norms = tokens.float().norm(dim=-1).cpu().tolist()
    return {"checkpoint": checkpoint, "shape": list(tokens.shape), "norms": norms}


__all__ = [
    "BEST_FILE",
    "CANDIDATES",
    "PAGE_FILE",
    "RESULT_FILE",
    "Candidate",
    "GenerationResult",
    "Prepared",
]
