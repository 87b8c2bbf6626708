"""Evaluating personalized generation: PMG's ablation over (user, target item) pairs.

For each pair and each method (PMG, Shen et al., WWW 2024, arXiv 2404.08677,
section 4: item keywords only, + preference keywords, + soft tokens, both), the
pipeline generates candidates from the same seeds and keeps the best by z. Of
that image we report

* d_p, d_t and z from the selector (the pipeline's scorer): the objective the
  image was chosen by, hence biased upward as a measure of it;
* d_p, d_t and z from a *judge*, a second scorer independent of the selector
  (other weights: CLIP, or an aligned space trained with another seed on items
  the selector never trained on, :mod:`tastemaker.generation.judge`), always
  with d = (1 + cos) / 2 and α = 0.5, so its figures compare across presets;
* its similarity to the user's history images and to the target item's real
  image, two ways: the cosine of image-encoder features (a perceptual
  similarity; the scorer's own image encoder before any projection into a joint
  space, as CLIP-I in personalization papers) and SSIM (Wang et al., 2004) on
  pixels, with the reference centre-cropped and resized to the generated image
  (both in :mod:`tastemaker.generation.similarity`).

A pair without history images or without a real target image (the "missing
product image" scenario) gets NaN there, and the means skip it (their counts say how many).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tastemaker.atomic import atomic_path
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import ITEM_ID, RATING, USER_ID
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.similarity import open_images, perceptual_features, pixels, ssim

if TYPE_CHECKING:
    from PIL.Image import Image

    from tastemaker.generation.data import Data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
    from tastemaker.generation.result import GenerationResult
    from tastemaker.generation.scoring import ImageTextScorer

JUDGE_ALPHA = 0.5  # the judge's z: fixed, whatever the selector's α and d
METRICS = (
    "d_p",
    "d_t",
    "z",
    "judge_d_p",
    "judge_d_t",
    "judge_z",
    "history_cosine",
    "history_ssim",
    "target_cosine",
    "target_ssim",
)
LABELS = {
    "d_p": "d_p",
    "d_t": "d_t",
    "z": "z",
    "judge_d_p": "judge d_p",
    "judge_d_t": "judge d_t",
    "judge_z": "judge z",
    "history_cosine": "history cos",
    "history_ssim": "history SSIM",
    "target_cosine": "target cos",
    "target_ssim": "target SSIM",
}
METHOD_LABELS = {
    "none": "no personalization (item keywords only)",
    "hard": "hard: preference keywords + item keywords",
    "soft": "soft: soft tokens + item keywords",
    "both": "both: soft tokens + preference keywords + item keywords (PMG)",
}


# ---------------------------------------------------------------------------- records


@dataclass
class PairRecord:
    """The best image of one method for one (user, item) pair, and how it compares."""

    user_id: str
    item_id: str
    method: str
    d_p: float
    d_t: float
    z: float
    judge_d_p: float
    judge_d_t: float
    judge_z: float
    history_cosine: float
    history_ssim: float
    target_cosine: float
    target_ssim: float
    n_history_images: int
    weights: list[float]
    seed: int
    prompt: str
    image: Image | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "image"}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


@dataclass
class GenerationEvaluation:
    """Per-pair records of every method, their means, and how to show them."""

    pairs: list[tuple[str, str]]
    methods: list[str]
    alpha: float
    records: list[PairRecord]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """One row per method: each metric's mean over the pairs that have it, and that count."""
        rows = []
        for method in self.methods:
            mine = [r for r in self.records if r.method == method]
            row: dict[str, Any] = {"method": method, "pairs": len(mine)}
            for metric in METRICS:
                values = np.array([getattr(r, metric) for r in mine], dtype=np.float64)
                present = values[~np.isnan(values)]
                row[metric] = float(present.mean()) if present.size else None
                row[f"{metric}_n"] = int(present.size)
            rows.append(row)
        return rows

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows of :meth:`summary` (Markdown and HTML share them)."""
        from tastemaker.generation.html import number

        header = ["method", "pairs", *(LABELS[m] for m in METRICS)]
        rows = [
            [row["method"], str(row["pairs"]), *(number(row[m]) for m in METRICS)]
            for row in self.summary()
        ]
        return header, rows

    def legend(self) -> str:
        methods = "; ".join(f"{m}: {METHOD_LABELS[m]}" for m in self.methods)
        return (
            f"{methods}. d_p, d_t, z: the selector's scores of the best image (the ones it was "
            "chosen by) against the preference (d_p) and item (d_t) keywords, "
            f"z = {self.alpha:g}·log d_p + {1 - self.alpha:g}·log d_t; judge: an independent "
            f"scorer's, d = (1 + cos) / 2, z = {JUDGE_ALPHA:g}·log d_p + "
            f"{1 - JUDGE_ALPHA:g}·log d_t. "
            "cos: cosine of image-encoder features; SSIM: Wang et al. (2004), 11×11 Gaussian "
            "window, the reference centre-cropped and resized to the generated image; history: "
            "mean over the user's history images; target: the item's real image."
        )

    def markdown(self) -> str:
        header, rows = self.table_rows()
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---:", *("---:" for _ in METRICS)]) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
        notes = [f"\n> {n}" for n in self.notes]
        return "\n".join([*lines, "", self.legend(), *notes]) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": [list(p) for p in self.pairs],
            "methods": self.summary(),
            "alpha": self.alpha,
            "notes": self.notes,
            "records": [r.to_dict() for r in self.records],
        }

    def write(self, folder: Path | str) -> Path:
        """``table.md``, ``table.json``, ``index.html`` and each best image, atomically."""
        from tastemaker.generation.html import evaluation_page

        folder = Path(folder)
        index = {pair: k for k, pair in enumerate(self.pairs)}
        with atomic_path(folder, directory=True) as tmp:
            images: dict[tuple[str, str, str], str] = {}
            for r in self.records:
                if r.image is None:
                    continue
                name = f"images/{index[(r.user_id, r.item_id)]:03d}-{r.method}.png"
                (tmp / "images").mkdir(exist_ok=True)
                r.image.save(tmp / name, format="PNG")
                images[(r.user_id, r.item_id, r.method)] = name
            (tmp / "table.md").write_text(self.markdown(), encoding="utf-8")
            text = json.dumps(self.to_dict(), indent=1) + "\n"
            (tmp / "table.json").write_text(text, encoding="utf-8")
            (tmp / "index.html").write_text(evaluation_page(self, images), encoding="utf-8")
        return folder


# ---------------------------------------------------------------------------- pairs


def sample_pairs(
    split: Split, n: int, *, seed: int = 0, min_rating: float | None = 4.0
) -> list[tuple[str, str]]:
    """Up to ``n`` (user, item) pairs, one per user: a test item the user liked, that the
    history (train + valid) never saw; users and items drawn with ``seed``."""
    test = split.test.frame
    if min_rating is not None and test[RATING].null_count() < test.height:
        test = test.filter(pl.col(RATING) >= min_rating)
    known = split.train.frame[USER_ID].unique().implode()
    test = test.filter(pl.col(USER_ID).is_in(known)).sort([USER_ID, ITEM_ID])
    if test.height == 0:
        raise DataError(
            "the split's test part has no liked item of a user with a history",
            "use a split with a test part (e.g. --split loo), or pass --pairs",
        )
    rng = np.random.default_rng(seed)
    shuffled = test.with_columns(pl.Series("_key", rng.permutation(test.height))).sort("_key")
    first = shuffled.unique(USER_ID, keep="first", maintain_order=True).head(n)
    return list(zip(first[USER_ID].to_list(), first[ITEM_ID].cast(pl.Utf8).to_list(), strict=True))


def read_pairs(path: Path | str) -> list[tuple[str, str]]:
    """(user, item) pairs from a CSV file with ``user_id`` and ``item_id`` columns."""
    path = Path(path)
    try:
        frame = pl.read_csv(path, infer_schema_length=0)  # every column as text
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(
            f"cannot read pairs from {path} ({type(exc).__name__})",
            "pass a CSV file with user_id,item_id columns",
        ) from exc
    missing = [c for c in (USER_ID, ITEM_ID) if c not in frame.columns]
    if missing or frame.height == 0:
        raise DataError(
            f"{path} has {'no ' + ', '.join(missing) + ' column' if missing else 'no rows'}",
            "write a header user_id,item_id and one pair per line",
        )
    return list(zip(frame[USER_ID].to_list(), frame[ITEM_ID].to_list(), strict=True))


# ---------------------------------------------------------------------------- evaluation


def evaluate_generation(
    pipeline: PersonalizedGenerationPipeline,
    data: Data,
    pairs: Sequence[tuple[object, object]],
    methods: Sequence[str] | None = None,
    *,
    judge: ImageTextScorer | None = None,
    weights: Sequence[Any] | None = None,
    n_candidates: int | None = None,
    progress: bool = True,
) -> GenerationEvaluation:
    """PMG's ablation over ``pairs``: every method's best image, scored and compared.

    ``methods`` defaults to all four when the pipeline has soft tokens, else ``none``
    and ``hard`` (noted in the result). ``judge`` scores each best image again; it must
    not be the pipeline's scorer (without one the judge columns stay empty, noted).
    Every pair is checked (known user with liked items, describable item) before
    anything is generated.
    """
    from tqdm.auto import tqdm

    from tastemaker.generation.scenario import METHODS

    scorer = pipeline.scorer
    if scorer is None or pipeline.generator is None:
        raise ConfigError(
            "evaluating generation needs a generator and a scorer",
            "configure [generator] and [scorer] (e.g. --scorer clip:ID or aligned:DIR)",
        )
    if judge is not None and judge is scorer:
        raise ConfigError(
            "the judge is the selector itself, so its scores would be the selection's own",
            "give the judge other weights (clip:ID, or an aligned space from "
            "generation.judge.judge_space)",
        )
    notes: list[str] = []
    if methods is None:
        methods = list(METHODS) if pipeline.soft is not None else ["none", "hard"]
        if pipeline.soft is None:
            notes.append("no soft-token checkpoint configured: methods soft and both left out")
    if judge is None:
        notes.append("no judge: only the selector's own (biased) scores are reported")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(
            f"unknown method(s): {', '.join(unknown) or 'none given'}",
            f"choose among {', '.join(METHODS)}",
        )
    pairs = [(str(u), str(i)) for u, i in pairs]
    if not pairs:
        raise DataError("no (user, item) pairs to evaluate", "pass at least one pair")
    for user, item in pairs:
        pipeline.describe(data, user, item)
    records: list[PairRecord] = []
    bar = tqdm(total=len(pairs) * len(methods), desc="evaluate generation", disable=not progress)
    for user, item in pairs:
        prepared = pipeline.prepare(data, user, item)
        notes.extend(f"user {user}, item {item}: {n}" for n in prepared.notes)
        history = open_images(prepared.history_images)
        target = open_images([prepared.item_image])
        for method in methods:
            result = pipeline.render(
                prepared, weights=weights, n_candidates=n_candidates, method=method
            )
            records.append(_record(scorer, judge, result, history, target))
            bar.update(1)
    bar.close()
    alpha = pipeline.config.scorer.alpha
    return GenerationEvaluation(pairs, list(methods), alpha, records, notes)


def judge_scores(
    judge: ImageTextScorer | None, image: Image, pref_text: str, item_text: str
) -> tuple[float, float, float]:
    """The judge's d_p, d_t and z of one image ((1 + cos) / 2, α = 0.5); NaN without a judge."""
    from tastemaker.generation.scoring import pmg_objective, unit_interval

    if judge is None:
        return (math.nan,) * 3
    cosines = np.asarray(judge.similarity([image], [pref_text, item_text]), np.float64)[0]
    d_p, d_t = unit_interval(cosines)
    return float(d_p), float(d_t), float(pmg_objective(d_p, d_t, JUDGE_ALPHA))


