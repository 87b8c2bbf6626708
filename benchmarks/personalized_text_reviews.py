"""The ``review-summary`` section of ``benchmarks/personalized_text.py``: a sanity task on real
Amazon reviews (``tastemaker.text.review_summary``): the LLM's title for a review against
the review's first words, both scored by ROUGE against the review's own summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def review_summary(bench: Any, path: Path) -> dict[str, Any]:
    """The lead baseline and the LLM on a seeded sample of ``--summary-reviews`` reviews."""
    from tastemaker.text import metrics as m
    from tastemaker.text import review_summary as rs

    read = rs.read_reviews(path)
    scored, rest = rs.sample(read.kept, bench.args.summary_reviews, bench.args.seed)
    words = rs.lead_length(rest)
    start = time.perf_counter()
    lead = [rs.lead(r, words) for r in scored]
    values = {"lead": rs.per_example(scored, lead)}
    seconds = {"lead": time.perf_counter() - start}
    start = time.perf_counter()
    made, records = rs.summarize(bench.llm, scored, words)
    values["llm"] = rs.per_example(scored, made)
    seconds["llm"] = time.perf_counter() - start
    rows = [
        {
            "method": f"lead {words} words" if name == "lead" else f"llm ({bench.llm.name})",
            "metrics": rs.with_intervals(v, bench.args.seed),
            "counts": {"fallbacks": sum(r["fallback"] for r in records)} if name == "llm" else {},
            "seconds": round(seconds[name], 1),
        }
        for name, v in values.items()
    ]
    pairs = [
        {
            "pair": f"llm − lead ({metric})",
            "headline": metric == "rouge1",
            **m.paired_bootstrap(
                lambda idx, a=values["llm"][metric]: float(a[idx].mean()),
                lambda idx, b=values["lead"][metric]: float(b[idx].mean()),
                len(scored),
                seed=bench.args.seed,
            ),
        }
        for metric in ("rouge1", "rougeL")
    ]
    examples = [
        f"{r.summary!r} ← llm {p!r} / lead {q!r}"
        for r, p, q in zip(scored, made, lead, strict=True)
    ][:5]
    return {
        "task": "review-summary",
        "metric": "rouge1",
        "users": len({r.user_id for r in scored}),
        "notes": [
            f"{path.name}: {len(read.kept)} usable distinct reviews; left out {read.copies} "
            f"copies of one review on several product variants, {read.placeholders} "
            f"placeholder summaries ('Five Stars'), {read.incomplete} without text or summary",
            f"{len(scored)} reviews sampled with seed {bench.args.seed}; lead length {words} "
            f"words = the median summary length of the {len(rest)} reviews outside the sample",
            "gold: the review's own summary; prompt after LaMP-4/5 (title of a text), "
            f"review cut to {rs.MAX_REVIEW_WORDS} words",
            *[f"example: {e}" for e in examples],
        ],
        "rows": rows,
        "paired": pairs,
    }
