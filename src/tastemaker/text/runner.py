"""One task × method run: predictions, metrics (JSON, Markdown) and a page, written atomically.

``method="llm"`` retrieves ``k`` profile entries per example (fewer when the prompt
would exceed the model's context: recorded), prompts the LLM after LaMP's templates,
parses the reply, retries unusable ones with a firmer prompt, and then records a
fallback (tagging: invalid, scored wrong; rating: LaMP's worst-case scoring;
tag generation: the user's most frequent tag; explanation: the template).
``method="llm-score"`` (tagging) builds the same prompt and picks the label the model
finds most likely (:mod:`tastemaker.llm.likelihood`), so it never answers outside the
set. ``method="llm-grounded"`` (explanation) generates as ``llm`` does and then cuts
the clauses that assert attributes the movie does not have
(:func:`~tastemaker.text.explanations.ground`). Any other method is a baseline of
:mod:`tastemaker.text.baselines`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tastemaker.errors import ConfigError
from tastemaker.llm.base import LLM
from tastemaker.text import metrics as m
from tastemaker.text.baselines import BASELINES, baseline_predictions, template_explanation
from tastemaker.text.explanations import ground
from tastemaker.text.parsing import parse_reply
from tastemaker.text.prompts import build_messages
from tastemaker.text.retrievers import (
    Budgeted,
    Retriever,
    create_retriever,
    top_k_within_budget,
)
from tastemaker.text.scoring import score, statistics
from tastemaker.text.tasks import Example, Part, Task
from tastemaker.text.tokens import TokenCounter, prompt_budget, token_counter

log = logging.getLogger("tastemaker.text")

LLM_METHODS = ("llm", "llm-score", "llm-grounded")
RETRY_TEMPERATURE = 0.7  # sampling from the second retry on, as the keyword extractor does
MAX_NEW_TOKENS = {"tagging": 16, "tag-generation": 16, "rating": 8, "explanation": 80}
FALLBACK = {
    "tagging": None,
    "rating": None,
    "tag-generation": "user-most-frequent",
    "explanation": "template",
}


@dataclass
class TextRun:
    """What a run made: per-example records, the predictions scored, the metrics."""

    task: Task
    method: str
    retriever: str | None
    k: int | None
    part: str
    examples: list[Example]
    predictions: list[Any]
    records: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    @property
    def label(self) -> str:
        if self.method not in LLM_METHODS:
            return self.method
        k = "all" if self.k is None else self.k
        return f"{self.method} k={k}" if k == 0 else f"{self.method} {self.retriever} k={k}"


def compare(first: TextRun, second: TextRun, metric: str, *, seed: int = 0) -> dict[str, float]:
    """first − second on ``metric`` over the same examples, with a paired 95% interval."""
    if [e.id for e in first.examples] != [e.id for e in second.examples]:
        raise ConfigError(
            "the two runs scored different examples", "run both on the same task part"
        )
    a = statistics(first.task, first.examples, first.predictions)[metric]
    b = statistics(second.task, second.examples, second.predictions)[metric]
    return m.paired_bootstrap(a, b, len(first.examples), seed=seed)


def run_task(
    task: Task,
    llm: LLM | None = None,
    *,
    method: str = "llm",
    retriever: str | Retriever = "bm25",
    k: int | None = 4,
    out: Path | None = None,
    part: Part = "test",
    retries: int = 2,
    max_new_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    seed: int = 0,
    encoder: Any = None,
) -> TextRun:
    """Run ``method`` (one of :data:`LLM_METHODS` or a baseline) on ``task``'s ``part``;
    write ``out`` if given.

    ``k=None`` takes every profile entry that fits the context; ``encoder`` (a
    TextEncoder or DenseRetriever) is shared by the dense retriever and profile kNN.
    """
    examples = task.part(part)
    if k is not None and k < 0:
        raise ConfigError(f"k must be 0 or more, got {k}", "pass --k 0 or a positive number")
    if method in LLM_METHODS:
        if llm is None:
            raise ConfigError(
                f"method '{method}' needs a language model", "pass llm=create_llm(...)"
            )
        if method == "llm-score" and not task.labels:
            raise ConfigError(
                f"method 'llm-score' picks one of a label set; the {task.name} task has none",
                "use it for tagging, or method llm",
            )
        if method == "llm-grounded" and task.name != "explanation":
            raise ConfigError(
                f"method 'llm-grounded' grounds explanations, not the {task.name} task",
                "use it for explanation, or method llm",
            )
        ranker = (
            create_retriever(retriever, seed=seed, encoder=encoder)
            if isinstance(retriever, str)
            else retriever
        )
        new_tokens = max_new_tokens or MAX_NEW_TOKENS[task.name]
        counter = token_counter(llm)
        budget = prompt_budget(counter, new_tokens, max_prompt_tokens)
        chosen = _retrieve(task, examples, ranker, k, budget, counter)
        if method == "llm-score":
            predictions, records = _scored_predictions(task, examples, llm, chosen, k, counter)
        else:
            predictions, records = _llm_predictions(
                task, examples, llm, chosen, k, retries, new_tokens, counter, encoder
            )
            if method == "llm-grounded":
                _ground(task, examples, predictions, records)
        run = TextRun(task, method, ranker.name, k, part, examples, predictions, records)
    else:
        if method not in BASELINES[task.name]:
            raise ConfigError(
                f"unknown method '{method}' for the {task.name} task",
                f"use llm or one of: {', '.join(BASELINES[task.name])}",
            )
        predictions = baseline_predictions(task, method, examples, encoder=encoder)
        records = [
            _record(e, p, [], k_used=None, attempts=[], fallback=None)
            for e, p in zip(examples, predictions, strict=True)
        ]
        run = TextRun(task, method, None, None, part, examples, predictions, records)
    run.metrics = score(task, examples, predictions, seed=seed)
    run.metrics["fallbacks"] = sum(r.get("fallback") is not None for r in records)
    log.info("%s %s: %s", task.name, run.label, _summary(run.metrics))
    if out is not None:
        from tastemaker.text.outputs import write_run

        run.out = write_run(run, Path(out))
    return run


def _summary(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {value['value']:.4f}" for name, value in metrics.items() if isinstance(value, dict)
    )


def _record(
    example: Example, prediction: Any, retrieved: list[Any], **extra: Any
) -> dict[str, Any]:
    return {
        "id": example.id,
        "user_id": example.user_id,
        "item_id": example.item.item_id,
        "input": example.input,
        "gold": list(example.gold) if isinstance(example.gold, tuple) else example.gold,
        "prediction": prediction,
        "profile_size": len(example.profile),
        "retrieved": [e.as_dict() for e in retrieved],
        **extra,
    }


def _retrieve(
    task: Task,
    examples: list[Example],
    ranker: Retriever,
    k: int | None,
    budget: int,
    counter: TokenCounter,
) -> list[Budgeted]:
    """Each example's top-``k`` profile entries that fit the prompt budget."""
    chosen = []
    for example in examples:
        ranked = [
            example.profile[i] for i in ranker.rank(example.input, example.profile, example.id)
        ]
        chosen.append(
            top_k_within_budget(
                lambda es, ex=example: build_messages(task, ex, es),
                ranked,
                k,
                budget,
                counter.count,
            )
        )
    return chosen