def _record(
    scorer: ImageTextScorer,
    judge: ImageTextScorer | None,
    result: GenerationResult,
    history: list[Image],
    target: list[Image],
) -> PairRecord:
    """The comparisons of a render's best image with the user's history and the target's image."""
    best = result.best
    if best is None or best.image is None or best.scores is None:
        raise ConfigError(
            f"the pipeline rendered no scored image for user '{result.user_id}', item "
            f"'{result.item_id}', method '{result.method}'",
            "give the pipeline a generator and a scorer that score every candidate",
        )
    image, scores = best.image, best.scores
    features = perceptual_features(scorer, [image, *history, *target])
    size = (image.size[1], image.size[0])
    generated = pixels(image)
    refs = history + target
    cosines = features[1:] @ features[0]
    ssims = np.array([ssim(generated, pixels(ref, size)) for ref in refs])
    n = len(history)
    nan = float("nan")
    p = result.prepared
    judged = judge_scores(judge, image, p.preference.text, p.item_keywords.text)
    return PairRecord(
        user_id=result.user_id,
        item_id=result.item_id,
        method=result.method,
        d_p=scores["d_p"],
        d_t=scores["d_t"],
        z=scores["z"],
        judge_d_p=judged[0],
        judge_d_t=judged[1],
        judge_z=judged[2],
        history_cosine=float(cosines[:n].mean()) if n else nan,
        history_ssim=float(ssims[:n].mean()) if n else nan,
        target_cosine=float(cosines[n]) if target else nan,
        target_ssim=float(ssims[n]) if target else nan,
        n_history_images=n,
        weights=list(best.weights),
        seed=best.seed,
        prompt=best.prompt,
        image=image,
    )


__all__ = [
    "JUDGE_ALPHA",
    "METRICS",
    "GenerationEvaluation",
    "PairRecord",
    "evaluate_generation",
    "judge_scores",
    "read_pairs",
    "sample_pairs",
]
