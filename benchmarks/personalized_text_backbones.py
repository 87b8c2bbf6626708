"""The ``backbones`` section of ``benchmarks/personalized_text.py``: the default LLM beside
another backbone (Gemma 3 270M), measured on the same examples in the same run.

Per backbone: load seconds (a fresh load, past the process cache), generation
speed (the same prompts, greedy, one at a time, the backbones alternating over two rounds),
and the cheap headline settings of each task on valid and test: tagging by label
likelihood (``llm-score``) at k = 0 and bm25 k = 4, grounded explanations at bm25 k = 4
(the free ``llm`` rows come from the same replies), and tag generation at bm25 k = 4.

The default is picked by a rule fixed before any backbone was run: the backbone with the
larger sum of its **valid** headline scores (tagging accuracy at bm25 k = 4, grounded
explanation FMR, tag-generation ROUGE-1 at bm25 k = 4: each row keeps its valid score,
and the report adds up the sections measured) wins; a tie keeps the current default.
Test figures are reported, not used for the choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SETTINGS = {  # task: (method, metric, [(retriever, k)]); the first (retriever, k) is headline
    "tagging": ("llm-score", "accuracy", [("bm25", 4), ("bm25", 0)]),
    "explanation": ("llm-grounded", "fmr", [("bm25", 4)]),
    "tag-generation": ("llm", "rouge1", [("bm25", 4)]),
}
SPEED_PROMPTS = 4  # tagging test prompts (k = 0) generated per backbone and round
SPEED_TOKENS = 48


def parse_backbone(text: str) -> tuple[str, str]:
    """``NAME=MODEL`` (the name is what the results show; the model path is not recorded)."""
    name, sep, model = text.partition("=")
    if not sep or not name or not model:
        raise ValueError(f"--backbone takes NAME=MODEL (e.g. gemma-3-270m=DIR), got {text!r}")
    return name, model


def load_seconds(llm: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of loading ``llm``'s weights afresh (past the process cache)."""
    from tastemaker.llm.hf import load_causal_lm
    from tastemaker.llm.memo import unwrap

    plain = unwrap(llm)
    wall, cpu = time.perf_counter(), time.process_time()
    load_causal_lm.__wrapped__(*plain.source, plain.config.device, plain.config.dtype)
    return time.perf_counter() - wall, time.process_time() - cpu


def speed(models: dict[str, Any], task: Any, rounds: int = 2) -> dict[str, dict[str, float]]:
    """New tokens per second (wall and CPU) on the same prompts; backbones alternate."""
    from tastemaker.llm.memo import unwrap
    from tastemaker.text.prompts import build_messages

    prompts = [build_messages(task, e, []) for e in task.part("test")[:SPEED_PROMPTS]]
    totals = {name: [0, 0.0, 0.0] for name in models}
    for _ in range(rounds):
        for name, llm in models.items():
            plain = unwrap(llm)  # past the memo: every round really generates
            tokenizer = plain.load()[0]
            for prompt in prompts:
                wall, cpu = time.perf_counter(), time.process_time()
                reply = plain.replies([prompt], max_new_tokens=SPEED_TOKENS)[0]
                totals[name][1] += time.perf_counter() - wall
                totals[name][2] += time.process_time() - cpu
                totals[name][0] += max(
                    1, len(tokenizer(reply.text, add_special_tokens=False)["input_ids"])
                )
    return {
        name: {"tokens": n, "tokens_per_s": n / wall, "tokens_per_cpu_s": n / cpu}
        for name, (n, wall, cpu) in totals.items()
    }


def backbones(bench: Any, other: str, row: Callable[..., dict[str, Any]]) -> None:
    """Every task of :data:`SETTINGS` for the default and ``other`` (NAME=MODEL), one section
    per task (``backbones: TASK``), each saved after every row (``row`` makes a row)."""
    from tastemaker.llm import create_llm
    from tastemaker.llm.memo import MemoLLM
    from tastemaker.text.runner import compare

    name, model = parse_backbone(other)
    tasks = bench.args.backbone_tasks.split(",")
    unknown = set(tasks) - set(SETTINGS)
    if unknown:
        raise ValueError(f"--backbone-tasks: unknown {', '.join(sorted(unknown))}")
    default = bench.args.model or "SmolLM2-135M-Instruct"
    models = {
        default: bench.llm,
        name: MemoLLM(create_llm(model=model, batch_size=bench.args.batch_size)),
    }
    facts = []
    if "tagging" in tasks:  # load and speed once, in the tagging section's notes
        loads = {n: load_seconds(llm) for n, llm in models.items()}
        facts = [
            f"{n}: load {loads[n][0]:.1f} s wall / {loads[n][1]:.1f} s CPU; "
            f"{s['tokens_per_s']:.1f} new tokens/s wall, {s['tokens_per_cpu_s']:.1f} per CPU-s "
            f"({s['tokens']} tokens, {SPEED_PROMPTS} prompts × 2 alternating rounds, greedy, "
            f"≤ {SPEED_TOKENS} new tokens)"
            for n, s in speed(models, bench.task("tagging")).items()
        ]
    for task_name in tasks:
        method, metric, grid = SETTINGS[task_name]
        users = bench.args.backbone_users if task_name != "tagging" else None
        task = bench.task(task_name, n_users=users)
        section = {"task": task_name, "metric": metric, "users": task.users,
                   "notes": [*facts, *task.notes], "rows": [], "paired": []}  # fmt: skip
        facts = []
        bench.name = f"backbones: {task_name}"
        for retriever, k in grid:
            runs = {}
            for n, llm in models.items():
                shown = {}
                if not bench.args.backbone_test_only:
                    checked, _ = bench.run(task, f"{n} valid", llm=llm, method=method,
                                           retriever=retriever, k=k, part="valid")  # fmt: skip
                    shown = {"valid": {metric: round(checked.metrics[metric]["value"], 3)}}
                runs[n], s = bench.run(task, n, llm=llm, method=method, retriever=retriever, k=k)
                bench.add(section, row(f"{n}: {runs[n].label}", runs[n], s, **shown))
                if method == "llm-grounded":  # the free replies, memoised: no new generation
                    free, s = bench.run(task, n, llm=llm, method="llm", retriever=retriever, k=k)
                    bench.add(section, row(f"{n}: {free.label}", free, s))
            pair = {"pair": f"{name} − {default}: {runs[name].label}",
                    "headline": (retriever, k) == grid[0],
                    **compare(runs[name], runs[default], metric, seed=bench.args.seed)}  # fmt: skip
            bench.add(section, None, pair)
        bench.save(bench.name, section, *bench.clock)
