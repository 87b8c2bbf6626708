"""How likely a local causal LM finds each of a fixed set of answers: classification by scoring.

A small chat model asked to pick a label often answers outside the set (SmolLM2-135M
did for 9-12 of 14 tagging prompts). Scoring every option instead, and taking the most
likely one, always answers inside the set: the standard way to use a causal LM as a
classifier (Brown et al., "Language Models are Few-Shot Learners", NeurIPS 2020, §2.4:
multiple choice by comparing completion likelihoods). The score of an option is
log P(option, then end-of-text | prompt), so "dark" and "dark comedy" are told apart:
the end token must follow the whole option. The prompt is read once; its key/value
cache is repeated for the options, so scoring costs about one prompt's forward pass.
Through a :class:`~tastemaker.llm.memo.MemoLLM` the scores of a conversation asked
again (with the same options) come from memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tastemaker.errors import ConfigError
from tastemaker.llm.base import LLM, Conversation, check_conversation
from tastemaker.llm.memo import MemoLLM, unwrap

if TYPE_CHECKING:
    from tastemaker.llm.hf import HFChat


def option_tokens(tokenizer: Any, options: Sequence[str]) -> list[list[int]]:
    """Each option's token ids followed by the end-of-text id (as fine-tuning targets end)."""
    if not options:
        raise ConfigError("no options to score", "pass at least one option")
    return [
        [*tokenizer(option, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        for option in options
    ]


def option_log_likelihoods(
    llm: LLM, conversations: Sequence[Conversation], options: Sequence[str]
) -> list[list[float]]:
    """``[conversation][option]``: log P(option + end-of-text | the rendered conversation).

    Only a local transformers model (backend ``hf``, possibly behind a memo) exposes its
    token probabilities; another backend is a :class:`ConfigError`.
    """
    from tastemaker.llm.hf import HFChat

    local = unwrap(llm)
    if not isinstance(local, HFChat):
        raise ConfigError(
            f"scoring options needs a local model's token probabilities; {llm.name} has none",
            "use the hf backend (a local model), or generate answers instead",
        )
    tails = option_tokens(local.load()[0], options)
    scores = []
    for messages in conversations:
        check_conversation(messages)
        if isinstance(llm, MemoLLM):
            key = ("option_log_likelihoods", tuple(messages), tuple(options))
            scores.append(llm.remember(key, lambda m=messages: _scores(local, m, tails)))
        else:
            scores.append(_scores(local, messages, tails))
    return scores


def _scores(llm: HFChat, messages: Conversation, tails: list[list[int]]) -> list[float]:
    """log P(tail | prompt) of every tokenized option, reading the prompt once."""
    import torch

    from tastemaker.llm.hf import render

    tokenizer, model = llm.load()
    width = max(len(t) for t in tails)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(tails), width), pad, dtype=torch.long)
    mask = torch.zeros((len(tails), width), dtype=torch.long)
    for row, tail in enumerate(tails):
        ids[row, : len(tail)] = torch.tensor(tail)
        mask[row, : len(tail)] = 1
    ids, mask = ids.to(model.device), mask.to(model.device)
    prompt = tokenizer(
        render(tokenizer, list(messages)), add_special_tokens=False, return_tensors="pt"
    )["input_ids"].to(model.device)
    with torch.inference_mode():
        head = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(head.logits[0, -1].float(), dim=-1)
        cache = head.cache
        cache.batch_repeat_interleave(len(tails))
        full = torch.cat([torch.ones_like(mask[:, :1]).expand(-1, prompt.shape[1]), mask], 1)
        rest = model(input_ids=ids, attention_mask=full, cache=cache).logits
        rest = torch.log_softmax(rest.float(), dim=-1)
    row_scores = []
    for row, tail in enumerate(tails):
        total = first[tail[0]]
        for j in range(1, len(tail)):
            total = total + rest[row, j - 1, tail[j]]
        row_scores.append(float(total))
    return row_scores