def _budget_record(chosen: Budgeted, k: int | None, counter: TokenCounter) -> dict[str, Any]:
    return {
        "k_requested": k,
        "k_used": len(chosen.entries),
        "dropped_for_budget": chosen.dropped,
        "prompt_tokens": chosen.tokens,
        "tokens_exact": counter.exact,
    }


def _scored_predictions(
    task: Task,
    examples: list[Example],
    llm: LLM,
    chosen: list[Budgeted],
    k: int | None,
    counter: TokenCounter,
) -> tuple[list[Any], list[dict[str, Any]]]:
    """The most likely label of each example under ``llm`` (LaMP's first-attempt prompt)."""
    from tastemaker.llm.likelihood import option_log_likelihoods

    predictions: list[Any] = []
    records = []
    for n, (example, picked) in enumerate(zip(examples, chosen, strict=True), 1):
        sent = build_messages(task, example, picked.entries)
        scores = option_log_likelihoods(llm, [sent], task.labels)[0]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        predictions.append(task.labels[best])
        ranked = sorted(zip(task.labels, scores, strict=True), key=lambda x: -x[1])
        attempt = {
            "prompt": "\n".join(f"{x.role}: {x.content}" for x in sent),
            "raw": ", ".join(f"{label} {score:.2f}" for label, score in ranked[:3]),
            "truncated": False,
            "value": task.labels[best],
            "how": "scored",
        }
        records.append(
            _record(example, task.labels[best], list(picked.entries),
                    **_budget_record(picked, k, counter), attempts=[attempt], fallback=None)
        )  # fmt: skip
        if n % 10 == 0 or n == len(examples):
            log.info("%s: scored %d of %d", task.name, n, len(examples))
    return predictions, records


