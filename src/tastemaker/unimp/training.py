"""Joint multi-task training of UniMP: seeded, resumable, with a progress bar and a loss plot.

Each step draws ``batch_size`` examples from the task pools (a task uniformly,
then an example of it, from one seeded ``torch.Generator``), weights each by its
task's λ_a and takes one AdamW step on the trainable parameters
(:func:`~tastemaker.unimp.loss.joint_loss`). Every ``save_every`` steps and at the
end, ``OUT/checkpoint`` holds weights, optimiser, generator and log, so
``resume=True`` continues exactly where the run stopped; ``OUT/model`` is the
final model (:mod:`.saved`), ``OUT/log.json`` and ``OUT/loss.png`` the curve.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tastemaker.atomic import atomic_path, ensure_writable_dir, write_bytes
from tastemaker.checkpoint import write_json
from tastemaker.errors import DataError
from tastemaker.unimp.batching import Example, collate, encode
from tastemaker.unimp.loss import joint_loss
from tastemaker.unimp.model import UniMP
from tastemaker.unimp.saved import restore_checkpoint, save_checkpoint, save_model

logger = logging.getLogger(__name__)

CHECKPOINT, MODEL, LOG_FILE, PLOT_FILE = "checkpoint", "model", "log.json", "loss.png"
LOG_EVERY = 10


@dataclass
class TrainResult:
    """Where the model went and the loss per logged step."""

    model_dir: Path
    log: list[dict[str, Any]]
    seconds: float


def draw_batch(
    pool: dict[str, list[Example]], size: int, generator: torch.Generator
) -> list[Example]:
    """``size`` examples: each a uniformly drawn task, then one of its examples."""
    tasks = [t for t, examples in pool.items() if examples]
    picks = torch.randint(len(tasks), (size,), generator=generator).tolist()
    out = []
    for task_index in picks:
        examples = pool[tasks[task_index]]
        out.append(examples[int(torch.randint(len(examples), (1,), generator=generator))])
    return out


def loss_plot(log: list[dict[str, Any]]) -> bytes:
    """Token and retrieval loss against the step, as PNG."""
    from tastemaker.reporting.plots import png_bytes, pyplot

    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    steps = [e["step"] for e in log]
    for key in ("tokens", "retrieval"):
        if any(key in e for e in log):
            ax.plot(steps, [e.get(key) for e in log], label=key)
    ax.set(xlabel="step", ylabel="loss (mean since last point)", title="UniMP joint training")
    ax.legend()
    return png_bytes(fig)


def train(
    model: UniMP,
    pool: dict[str, list[Example]],
    out: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on the task pools for ``config.steps`` steps; write ``out``."""
    from tqdm.auto import tqdm

    config = model.config
    if not any(pool.values()):
        raise DataError(
            "UniMP has no training examples", "use data with at least two ratings per user"
        )
    out = ensure_writable_dir(Path(out))
    pad = model.tokenizer.pad_token_id
    vocab = model.bank.vocab
    params = list(model.trainable().values())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    state: dict[str, Any] = {"step": 0, "log": []}
    if resume and (out / CHECKPOINT).is_dir():
        state = restore_checkpoint(out / CHECKPOINT, model, optimizer)
        generator.set_state(state.pop("generator"))
        logger.info("resuming UniMP training after step %d", state["step"])
    start = time.perf_counter()
    sums: dict[str, float] = {}
    bar = tqdm(total=config.steps, initial=state["step"], unit="step", desc="unimp train",
               disable=not progress)  # fmt: skip
    model.train()
    try:
        while state["step"] < config.steps:
            examples = draw_batch(pool, config.batch_size, generator)
            rows = [encode(model.tokenizer, e, vocab, config.weight(e.task)) for e in examples]
            batch = collate(rows, pad, model.device)
            if config.retrieval_negatives:
                drawn = torch.randint(
                    len(vocab), (config.retrieval_negatives,), generator=generator
                )
                batch["negatives"] = drawn.to(model.device)
            loss, parts = joint_loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["step"] += 1
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            sums["n"] = sums.get("n", 0.0) + 1
            bar.update(1)
            bar.set_postfix_str(f"loss {float(loss.detach()):.3f}", refresh=False)
            if state["step"] % LOG_EVERY == 0 or state["step"] == config.steps:
                entry = {"step": state["step"]}
                entry.update({k: round(v / sums["n"], 5) for k, v in sums.items() if k != "n"})
                state["log"].append(entry)
                logger.info("unimp step %d/%d: %s", state["step"], config.steps, entry)
                sums = {}
            if state["step"] % config.save_every == 0 or state["step"] == config.steps:
                saved = {**state, "config": config.resume_key()}
                saved["generator"] = generator.get_state().tolist()
                save_checkpoint(out / CHECKPOINT, model, optimizer, saved)
    finally:
        bar.close()
        model.eval()
    save_model(model, out / MODEL)
    with atomic_path(out / LOG_FILE) as tmp:
        write_json(tmp, state["log"])
    if state["log"]:
        write_bytes(out / PLOT_FILE, loss_plot(state["log"]))
    return TrainResult(out / MODEL, state["log"], time.perf_counter() - start)
