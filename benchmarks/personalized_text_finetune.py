"""The fine-tuning sections of ``benchmarks/personalized_text.py`` (``tagging-finetune``,
``tag-generation-finetune``): LoRA on a seeded sample of training pairs, the epoch kept by
valid loss, then the tuned model against the same model zero-shot on test, same prompts."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("personalized_text")


def finetuned(
    bench: Any, name: str, metric: str, row: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """LoRA on a seeded sample of training pairs (bm25, ``--finetune-k`` profile entries; 1 is
    the planned setting), vs the same model zero-shot at the same k."""
    from tastemaker.llm.memo import unwrap
    from tastemaker.text.finetune import FinetuneConfig, finetune
    from tastemaker.text.finetune_data import training_pairs, valid_pairs
    from tastemaker.text.retrievers import create_retriever
    from tastemaker.text.runner import compare

    task = bench.task(name)
    method = "llm-score" if name == "tagging" else "llm"
    k = bench.args.finetune_k
    ranker = create_retriever("bm25")
    train = training_pairs(task, ranker, k, limit=bench.args.finetune_limit, seed=bench.args.seed)
    valid = valid_pairs(task, ranker, k)
    tokenizer, base = unwrap(bench.llm).load()  # type: ignore[attr-defined]
    model = copy.deepcopy(base)  # peft wraps the model it gets: keep the cached one clean
    folder = Path(bench.args.work) / f"finetune-{name}"
    config = FinetuneConfig(
        epochs=bench.args.finetune_epochs, max_length=bench.args.max_length, seed=bench.args.seed
    )
    log.info("fine-tuning %s on %d pairs, %d epochs", name, len(train), config.epochs)
    start = time.perf_counter()
    result = finetune(model, tokenizer, train, valid, folder, config)
    train_s = time.perf_counter() - start
    del model
    from tastemaker.llm import create_llm

    tuned_llm = create_llm(
        bench.llm.config, adapter=str(result.adapter)
    )  # the cached base model, copied, with the adapter merged in
    zero, zs = bench.run(task, "zero-shot", method=method, retriever="bm25", k=k)
    tuned, ts = bench.run(task, "fine-tuned", llm=tuned_llm, method=method, retriever="bm25", k=k)
    best = result.log[result.best_epoch - 1]
    return {
        "task": name,
        "metric": metric,
        "users": task.users,
        "notes": [
            f"LoRA (r={config.rank}, α={config.alpha:g}, q/v projections, lr "
            f"{config.learning_rate:g}) on {len(train)} training pairs sampled with seed "
            f"{bench.args.seed}, {config.epochs} epochs, bm25 k={k} prompts cut to "
            f"{config.max_length} tokens; best epoch {result.best_epoch} by valid loss "
            f"{best['valid_loss']:.3f}; training {train_s:.0f} s",
            *[
                f"epoch {e['epoch']}: train loss {e['train_loss']:.3f}, valid loss "
                f"{e['valid_loss']:.3f}"
                for e in result.log
            ],
        ],
        "rows": [
            row(f"{zero.label} zero-shot", zero, zs),
            row(f"{tuned.label} fine-tuned", tuned, ts),
        ],
        "paired": [
            {
                "pair": "fine-tuned − zero-shot",
                "headline": True,
                **compare(tuned, zero, metric, seed=bench.args.seed),
            }
        ],
    }
