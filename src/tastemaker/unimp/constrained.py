"""Constrained decoding over a closed answer set (candidate titles, ratings, options).

The answers' token sequences (each ending in end-of-text, so none is a prefix of
another) form a prefix trie; at each step the decoder may only emit a child of
the current node, its next-token distribution renormalised over those children
(as in generative retrieval with a prefix tree: De Cao et al., ICLR 2021; the
official UniMP code ranks item identifiers the same way). The probability the
constrained decoder gives a complete answer is then the product of those
renormalised steps, and these sum to one over the answer set: :func:`answer_scores`
computes every answer's log-probability exactly (one pass over the prompt, one
batched pass over all answers on its cache), which ranks a candidate set;
:func:`constrained_decode` walks the trie greedily and can only return an answer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tastemaker.errors import DataError
from tastemaker.unimp.batching import Encoded, answer_tokens
from tastemaker.unimp.model import UniMP
from tastemaker.unimp.serialize import NO_SLOT


class PrefixTrie:
    """Token sequences as nested dicts; :meth:`children` lists the allowed next tokens."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        if not sequences:
            raise DataError("constrained decoding needs at least one answer", "pass candidates")
        self.root: dict[int, dict] = {}
        for sequence in sequences:
            node = self.root
            for token in sequence:
                node = node.setdefault(int(token), {})

    def children(self, prefix: Sequence[int]) -> list[int]:
        node = self.root
        for token in prefix:
            node = node.get(int(token), {})
        return sorted(node)


def _prompt_pass(model: UniMP, prompt: Encoded) -> tuple[torch.Tensor, Any, torch.Tensor]:
    device = model.device
    ids = torch.tensor([prompt.ids[: prompt.last + 1]], device=device)
    slots = torch.tensor([prompt.slots[: prompt.last + 1]], device=device)
    items = torch.tensor([prompt.items or [-1]], device=device)
    out = model.run(ids, slots, items, use_cache=True)
    return out.hidden[0, -1], out.cache, items


@torch.no_grad()
def answer_scores(model: UniMP, prompt: Encoded, answers: Sequence[str]) -> np.ndarray:
    """Log-probability of each answer under constrained decoding (sums to 1 when exp'd,
    identical answers each get the shared value)."""
    tokenizer = model.tokenizer
    sequences = [answer_tokens(tokenizer, a) for a in answers]
    trie = PrefixTrie(sequences)
    first, cache, items = _prompt_pass(model, prompt)
    n, width = len(sequences), max(len(s) for s in sequences)
    hidden = first.expand(n, 1, -1)
    if width > 1:
        inputs = torch.full((n, width - 1), int(tokenizer.eos_token_id), dtype=torch.long)
        for i, seq in enumerate(sequences):
            inputs[i, : len(seq) - 1] = torch.tensor(seq[:-1])
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(n)
        out = model.run(
            inputs.to(model.device),
            torch.full_like(inputs, NO_SLOT).to(model.device),
            items.expand(n, -1),
            cache=cache,
            use_cache=True,
        )
        hidden = torch.cat([hidden, out.hidden], dim=1)
    # allowed children at every (answer, step), over the union of tokens that ever appear
    union = sorted({t for seq in sequences for t in seq})
    column = {t: j for j, t in enumerate(union)}
    allowed = torch.zeros(n, width, len(union), dtype=torch.bool)
    chosen = torch.zeros(n, width, dtype=torch.long)
    valid = torch.zeros(n, width, dtype=torch.bool)
    for i, seq in enumerate(sequences):
        for t, token in enumerate(seq):
            allowed[i, t, [column[c] for c in trie.children(seq[:t])]] = True
            chosen[i, t] = column[token]
            valid[i, t] = True
    logits = model.logits(hidden, torch.tensor(union, device=model.device)).float().cpu()
    logits = logits.masked_fill(~allowed, float("-inf"))
    step = logits.gather(2, chosen[..., None])[..., 0] - torch.logsumexp(logits, dim=2)
    return step.masked_fill(~valid, 0.0).sum(1).numpy()


@torch.no_grad()
def constrained_decode(model: UniMP, prompt: Encoded, answers: Sequence[str]) -> str:
    """Greedy decoding restricted to the trie of ``answers``: always one of them."""
    tokenizer = model.tokenizer
    sequences = [answer_tokens(tokenizer, a) for a in answers]
    trie = PrefixTrie(sequences)
    device = model.device
    ids = list(prompt.ids[: prompt.last + 1])
    slots = list(prompt.slots[: prompt.last + 1])
    items = torch.tensor([prompt.items or [-1]], device=device)
    generated: list[int] = []
    while True:
        options = trie.children(generated)
        if not options:
            break
        if len(options) == 1:
            choice = options[0]
        else:
            out = model.run(
                torch.tensor([ids + generated], device=device),
                torch.tensor([slots + [NO_SLOT] * len(generated)], device=device),
                items,
            )
            logits = model.logits(out.hidden[0, -1], torch.tensor(options, device=device))
            choice = options[int(logits.argmax())]
        generated.append(choice)
        if choice == tokenizer.eos_token_id:
            break
    return answers[sequences.index(generated)]
