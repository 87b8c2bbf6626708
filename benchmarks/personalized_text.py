"""Personalized text (LaMP-style, issue 11): every task × method on real MovieLens data.

Rows: the baselines, the LLM without a profile (k = 0), the LLM with each retriever
(bm25, dense, recency, random) at k ∈ {1, 4, all that fits (capped at --k-all)},
the LoRA fine-tuned LLM; 95% bootstrap intervals on every metric and paired
intervals for (retrieval − k=0) and (fine-tuned − zero-shot). Tagging is scored both
ways: the label the model generates (``llm``) and the label it finds most likely
(``llm-score``). The headline setting (bm25, k = 4: the CLI's default) is fixed
before any run; everything chosen by data (fine-tuning epoch, the explanation
default) is chosen on the valid part and reported on test. Rating compares the LLM
(on --rating-users sampled users) with biased MF and the mean/bias baselines.
``backbones`` measures another LLM (``--backbone NAME=MODEL``, e.g. Gemma 3 270M) beside
the default on the cheap settings of each task and picks the default on valid
(``personalized_text_backbones``); ``review-summary`` is a sanity task on real Amazon
reviews (``personalized_text_reviews``).

    python benchmarks/personalized_text.py --data-root DIR [--tasks tagging,explanation]

Each section is written into ``benchmarks/results/personalized_text.{md,json}`` when
it ends, replacing that section only: sections measured by earlier runs are kept, so
one section can be rerun alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import data_root
from personalized_text_backbones import backbones
from personalized_text_finetune import add_finetune_arguments, finetuned
from personalized_text_models import biased_mf_run
from personalized_text_report import markdown
from personalized_text_reviews import review_summary
from tastemaker.atomic import write_text

RESULTS = Path(__file__).resolve().parent / "results"
RETRIEVERS = ("bm25", "dense", "recency", "random")
AMAZON = "amazon-2018-all-beauty-5core/All_Beauty_5.json"  # under the data root
HEADLINE = ("bm25", 4)  # fixed in advance: the CLI's default retriever and k
SECTIONS = (
    "tagging",
    "tagging-wide",
    "tag-generation",
    "explanation",
    "tagging-finetune",
    "tag-generation-finetune",
    "rating",
    "backbones",
    "review-summary",
)
METRIC = {"tagging": "accuracy", "tag-generation": "rouge1", "explanation": "fmr"}
log = logging.getLogger("personalized_text")


def row(label: str, run: Any, seconds: float, **extra: Any) -> dict[str, Any]:
    metrics = {k: v for k, v in run.metrics.items() if isinstance(v, dict)}
    counts = {k: v for k, v in run.metrics.items() if not isinstance(v, dict)}
    tokens = [r["prompt_tokens"] for r in run.records if "prompt_tokens" in r]
    if tokens:
        counts["mean_prompt_tokens"] = round(sum(tokens) / len(tokens), 1)
    return {
        "method": label,
        "metrics": metrics,
        "counts": counts,
        "seconds": round(seconds, 1),
        **extra,
    }


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


class Bench:
    """The sections, sharing one LLM (loaded once), one dense retriever and the results file."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        from tastemaker.llm import create_llm
        from tastemaker.llm.memo import MemoLLM
        from tastemaker.text.retrievers import DenseRetriever

        self.args, self.root = args, root
        model = {"model": args.model} if args.model else {}
        self.llm = MemoLLM(create_llm(batch_size=args.batch_size, **model))
        self.dense = DenseRetriever()
        self.data: dict[str, Any] = {}
        self.out: dict[str, Any] = {"sections": {}}
        self.out["command"] = "python benchmarks/personalized_text.py --data-root $TASTEMAKER_DATA"
        self.done = 0
        self.ks = tuple(args.k_all if k == "all" else int(k) for k in args.ks.split(","))
        self.runs: dict[str, Any] = {}  # the last grid's runs by label, for more comparisons
        self.name, self.clock = "", (0.0, 0.0)  # the section running, its start (wall, CPU)
        self.previous: dict[str, Any] = {}  # the results file's sections when this one began

    def text_data(self, name: str) -> Any:
        from tastemaker.text.sources import load_text_data

        if name not in self.data:
            self.data[name] = load_text_data(self.root / name)
        return self.data[name]

    def task(self, name: str, data: str = "ml-latest-small", **kw: Any) -> Any:
        from tastemaker.text.tasks import build_task

        return build_task(name, self.text_data(data), seed=self.args.seed, **kw)

    def save(self, name: str, section: dict[str, Any], start: float, cpu: float) -> None:
        hidden = ("data_root", "work", "results", "backbone", "amazon")
        settings = {k: v for k, v in vars(self.args).items() if k not in hidden}
        section |= {
            "wall_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(time.process_time() - cpu, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "settings": settings,
        }
        results = Path(self.args.results)
        done = load_results(results) | {name: section}  # sections others wrote meanwhile stay
        self.out["sections"] = {s: done[s] for s in sorted(done, key=section_order)}
        write_text(results / "personalized_text.json", json.dumps(self.out, indent=1) + "\n")
        write_text(results / "personalized_text.md", markdown(self.out))
        log.info("wrote section %s (%.0f s)", name, section["wall_s"])

    def run(self, task: Any, label: str, *, llm: Any = None, **kw: Any) -> tuple[Any, float]:
        from tastemaker.text.runner import run_task

        self.done += 1
        log.info("[%d] %s %s ...", self.done, task.name, label)
        result, seconds = timed(
            run_task, task, llm or self.llm, encoder=self.dense, seed=self.args.seed, **kw
        )
        log.info("[%d] %s %s: %.0f s", self.done, task.name, label, seconds)
        return result, seconds

    def grid(
        self,
        name: str,
        method: str,
        task: Any = None,
        ks: tuple[int, ...] = (),
        retrievers: tuple[str, ...] = (),
        after_headline: Any = None,
    ) -> dict[str, Any]:
        """Baselines, k=0, each retriever × k (default: all, at 1, 4, all that fit) on test;
        paired differences against k=0. Cheap rows and the headline first, the section saved
        after every row (marked partial until it is complete), so a stopped run keeps them."""
        from tastemaker.text.baselines import BASELINES
        from tastemaker.text.runner import compare

        task, metric = task or self.task(name), METRIC[name]
        section = {"task": name, "metric": metric, "users": task.users,
                   "notes": list(task.notes), "rows": [], "paired": []}  # fmt: skip
        if name == "tagging":
            section["notes"].append(
                f"{task.users} users have test examples (the issue said 58: 58 users tagged "
                "anything, 26 of them a label-set tag, 14 at least twice)"
            )
        baselines = sorted(BASELINES[name], key=lambda b: b == "profile-knn")  # kNN encodes
        for baseline in baselines[:-1]:
            if not self.reused(section, baseline):
                run, s = self.run(task, baseline, method=baseline)
                self.add(section, row(baseline, run, s))
        zero_label, self.runs = f"{method} k=0", {}  # k=0 runs when a new row needs it

        def zero() -> Any:
            if zero_label not in self.runs:
                self.runs[zero_label], s = self.run(task, zero_label, method=method, k=0)
                if not any(r["method"] == zero_label for r in section["rows"]):
                    self.add(section, row(zero_label, self.runs[zero_label], s))
            return self.runs[zero_label]

        if not self.reused(section, zero_label):
            zero()
        grid = [
            (r, k) for r in retrievers or self.args.retrievers.split(",") for k in ks or self.ks
        ]
        grid.sort(key=lambda rk: rk != HEADLINE)
        for retriever, k in grid:
            label = f"{method} {retriever} k={k}"
            shown = label if k != self.args.k_all else f"{label} (all that fit)"
            if not self.reused(section, shown, f"{shown} − {zero_label}"):
                run, s = self.run(task, label, method=method, retriever=retriever, k=k)
                self.runs[run.label] = run
                pair = {"pair": f"{shown} − {zero_label}", "headline": (retriever, k) == HEADLINE,
                        **compare(run, zero(), metric, seed=self.args.seed)}  # fmt: skip
                self.add(section, row(shown, run, s), pair)
            if (retriever, k) == HEADLINE and after_headline is not None:
                after_headline(task, section)
        if not self.reused(section, baselines[-1]):
            run, s = self.run(task, baselines[-1], method=baselines[-1])
            self.add(section, row(baselines[-1], run, s))
        return section

    def reused(self, section: dict[str, Any], label: str, *pairs: str) -> bool:
        """Under ``--reuse``: the row ``label`` (with its paired rows) of this section as the
        results file holds it, added unchanged and marked with when it ran; False if absent."""
        old = self.previous.get(self.name, {})
        found = next((r for r in old.get("rows", []) if r["method"] == label), None)
        matched = [p for p in old.get("paired", []) if p["pair"] in pairs]
        if found is None or len(matched) != len(pairs):
            return False
        self.add(section, {**found, "reused": found.get("reused", old.get("finished"))}, *matched)
        return True

    def add(self, section: dict[str, Any], new_row: dict[str, Any] | None, *pairs: Any) -> None:
        """A row (and its paired differences) into the section, saved as partial."""
        if new_row is not None:
            section["rows"].append(new_row)
        section["paired"].extend(pairs)
        self.save(self.name, section | {"partial": True}, *self.clock)

    def decoding(self, task: Any, section: dict[str, Any]) -> None:
        """Tagging by generation vs by label scoring, at k=0 and the headline setting."""
        from tastemaker.text.runner import compare

        for k in (0, HEADLINE[1]):
            label = "llm k=0" if k == 0 else f"llm {HEADLINE[0]} k={k}"
            if self.reused(section, label, f"{label.replace('llm', 'llm-score', 1)} − {label}"):
                continue
            generated, s = self.run(task, f"llm {k}", method="llm", retriever=HEADLINE[0], k=k)
            scored = self.runs.get(generated.label.replace("llm", "llm-score", 1))
            if scored is None:  # reused: run it again for the paired interval
                scored, _ = self.run(task, "llm-score", method="llm-score",
                                     retriever=HEADLINE[0], k=k)  # fmt: skip
            pair = {"pair": f"{scored.label} − {generated.label}",
                    **compare(scored, generated, "accuracy", seed=self.args.seed)}  # fmt: skip
            self.add(section, row(generated.label, generated, s), pair)

    def explanation(self) -> dict[str, Any]:
        """Template vs free and grounded LLM explanations; the default chosen on valid."""
        from tastemaker.text.runner import compare

        task = self.task("explanation")
        rows, valid = [], {}
        template, s = self.run(task, "template", method="template")
        rows.append(row("template", template, s))
        runs = {}
        for method in ("llm", "llm-grounded"):
            checked, _ = self.run(
                task, f"{method} valid", method=method, retriever="bm25", k=4, part="valid"
            )
            valid[method] = {m: checked.metrics[m]["value"] for m in ("faithfulness", "fmr")}
            runs[method], s = self.run(task, method, method=method, retriever="bm25", k=4)
            rows.append(row(runs[method].label, runs[method], s, valid=valid[method]))
        # The default: faithfulness >= 95% on valid first (a false claim costs more than a
        # missed feature), then the higher FMR on valid, then the higher faithfulness.
        chosen = max(
            valid,
            key=lambda m: (
                valid[m]["faithfulness"] >= 0.95,
                valid[m]["fmr"],
                valid[m]["faithfulness"],
            ),
        )
        pairs = [
            {
                "pair": f"{runs[m].label} − template",
                "headline": m == chosen,
                **compare(runs[m], template, "fmr", seed=self.args.seed),
            }
            for m in runs
        ]
        return {
            "task": "explanation",
            "metric": "fmr",
            "users": task.users,
            "notes": [
                *task.notes,
                f"default chosen on valid: {chosen} (faithfulness >= 95% first, then FMR)",
                *[
                    f"valid ({task.users} users): {m}: faithfulness {v['faithfulness']:.3f}, "
                    f"FMR {v['fmr']:.3f}"
                    for m, v in valid.items()
                ],
            ],
            "rows": rows,
            "paired": pairs,
            "selected_on_valid": chosen,
        }

    def rating(self, data: str) -> dict[str, Any]:
        from tastemaker.text.baselines import BASELINES

        full = self.task("rating", data)
        rows = []
        for method in BASELINES["rating"]:
            run, s = self.run(full, method, method=method)
            rows.append(row(method, run, s))
        run, s = timed(biased_mf_run, full, self.args.seed)
        rows.append(row("biased-mf", run, s))
        sample = self.task("rating", data, n_users=self.args.rating_users)
        for k in (0, 4):
            run, s = self.run(sample, f"llm k={k}", retriever="bm25", k=k)
            rows.append(row(f"{run.label} ({sample.users} sampled users)", run, s))
        return {
            "task": "rating",
            "metric": "mae",
            "users": full.users,
            "rows": rows,
            "notes": list(sample.notes),
        }

    def section(self, name: str) -> None:
        self.name, self.clock = name, (time.perf_counter(), time.process_time())
        # --reuse: the rows as they were before this section saves its first row over them
        self.previous = load_results(Path(self.args.results)) if self.args.reuse else {}
        if name == "tagging":
            section = self.grid(name, "llm-score", after_headline=self.decoding)
        elif name == "tagging-wide":
            task = self.task("tagging", test_last=self.args.wide_last)
            section = self.grid("tagging", "llm-score", task, ks=(1, 4), retrievers=("bm25",))
        elif name == "tag-generation":
            section = self.grid(name, "llm")
        elif name == "explanation":
            section = self.explanation()
        elif name.endswith("-finetune"):
            task = name.removesuffix("-finetune")
            if self.args.finetune_k != 1:  # the planned setting is k = 1; others beside it
                self.name = name = f"{name} k={self.args.finetune_k}"
            section = finetuned(self, task, METRIC[task], row)
        elif name == "backbones":
            if not self.args.backbone:
                data_root.fail("the backbones section needs --backbone NAME=MODEL")
            return backbones(self, self.args.backbone, row)
        elif name == "review-summary":
            amazon = self.args.amazon or self.root / AMAZON
            return self.save(name, review_summary(self, Path(amazon)), *self.clock)
        else:
            for data in ("ml-latest-small", "ml-100k"):
                self.save(f"rating {data}", self.rating(data), *self.clock)
            return
        self.save(name, section, *self.clock)


