"""Personalized text (LaMP-style, issue 11): every task × method on real MovieLens data.

Rows: the baselines, the LLM without a profile (k = 0), the LLM with each retriever
(bm25, dense, recency, random) at k ∈ {1, 4, all-that-fits}, the LoRA fine-tuned
LLM; 95% bootstrap intervals on every metric and paired intervals for
(retrieval − k=0) and (fine-tuned − zero-shot). Rating compares the LLM with biased
MF (Koren et al. 2009) and the mean/bias baselines on ml-latest-small and ml-100k.
Settings are chosen on the valid part and reported on test. Caps (users sampled,
training pairs) keep it inside ~40 minutes on a 2-core CPU; the Markdown says which.

    python benchmarks/personalized_text.py --data-root DIR [--threads 1]

Writes ``benchmarks/results/personalized_text.{md,json}`` after every section, so an
interrupted run leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import data_root
from tastemaker.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "results"
RETRIEVERS = ("bm25", "dense", "recency", "random")
KS: tuple[int | None, ...] = (1, 4, None)
log = logging.getLogger("personalized_text")


def row(label: str, run: Any, seconds: float) -> dict[str, Any]:
    metrics = {k: v for k, v in run.metrics.items() if isinstance(v, dict)}
    counts = {k: v for k, v in run.metrics.items() if not isinstance(v, dict)}
    return {"method": label, "metrics": metrics, "counts": counts, "seconds": round(seconds, 1)}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def biased_mf_run(task: Any, seed: int) -> Any:
    """Biased MF fitted on the task's training ratings, early-stopped on its valid examples."""
    import polars as pl

    from tastemaker.data.interactions import Interactions
    from tastemaker.data.vocab import Vocab
    from tastemaker.models import BiasedMF
    from tastemaker.text.runner import TextRun
    from tastemaker.text.scoring import score

    def frame(rows: list[tuple[str, str, float, int]]) -> pl.DataFrame:
        return pl.DataFrame(
            rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row"
        )

    train = [
        (u, e.item_id, float(e.output), e.timestamp) for u, es in task.train.items() for e in es
    ]
    held = [(e.user_id, e.item.item_id, float(e.gold), e.timestamp) for e in task.part("valid")]
    test = task.part("test")
    users = Vocab(sorted({r[0] for r in train + held} | {e.user_id for e in test}), "user")
    items = Vocab(sorted({r[1] for r in train + held} | {e.item.item_id for e in test}), "item")
    model = BiasedMF(seed=seed).fit(
        Interactions(frame(train), users, items), Interactions(frame(held), users, items)
    )
    predictions = model.predict_ratings([e.user_id for e in test], [e.item.item_id for e in test])
    low, high = task.scale.low, task.scale.high
    predicted = [float(min(max(p, low), high)) for p in predictions]
    run = TextRun(task, "biased-mf", None, None, "test", test, predicted, [])
    run.metrics = score(task, test, predicted, seed=seed)
    return run