def _ground(
    task: Task, examples: list[Example], predictions: list[Any], records: list[dict[str, Any]]
) -> None:
    """Cut unsupported clauses from each explanation; the template when nothing is left."""
    for i, example in enumerate(examples):
        if records[i]["fallback"] is not None:
            continue
        text, dropped = ground(predictions[i], example, task)
        records[i]["clauses_cut"] = dropped
        if not text:
            text = template_explanation(example)
            records[i]["fallback"] = "template (nothing grounded)"
        predictions[i] = records[i]["prediction"] = text


def _llm_predictions(
    task: Task,
    examples: list[Example],
    llm: LLM,
    chosen: list[Budgeted],
    k: int | None,
    retries: int,
    new_tokens: int,
    counter: TokenCounter,
    encoder: Any,
) -> tuple[list[Any], list[dict[str, Any]]]:
    attempts: list[list[dict[str, Any]]] = [[] for _ in examples]
    parsed: list[Any] = [None] * len(examples)
    pending = list(range(len(examples)))
    for attempt in range(retries + 1):
        if not pending:
            break
        messages = [
            build_messages(task, examples[i], chosen[i].entries, firm=attempt > 0) for i in pending
        ]
        replies = llm.replies(
            messages,
            max_new_tokens=new_tokens,
            temperature=0.0 if attempt < 2 else RETRY_TEMPERATURE,
            seed=llm.config.seed + attempt,
        )
        for i, sent, reply in zip(pending, messages, replies, strict=True):
            result = parse_reply(task.name, reply.text, labels=task.labels, scale=task.scale)
            attempts[i].append(
                {
                    "prompt": "\n".join(f"{x.role}: {x.content}" for x in sent),
                    "raw": reply.text,
                    "truncated": reply.truncated,
                    **result.as_dict(),
                }
            )
            parsed[i] = result.value
        pending = [i for i in pending if parsed[i] is None]
        log.info(
            "%s: attempt %d, %d of %d usable",
            task.name,
            attempt + 1,
            len(examples) - len(pending),
            len(examples),
        )
    fallback = FALLBACK[task.name]
    if pending and fallback is not None:
        backup = baseline_predictions(
            task, fallback, [examples[i] for i in pending], encoder=encoder
        )
        for i, value in zip(pending, backup, strict=True):
            parsed[i] = value
    records = [
        _record(
            e,
            parsed[i],
            list(chosen[i].entries),
            **_budget_record(chosen[i], k, counter),
            attempts=attempts[i],
            fallback=(fallback or "invalid") if i in pending else None,
        )
        for i, e in enumerate(examples)
    ]
    return parsed, records


def metrics_json(run: TextRun) -> str:
    return json.dumps(
        {
            "task": run.task.name,
            "data": run.task.data_name,
            "method": run.label,
            "part": run.part,
            "users": len({e.user_id for e in run.examples}),
            "notes": list(run.task.notes),
            "metrics": run.metrics,
        },
        indent=2,
    )
