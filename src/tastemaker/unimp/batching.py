"""Examples as token ids: each token carries the sentence slot of its item.

An :class:`Example` is an instruction (a :class:`UserSentence` ending in the
question) and the answer text; :func:`encode` tokenizes it piece by piece, so the
tokens of item k's segment carry slot k (the item mask reads it) and only the
answer's tokens (then end-of-text) are labels. :func:`collate` pads on the right:
with causal attention no real position ever sees a pad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tastemaker.data.vocab import Vocab
from tastemaker.text.finetune import IGNORE
from tastemaker.unimp.serialize import NO_SLOT, UserSentence

ANSWER = "\nAnswer:"


@dataclass(frozen=True)
class Example:
    """One instruction for one user: prompt, answer, and what is needed to score it."""

    task: str
    sentence: UserSentence
    target: str
    user: str
    item: str | None = None  # the item the answer names (recommendation, search, rating)
    options: tuple[str, ...] = ()  # the closed answer set (rating values, option letters)
    value: float | None = None  # the true rating


@dataclass(frozen=True)
class Encoded:
    """Token ids, their slots, labels (IGNORE off the answer) and the slot items."""

    ids: list[int]
    slots: list[int]
    labels: list[int]
    items: list[int]  # item index of each slot
    last: int  # position of the prompt's last token (its state predicts the answer)
    target_item: int  # item index the retrieval head should rank first, or -1
    weight: float


def prompt_tokens(tokenizer: Any, sentence: UserSentence) -> tuple[list[int], list[int]]:
    """(ids, slots) of the prompt: BOS when the tokenizer has one, then each piece, then
    the answer cue."""
    ids: list[int] = []
    slots: list[int] = []
    if tokenizer.bos_token_id is not None:
        ids.append(int(tokenizer.bos_token_id))
        slots.append(NO_SLOT)
    for piece in (*sentence.pieces,):
        tokens = tokenizer(piece.text, add_special_tokens=False)["input_ids"]
        ids.extend(tokens)
        slots.extend([piece.slot] * len(tokens))
    cue = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    return ids + cue, slots + [NO_SLOT] * len(cue)


def answer_tokens(tokenizer: Any, text: str) -> list[int]:
    """The answer's ids (a leading space, as it follows the cue) and end-of-text."""
    return [*tokenizer(" " + text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


def encode(
    tokenizer: Any, example: Example, vocab: Vocab, weight: float = 1.0, *, answer: bool = True
) -> Encoded:
    """One example as ids; ``answer=False`` stops after the prompt (for scoring)."""
    ids, slots = prompt_tokens(tokenizer, example.sentence)
    last = len(ids) - 1
    labels = [IGNORE] * len(ids)
    if answer:
        tail = answer_tokens(tokenizer, example.target)
        ids, slots, labels = ids + tail, slots + [NO_SLOT] * len(tail), labels + tail
    items = (
        [int(i) for i in vocab.index(list(example.sentence.items))]
        if example.sentence.items
        else []
    )
    target = -1
    if example.task == "recommend" and example.item is not None:
        target = int(vocab.index([example.item])[0])
    return Encoded(ids, slots, labels, items, last, target, weight)


def collate(rows: Sequence[Encoded], pad_id: int, device: str | torch.device) -> dict[str, Any]:
    """Right-padded tensors of a batch (slot items padded with -1)."""
    width = max(len(r.ids) for r in rows)
    slots_width = max([len(r.items) for r in rows] + [1])
    b = len(rows)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    labels = torch.full((b, width), IGNORE, dtype=torch.long)
    token_slots = torch.full((b, width), NO_SLOT, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    slot_items = torch.full((b, slots_width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.ids)
        ids[i, :n] = torch.tensor(row.ids)
        labels[i, :n] = torch.tensor(row.labels)
        token_slots[i, :n] = torch.tensor(row.slots)
        mask[i, :n] = 1
        slot_items[i, : len(row.items)] = torch.tensor(row.items, dtype=torch.long)
    out = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "token_slots": token_slots,
        "slot_items": slot_items,
        "last": torch.tensor([r.last for r in rows]),
        "target_item": torch.tensor([r.target_item for r in rows]),
        "weight": torch.tensor([r.weight for r in rows], dtype=torch.float32),
    }
    return {k: v.to(device) for k, v in out.items()}