def section_order(name: str) -> int:
    """Sections in the order of :data:`SECTIONS` (rating's per data set at the end)."""
    first = name.split(" ")[0].rstrip(":")
    return SECTIONS.index(first) if first in SECTIONS else len(SECTIONS)


def load_results(folder: Path) -> dict[str, Any]:
    """The sections written so far (by earlier runs: they are kept), or none."""
    try:
        sections = json.loads((folder / "personalized_text.json").read_text())["sections"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return {}
    if not isinstance(sections, dict):
        return {}
    return {k: v for k, v in sections.items() if isinstance(v, dict) and "rows" in v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument("--tasks", default=",".join(SECTIONS), help="sections to (re)run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(RESULTS), help="folder of the results files")
    parser.add_argument("--model", default=None, help="LLM (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--retrievers", default=",".join(RETRIEVERS))
    parser.add_argument("--ks", default="1,4,all", help="profile sizes of the grid (all: --k-all)")
    parser.add_argument("--k-all", type=int, default=16, help="cap of 'all that fit'")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    parser.add_argument(
        "--wide-last", type=int, default=3, help="tagging-wide: last records tested per user"
    )
    parser.add_argument("--rating-users", type=int, default=40, help="users for LLM rating rows")
    add_finetune_arguments(parser)
    parser.add_argument(
        "--reuse", action="store_true", help="keep rows the results file has; run the rest"
    )
    parser.add_argument("--backbone", help="backbones: the other LLM as NAME=MODEL (folder)")
    parser.add_argument("--backbone-tasks", default="tagging,explanation,tag-generation")
    parser.add_argument("--backbone-users", type=int, help="backbones: users sampled (not tagging)")
    parser.add_argument(
        "--backbone-test-only", action="store_true", help="backbones: skip valid (no choice)"
    )
    parser.add_argument("--amazon", help=f"review-summary: reviews (default: DATA/{AMAZON})")
    parser.add_argument("--summary-reviews", type=int, default=60, help="review-summary sample")
    args = parser.parse_args()
    unknown = set(args.tasks.split(",")) - set(SECTIONS)
    if unknown:
        data_root.fail(f"unknown section {', '.join(sorted(unknown))}: use {', '.join(SECTIONS)}")
    root = data_root.data_root(args.data_root, "ml-latest-small", "ml-100k")
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    bench = Bench(args, root)
    for name in args.tasks.split(","):
        bench.section(name)


if __name__ == "__main__":
    main()
