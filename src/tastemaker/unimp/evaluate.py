"""Measuring UniMP's tasks: ranking a sampled candidate set (HR/NDCG/MRR@k, as the
paper's tables), full ranking through the retrieval head, rating error, and
selection accuracy.

A target's rank is pessimistic: candidates scoring equal to it count as ahead, so
a constant scorer ranks it last, never first. Candidate sets are 1 target + n
items the user never interacted with (in any part), drawn with a seed, shared by
every model compared on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tastemaker.evaluation.metrics import hit_rate, mrr, ndcg
from tastemaker.unimp.batching import Example, collate, encode
from tastemaker.unimp.constrained import answer_scores
from tastemaker.unimp.model import UniMP

KS = (3, 5, 10)


def target_ranks(scores: np.ndarray, target_column: int = 0) -> np.ndarray:
    """0-based rank of column ``target_column`` in each row (ties count against it)."""
    scores = np.asarray(scores, dtype=np.float64)
    target = scores[:, target_column : target_column + 1]
    others = np.delete(scores, target_column, axis=1)
    return (others >= target).sum(axis=1)


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """HR/NDCG/MRR@k of one relevant item per row, from its 0-based rank."""
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    ones = np.ones(len(ranks), dtype=np.int64)
    for k in ks:
        hits = ranks[:, None] == np.arange(k)[None, :]
        out[f"HR@{k}"] = float(hit_rate(hits, ones).mean())
        out[f"NDCG@{k}"] = float(ndcg(hits, ones).mean())
        out[f"MRR@{k}"] = float(mrr(hits, ones).mean())
    return out


def sample_candidates(
    targets: np.ndarray, exclude: Sequence[set[int]], n_items: int, n: int = 99, seed: int = 0
) -> np.ndarray:
    """(users, 1 + n) item indices: the target first, then ``n`` distinct unseen items."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(targets), n + 1), dtype=np.int64)
    for row, (target, seen) in enumerate(zip(targets, exclude, strict=True)):
        picked: list[int] = []
        chosen = set(seen) | {int(target)}
        while len(picked) < n:
            for item in rng.integers(n_items, size=2 * n).tolist():
                if item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == n:
                        break
        out[row] = [int(target), *picked]
    return out


@torch.no_grad()
def retrieval_scores(model: UniMP, examples: Sequence[Example], batch: int = 16) -> np.ndarray:
    """(examples, items) scores of the retrieval head from each prompt's final state."""
    vocab, pad = model.bank.vocab, model.tokenizer.pad_token_id
    parts = []
    for lo in range(0, len(examples), batch):
        rows = [encode(model.tokenizer, e, vocab, answer=False) for e in examples[lo : lo + batch]]
        tensors = collate(rows, pad, model.device)
        out = model.run(
            tensors["input_ids"], tensors["token_slots"], tensors["slot_items"],
            tensors["attention_mask"],
        )  # fmt: skip
        scores = model.retrieval_scores(out.hidden, tensors["last"], tensors["slot_items"])
        parts.append(scores.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, len(vocab)), dtype=np.float32)


@torch.no_grad()
def generative_scores(
    model: UniMP, examples: Sequence[Example], candidates: np.ndarray, titles: Sequence[str]
) -> np.ndarray:
    """(examples, candidates) constrained-decoding log-probabilities of candidate titles."""
    from tqdm.auto import tqdm

    vocab = model.bank.vocab
    out = np.zeros(candidates.shape, dtype=np.float64)
    for row, example in enumerate(tqdm(examples, desc="unimp rank", unit="user")):
        prompt = encode(model.tokenizer, example, vocab, answer=False)
        out[row] = answer_scores(model, prompt, [titles[i] for i in candidates[row]])
    return out


@torch.no_grad()
def closed_answers(model: UniMP, examples: Sequence[Example]) -> list[np.ndarray]:
    """Per example, the constrained decoder's probability of each of its ``options``."""
    from tqdm.auto import tqdm

    vocab = model.bank.vocab
    return [
        np.exp(answer_scores(model, encode(model.tokenizer, e, vocab, answer=False), e.options))
        for e in tqdm(examples, desc="unimp answers", unit="example")
    ]


def rating_errors(model: UniMP, examples: Sequence[Example]) -> dict[str, float]:
    """MAE and RMSE of the expected rating under the constrained answer distribution."""
    probs = closed_answers(model, examples)
    predicted = np.array(
        [p @ np.array(e.options, dtype=np.float64) for p, e in zip(probs, examples, strict=True)]
    )
    gold = np.array([e.value for e in examples], dtype=np.float64)
    return {
        "MAE": float(np.abs(predicted - gold).mean()),
        "RMSE": float(np.sqrt(((predicted - gold) ** 2).mean())),
        "n": len(gold),
    }


def selection_accuracy(model: UniMP, examples: Sequence[Example]) -> dict[str, float]:
    """Share of examples whose most probable option is the right poster, and chance."""
    probs = closed_answers(model, examples)
    right = [e.options[int(np.argmax(p))] == e.target for p, e in zip(probs, examples, strict=True)]
    chance = float(np.mean([1.0 / len(e.options) for e in examples])) if examples else 0.0
    return {"accuracy": float(np.mean(right)) if right else 0.0, "chance": chance, "n": len(right)}