class Bench:
    """The sections, sharing one LLM, one dense retriever and the results written so far."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        from tastemaker.llm import create_llm
        from tastemaker.text.retrievers import DenseRetriever

        self.args, self.root = args, root
        self.llm = create_llm(batch_size=8)
        self.dense = DenseRetriever()
        self.out: dict[str, Any] = {
            "sections": {},
            "notes": [],
            "settings": vars(args) | {"data_root": None},
        }
        self.start = time.perf_counter()

    def save(self) -> None:
        self.out["wall_s"] = round(time.perf_counter() - self.start, 1)
        self.out["cpu_s"] = round(time.process_time(), 1)
        self.out["loadavg"] = os.getloadavg()
        write_text(RESULTS / "personalized_text.json", json.dumps(self.out, indent=1) + "\n")
        write_text(RESULTS / "personalized_text.md", markdown(self.out))

    def run(self, task: Any, label: str, **kw: Any) -> Any:
        from tastemaker.text.runner import run_task

        result, seconds = timed(
            run_task, task, self.llm, encoder=self.dense, seed=self.args.seed, **kw
        )
        log.info("%s %s: %.0f s", task.name, label, seconds)
        return result, seconds

    def generative(self, name: str, metric: str) -> None:
        """Baselines, k=0, every retriever × k, fine-tuned; paired differences on ``metric``."""
        from tastemaker.text.baselines import BASELINES
        from tastemaker.text.runner import compare
        from tastemaker.text.sources import load_text_data
        from tastemaker.text.tasks import build_task

        task = build_task(name, load_text_data(self.root / "ml-latest-small"), seed=self.args.seed)
        rows, pairs = [], []
        for method in BASELINES[name]:
            run, s = self.run(task, method, method=method)
            rows.append(row(method, run, s))
        zero, s = self.run(task, "k=0", k=0)
        rows.append(row(zero.label, zero, s))
        best = (None, -1.0, zero)
        for retriever in RETRIEVERS:
            for k in KS:
                valid, _ = self.run(
                    task, f"{retriever} {k} valid", retriever=retriever, k=k, part="valid"
                )
                run, s = self.run(task, f"{retriever} {k}", retriever=retriever, k=k)
                rows.append(row(run.label, run, s) | {"valid": valid.metrics[metric]["value"]})
                pairs.append(
                    {
                        "pair": f"{run.label} − llm k=0",
                        **compare(run, zero, metric, seed=self.args.seed),
                    }
                )
                if valid.metrics[metric]["value"] > best[1]:
                    best = (run.label, valid.metrics[metric]["value"], run)
            section = {
                "task": name,
                "users": task.users,
                "notes": list(task.notes),
                "rows": rows,
                "paired": pairs,
            }
            self.out["sections"][name] = section | {"selected_on_valid": best[0]}
            self.save()
        if self.args.finetune_limit:
            tuned = self.finetuned(task, best[2])
            if tuned is not None:
                run, s = tuned
                rows.append(row("llm fine-tuned (bm25 k=4)", run, s))
                pairs.append(
                    {
                        "pair": "fine-tuned − llm k=0",
                        **compare(run, zero, metric, seed=self.args.seed),
                    }
                )
        self.save()

    def finetuned(self, task: Any, _best: Any) -> tuple[Any, float] | None:
        """LoRA on ``finetune_limit`` training pairs (bm25, k=4), then the test run with it."""
        from tastemaker.llm import create_llm
        from tastemaker.llm.hf import load_causal_lm, resolve_source
        from tastemaker.text.finetune import FinetuneConfig, finetune
        from tastemaker.text.finetune_data import training_pairs, valid_pairs
        from tastemaker.text.retrievers import create_retriever
        from tastemaker.text.runner import run_task

        start = time.perf_counter()
        ranker = create_retriever("bm25")
        train = training_pairs(task, ranker, 4, limit=self.args.finetune_limit, seed=self.args.seed)
        valid = valid_pairs(task, ranker, 4)
        tokenizer, model = load_causal_lm.__wrapped__(
            *resolve_source(self.llm.config.model, None), "cpu", "float32"
        )
        folder = Path(self.args.work) / f"finetune-{task.name}"
        config = FinetuneConfig(
            epochs=self.args.finetune_epochs, max_length=384, seed=self.args.seed
        )
        result = finetune(model, tokenizer, train, valid, folder, config)
        tuned = create_llm(batch_size=8, adapter=str(result.adapter))
        run = run_task(task, tuned, retriever="bm25", k=4, seed=self.args.seed, encoder=self.dense)
        best = result.log[result.best_epoch - 1]["valid_loss"]
        self.out["notes"].append(
            f"{task.name}: fine-tuned on {len(train)} training pairs for {config.epochs} epochs "
            f"(best epoch {result.best_epoch} by valid loss {best:.3f})"
        )
        return run, time.perf_counter() - start

    def rating(self) -> None:
        from tastemaker.text.baselines import BASELINES
        from tastemaker.text.sources import load_text_data
        from tastemaker.text.tasks import build_task

        for data in ("ml-latest-small", "ml-100k"):
            full = build_task("rating", load_text_data(self.root / data), seed=self.args.seed)
            rows = []
            for method in BASELINES["rating"]:
                run, s = self.run(full, method, method=method)
                rows.append(row(method, run, s))
            run, s = timed(biased_mf_run, full, self.args.seed)
            rows.append(row("biased-mf", run, s))
            sample = build_task(
                "rating",
                load_text_data(self.root / data),
                n_users=self.args.rating_users,
                seed=self.args.seed,
            )
            for k in (0, 4):
                run, s = self.run(sample, f"llm k={k}", retriever="bm25", k=k)
                rows.append(row(f"{run.label} ({sample.users} sampled users)", run, s))
            self.out["sections"][f"rating {data}"] = {
                "task": "rating",
                "users": full.users,
                "rows": rows,
                "notes": list(sample.notes),
            }
            self.save()

    def explanation(self) -> None:
        from tastemaker.text.sources import load_text_data
        from tastemaker.text.tasks import build_task

        task = build_task(
            "explanation", load_text_data(self.root / "ml-latest-small"), seed=self.args.seed
        )
        rows = []
        run, s = self.run(task, "template", method="template")
        rows.append(row("template", run, s))
        run, s = self.run(task, "llm bm25 k=4", retriever="bm25", k=4)
        rows.append(row(run.label, run, s))
        self.out["sections"]["explanation"] = {
            "task": "explanation",
            "users": task.users,
            "rows": rows,
            "notes": list(task.notes),
        }
        self.save()


def cell(value: dict[str, float]) -> str:
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Personalized text generation (LaMP-style) on MovieLens",
        "",
        "`python benchmarks/personalized_text.py --data-root $TASTEMAKER_DATA`; "
        "LLM SmolLM2-135M-Instruct "
        f"(Q4_1 GGUF, CPU, {out['settings']['threads']} torch thread(s)). 95% bootstrap intervals; "
        f"wall {out.get('wall_s')} s, CPU {out.get('cpu_s')} s, load average {out.get('loadavg')}.",
        "",
        *[f"- {note}" for note in out["notes"]],
    ]
    for name, section in out["sections"].items():
        metrics = sorted({m for r in section["rows"] for m in r["metrics"]})
        lines += ["", f"## {name} ({section['users']} users)", ""]
        lines += [f"- {note}" for note in section.get("notes", [])]
        if section.get("selected_on_valid"):
            lines.append(f"- selected on valid: {section['selected_on_valid']}")
        lines += [
            "",
            "| method | " + " | ".join(metrics) + " | s |",
            "|---" * (len(metrics) + 2) + "|",
        ]
        for r in section["rows"]:
            values = [cell(r["metrics"][m]) if m in r["metrics"] else "" for m in metrics]
            lines.append(f"| {r['method']} | " + " | ".join(values) + f" | {r['seconds']} |")
        if section.get("paired"):
            lines += ["", "| paired difference | value | 95% interval |", "|---|---|---|"]
            for p in section["paired"]:
                interval = f"[{p['low']:+.3f}, {p['high']:+.3f}]"
                lines.append(f"| {p['pair']} | {p['difference']:+.3f} | {interval} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rating-users", type=int, default=40, help="users sampled for LLM rating rows"
    )
    parser.add_argument("--finetune-limit", type=int, default=160, help="training pairs (0: skip)")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--sections", default="rating,tagging,tag-generation,explanation")
    parser.add_argument("--work", default="/tmp/personalized_text_work", help="fine-tuning folders")
    args = parser.parse_args()
    root = data_root.data_root(args.data_root, "ml-latest-small", "ml-100k")
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    bench = Bench(args, root)
    bench.out["settings"]["data_root"] = data_root.shown(root, root)
    for section in args.sections.split(","):
        if section == "rating":
            bench.rating()
        elif section == "explanation":
            bench.explanation()
        else:
            bench.generative(section, "accuracy" if section == "tagging" else "rouge1")
    bench.save()


if __name__ == "__main__":
    main()
