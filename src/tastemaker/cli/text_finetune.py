"""``tastemaker text finetune``: LoRA on the offline LLM for one task's training records.

A thin shell over :mod:`tastemaker.text.finetune`; the adapter it writes
(``OUT/adapter``) is used for inference through ``LLMConfig(adapter=OUT/adapter)``.
torch, transformers and peft load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tastemaker.cli.common import console
from tastemaker.cli.progress import progress_lines
from tastemaker.errors import ConfigError


def finetune_command(
    task: Annotated[str, typer.Option("--task", help="tagging, tag-generation or rating.")],
    data: Annotated[str, typer.Option("--data", help="MovieLens folder or data set name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for adapter, checkpoint, log, plot.")],
    llm: Annotated[
        str | None, typer.Option("--llm", help="HF id, folder or .gguf (default SmolLM2-135M).")
    ] = None,
    epochs: Annotated[
        int,
        typer.Option(help="Passes over the training pairs (the epoch kept: lowest valid loss)."),
    ] = 2,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 1e-3,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    retriever: Annotated[str, typer.Option(help="Profile retriever for the prompts.")] = "bm25",
    k: Annotated[int, typer.Option("--k", help="Profile entries in each training prompt.")] = 4,
    limit: Annotated[
        int | None, typer.Option(help="Train on this many pairs (seeded sample).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per optimiser step.")] = 4,
    max_length: Annotated[int, typer.Option(help="Tokens per pair (prompt cut first).")] = 512,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of LoRA init, shuffling, sampling.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="Warnings only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Debug lines too.")] = False,
) -> None:
    """Fine-tune LoRA layers on a task's training records; keep the best epoch on valid.

    The epoch kept (OUT/adapter) is the one with the lowest target-token cross-entropy on
    the task's valid examples (each user's second-last record, prompted as at inference);
    OUT/log.json and OUT/loss.png hold every epoch's train and valid loss. Use the adapter
    with tastemaker text run --adapter OUT/adapter.
    """
    from tastemaker.text.finetune_data import TRAINABLE

    if task not in TRAINABLE:
        raise ConfigError(
            f"cannot fine-tune on task '{task}'", f"use one of: {', '.join(TRAINABLE)}"
        )
    from tastemaker.llm.base import DEFAULT_MODEL
    from tastemaker.llm.hf import load_causal_lm, resolve_source
    from tastemaker.text.finetune import FinetuneConfig, finetune
    from tastemaker.text.finetune_data import training_pairs, valid_pairs
    from tastemaker.text.retrievers import create_retriever
    from tastemaker.text.sources import load_text_data
    from tastemaker.text.tasks import build_task

    config = FinetuneConfig(
        rank=rank, alpha=2.0 * rank, learning_rate=lr, epochs=epochs,
        batch_size=batch_size, max_length=max_length, seed=seed,
    )  # fmt: skip
    with progress_lines(quiet, verbose):
        built = build_task(task, load_text_data(data), seed=seed)
        ranker = create_retriever(retriever, seed=seed)
        train = training_pairs(built, ranker, k, limit=limit, seed=seed)
        valid = valid_pairs(built, ranker, k)
        # A fresh, uncached copy: peft adds its layers to the model it is given.
        tokenizer, model = load_causal_lm.__wrapped__(
            *resolve_source(llm or DEFAULT_MODEL, None), "cpu", "float32"
        )
        result = finetune(model, tokenizer, train, valid, out, config, resume=resume)
    best = result.log[result.best_epoch - 1]
    console.print(
        f"best epoch {result.best_epoch}: valid loss {best['valid_loss']:.4f}; "
        f"adapter in {result.adapter}"
    )
