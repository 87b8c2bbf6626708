"""The rating peer ``benchmarks/personalized_text.py`` measures beside the LLM: biased MF
(Koren et al. 2009)."""

from __future__ import annotations

from typing import Any


def biased_mf_run(task: Any, seed: int) -> Any:
    """Biased MF fitted on the task's training ratings, early-stopped on its valid examples."""
    import polars as pl

    from tastemaker.data.interactions import Interactions
    from tastemaker.data.vocab import Vocab
    from tastemaker.models import BiasedMF
    from tastemaker.text.runner import TextRun
    from tastemaker.text.scoring import score

    def frame(rows: list[tuple[str, str, float, int]]) -> pl.DataFrame:
        return pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        )

    train = [
        (u, e.item_id, float(e.output), e.timestamp) for u, es in task.train.items() for e in es
    ]
    held = [(e.user_id, e.item.item_id, float(e.gold), e.timestamp) for e in task.part("valid")]
    test = task.part("test")
    users = Vocab(sorted({r[0] for r in train + held} | {e.user_id for e in test}), "user")
    items = Vocab(sorted({r[1] for r in train + held} | {e.item.item_id for e in test}), "item")
    model = BiasedMF(seed=seed).fit(
        Interactions(frame(train), users, items), Interactions(frame(held), users, items)
    )
    predictions = model.predict_ratings([e.user_id for e in test], [e.item.item_id for e in test])
    low, high = task.scale.low, task.scale.high
    predicted = [float(min(max(p, low), high)) for p in predictions]
    run = TextRun(task, "biased-mf", None, None, "test", test, predicted, [])
    run.metrics = score(task, test, predicted, seed=seed)
    return run
