"""LoRA fine-tuning of a small causal LM on a task's (prompt, target) pairs.

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022)
trains rank-``r`` updates of the attention projections while the base weights stay
frozen; LaMP (Salemi et al. 2023, §5) fine-tunes its models on each task's train
split the same way: prompt in, the user's output as the target. The loss is the
next-token cross-entropy on the target tokens only (the prompt is context).

The adapter of the epoch with the best validation loss (or the best task score,
when a ``score`` function is given) is written to ``OUT/adapter`` in peft's format
(``adapter_config.json`` + ``adapter_model.safetensors``), which
``LLMConfig(adapter=OUT/adapter)`` loads for inference. After every epoch
``OUT/checkpoint`` holds the live adapter, the optimiser state, the step and the
shuffling generator, so :func:`finetune` with ``resume=True`` continues exactly;
a checkpoint made with other settings is refused. Every folder is written atomically.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tastemaker.atomic import atomic_path, ensure_writable_dir, write_bytes
from tastemaker.checkpoint import (
    join_state,
    read_json,
    read_tensors,
    split_state,
    write_json,
    write_tensors,
)
from tastemaker.errors import ConfigError, DataError
from tastemaker.llm.base import ChatMessage
from tastemaker.llm.hf import render

logger = logging.getLogger(__name__)

ADAPTER, CHECKPOINT, LOG_FILE, PLOT_FILE = "adapter", "checkpoint", "log.json", "loss.png"
_STATE, _OPTIMIZER = "state.json", "optimizer.safetensors"
IGNORE = -100  # the label cross-entropy skips: prompt and padding positions
LOG_EVERY = 10  # steps between progress lines


class FinetuneConfig(BaseModel):
    """LoRA and optimiser settings; all but ``epochs`` must match to resume a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: PositiveInt = 8
    alpha: PositiveFloat = 16.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: PositiveFloat = 1e-3
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 4
    max_length: PositiveInt = 512
    seed: int = 0


@dataclass(frozen=True)
class Example:
    """One training pair: the task's prompt and the output the user gave."""

    prompt: str
    target: str


@dataclass
class FinetuneResult:
    """Where the best adapter is, and what every epoch measured."""

    adapter: Path
    best_epoch: int
    log: list[dict[str, Any]]


Scorer = Callable[[Any, Any], float]  # (peft model, tokenizer) -> task score, higher is better


def encode(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels): the chat-rendered prompt, then the target and end-of-text;
    labels are the target's ids and IGNORE on the prompt. A long prompt loses its start."""
    prompt = render(tokenizer, [ChatMessage("user", example.prompt)])
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    tail = [*tail, tokenizer.eos_token_id][: max_length - 1]
    head = head[-(max_length - len(tail)) :]
    return head + tail, [IGNORE] * len(head) + tail


def batch_tensors(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded input ids, attention mask and labels of a batch."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (tokens, targets) in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, : len(targets)] = torch.tensor(targets)
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def target_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy of the target tokens (labels shifted by one, as causal LMs do)."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE
    )


def valid_loss(model: Any, rows: list[tuple[list[int], list[int]]], size: int, pad: int) -> float:
    """Target-token loss over the validation pairs (weighted by their target tokens)."""
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(rows), size):
            batch = batch_tensors(rows[lo : lo + size], pad)
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(target_loss(model, batch)) * n
            tokens += n
    return total / max(tokens, 1)


def with_lora(model: Any, config: FinetuneConfig) -> Any:
    """The base model wrapped with fresh, seeded LoRA layers; only they are trainable."""
    import torch
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        try:
            return get_peft_model(model, lora)
        except ValueError as exc:  # no module of that name in this architecture
            raise ConfigError(
                f"cannot add LoRA layers: {str(exc).splitlines()[0][:200]}",
                "set target_modules to linear layer names of this model (e.g. q_proj, v_proj)",
            ) from exc


def adapter_tensors(peft_model: Any) -> dict[str, Any]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def save_adapter(peft_model: Any, folder: Path) -> None:
    """The adapter in peft's format (safetensors), written atomically."""
    with atomic_path(folder, directory=True) as tmp:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)


def save_checkpoint(folder: Path, peft_model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Adapter, optimiser (safetensors, no pickle) and loop state: all :func:`finetune`
    needs to continue."""
    tensors, layout = split_state(optimizer.state_dict(), "optimizer")
    with atomic_path(folder, directory=True) as tmp:
        peft_model.save_pretrained(str(tmp / ADAPTER), safe_serialization=True)
        write_tensors(tmp / _OPTIMIZER, tensors)
        write_json(tmp / _STATE, {**state, "optimizer": layout})


def restore(folder: Path, config: FinetuneConfig, peft_model: Any, optimizer: Any) -> dict:
    """The saved loop state, after loading the adapter and optimiser it was saved with."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    fix = f"remove {folder} to start afresh"
    state = read_json(folder / _STATE, fix)
    if state.get("config") != config.model_dump(mode="json", exclude={"epochs"}):
        raise ConfigError(
            f"{folder} was made with other fine-tuning settings ({state.get('config')})",
            f"resume with the same settings, or {fix}",
        )
    set_peft_model_state_dict(peft_model, load_file(folder / ADAPTER / "adapter_model.safetensors"))
    optimizer.load_state_dict(
        join_state(state.pop("optimizer"), read_tensors(folder / _OPTIMIZER, fix))
    )
    state["generator"] = torch.tensor(state["generator"], dtype=torch.uint8)
    return state


def loss_plot(log: list[dict[str, Any]]) -> bytes:
    """Train and valid loss per epoch, as PNG."""
    from tastemaker.reporting.plots import png_bytes, pyplot

    fig, ax = pyplot().subplots(figsize=(5, 3.2))
    epochs = [e["epoch"] for e in log]
    ax.plot(epochs, [e["train_loss"] for e in log], marker="o", label="train")
    ax.plot(epochs, [e["valid_loss"] for e in log], marker="o", label="valid")
    ax.set(xlabel="epoch", ylabel="target-token loss", title="LoRA fine-tuning")
    ax.legend()
    return png_bytes(fig)


def finetune(
    model: Any,
    tokenizer: Any,
    train: Sequence[Example],
    valid: Sequence[Example],
    out: Path,
    config: FinetuneConfig | None = None,
    *,
    resume: bool = False,
    score: Scorer | None = None,
) -> FinetuneResult:
    """Train LoRA layers on ``train``, keep the epoch best on ``valid`` in ``out/adapter``.

    ``model`` is wrapped in place (peft injects its layers); its base weights do not
    change. ``score`` (higher is better, e.g. accuracy on a valid subset) selects the
    epoch when given, else the validation loss does.
    """
    import torch

    config = config or FinetuneConfig()
    if not train or not valid:
        raise DataError("fine-tuning needs train and valid examples", "pass non-empty splits")
    out = ensure_writable_dir(Path(out))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad = tokenizer.pad_token_id
    rows = [encode(tokenizer, e, config.max_length) for e in train]
    held = [encode(tokenizer, e, config.max_length) for e in valid]
    peft_model = with_lora(model, config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "log": []}
    if resume and (out / CHECKPOINT).is_dir():
        state = restore(out / CHECKPOINT, config, peft_model, optimizer)
        generator.set_state(state.pop("generator"))
        logger.info("resuming after epoch %d (step %d)", state["epoch"], state["step"])
    steps = math.ceil(len(rows) / config.batch_size)
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        start, total = time.perf_counter(), 0.0
        peft_model.train()
        order = torch.randperm(len(rows), generator=generator).tolist()
        for lo in range(0, len(order), config.batch_size):
            batch = batch_tensors([rows[i] for i in order[lo : lo + config.batch_size]], pad)
            with torch.random.fork_rng():  # dropout seeded per step: resume repeats it
                torch.manual_seed(config.seed + state["step"])
                loss = target_loss(peft_model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["step"] += 1
            total += float(loss.detach())
            done = lo // config.batch_size + 1
            if done % LOG_EVERY == 0 or done == steps:
                logger.info("finetune epoch %d: step %d/%d, loss %.4f", epoch, done, steps, loss)
        peft_model.eval()
        entry = {"epoch": epoch, "train_loss": total / steps}
        entry["valid_loss"] = valid_loss(peft_model, held, config.batch_size, pad)
        entry["valid_score"] = score(peft_model, tokenizer) if score else None
        entry["seconds"] = round(time.perf_counter() - start, 2)
        state["log"].append(entry)
        key = entry["valid_score"] if score else -entry["valid_loss"]
        logger.info(
            "finetune epoch %d/%d: loss %.4f, valid loss %.4f%s, %.1f s",
            epoch, config.epochs, entry["train_loss"], entry["valid_loss"],
            f", valid score {key:.4f}" if score else "", entry["seconds"],
        )  # fmt: skip
        if state["best"] is None or key > state["best"]:
            state["best"], state["best_epoch"] = key, epoch
            save_adapter(peft_model, out / ADAPTER)
        state["epoch"] = epoch
        saved = {**state, "config": config.model_dump(mode="json", exclude={"epochs"})}
        saved["generator"] = generator.get_state().tolist()
        save_checkpoint(out / CHECKPOINT, peft_model, optimizer, saved)
    with atomic_path(out / LOG_FILE) as tmp:
        write_json(tmp, state["log"])
    write_bytes(out / PLOT_FILE, loss_plot(state["log"]))
    return FinetuneResult(out / ADAPTER, state["best_epoch"], state["log"])
