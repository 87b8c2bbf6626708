"""The fine-tuning sections of ``benchmarks/personalized_text.py`` (``tagging-finetune``,
``tag-generation-finetune``): LoRA on a seeded sample of training pairs whose prompts hold
the bm25-retrieved profile (LaMP's fine-tuned setting, Salemi et al. 2023, §5), the epoch
kept by valid loss, then the tuned model on test against the same model zero-shot with the
same prompts, against other fine-tuned settings (``--finetune-peer K:PAIRS``, trained in the
same run so the comparison is paired) and against the user's most frequent tag."""

from __future__ import annotations

import argparse
import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("personalized_text")
BASELINE = "user-most-frequent"  # the user's own past tags: the signal to beat
PLANNED = (1, 64)  # (k, training pairs) fixed before the first fine-tuning run


def peer_settings(text: str) -> list[tuple[int, int]]:
    """``--finetune-peer`` as (k, pairs) settings: "1:64,0:128" → [(1, 64), (0, 128)]."""
    try:
        found = [tuple(int(x) for x in part.split(":")) for part in text.split(",") if part]
    except ValueError:
        found = []
    if not found or any(len(s) != 2 or s[0] < 0 or s[1] < 1 for s in found):
        raise argparse.ArgumentTypeError(f"'{text}' is not K:PAIRS[,K:PAIRS] (e.g. 1:64)")
    return [(s[0], s[1]) for s in found]


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """The fine-tuning sections' flags (defaults: the planned setting)."""
    parser.add_argument(
        "--finetune-limit", type=int, default=PLANNED[1], help="training pairs sampled"
    )
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--finetune-k", type=int, default=PLANNED[0], help="profile entries per prompt"
    )
    parser.add_argument(
        "--finetune-peer",
        type=peer_settings,
        help="fine-tuned settings compared in the same run, as K:PAIRS[,K:PAIRS] (e.g. 1:64)",
    )
    parser.add_argument("--max-length", type=int, default=256, help="tokens per training pair")
    parser.add_argument("--work", default="/tmp/personalized_text_work", help="adapter folders")


def adapted(bench: Any, task: Any, k: int, limit: int) -> tuple[Any, Any, int, Any]:
    """(LLM with the adapter, fine-tuning result, training pairs, config) for LoRA on
    ``limit`` training pairs at bm25 ``k``. Its folder is named after the task, k and pairs,
    and training resumes there: a stopped run continues, a finished one is reused."""
    from tastemaker.llm import create_llm
    from tastemaker.llm.memo import unwrap
    from tastemaker.text.finetune import FinetuneConfig, finetune
    from tastemaker.text.finetune_data import training_pairs, valid_pairs
    from tastemaker.text.retrievers import create_retriever

    ranker = create_retriever("bm25")
    train = training_pairs(task, ranker, k, limit=limit, seed=bench.args.seed)
    valid = valid_pairs(task, ranker, k)
    tokenizer, base = unwrap(bench.llm).load()  # type: ignore[attr-defined]
    model = copy.deepcopy(base)  # peft wraps the model it gets: keep the cached one clean
    folder = Path(bench.args.work) / f"finetune-{task.name}-k{k}-{len(train)}pairs"
    config = FinetuneConfig(
        epochs=bench.args.finetune_epochs, max_length=bench.args.max_length, seed=bench.args.seed
    )
    log.info("fine-tuning %s at k=%d on %d pairs, %d epochs", task.name, k, len(train),
             config.epochs)  # fmt: skip
    result = finetune(model, tokenizer, train, valid, folder, config, resume=True)
    del model
    tuned = create_llm(bench.llm.config, adapter=str(result.adapter))  # base copy + adapter
    return tuned, result, len(train), config


def training_notes(result: Any, config: Any, pairs: int, k: int) -> list[str]:
    """How one adapter was trained and chosen, epoch by epoch."""
    best = result.log[result.best_epoch - 1]
    seconds = sum(e["seconds"] for e in result.log)
    chosen = (
        f"best epoch {result.best_epoch} by valid loss {best['valid_loss']:.3f}"
        if len(result.log) > 1
        else f"one epoch, so none chosen on valid (valid loss {best['valid_loss']:.3f})"
    )
    return [
        f"k={k}: LoRA (r={config.rank}, α={config.alpha:g}, q/v projections, lr "
        f"{config.learning_rate:g}) on {pairs} training pairs sampled with seed {config.seed}, "
        f"{config.epochs} epoch(s), {f'bm25 k={k}' if k else 'profile-free'} prompts cut to "
        f"{config.max_length} tokens; "
        f"{chosen}; training and valid loss {seconds:.0f} s wall",
        *[
            f"k={k}: epoch {e['epoch']}: train loss {e['train_loss']:.3f}, valid loss "
            f"{e['valid_loss']:.3f}"
            for e in result.log
        ],
    ]


def copy_note(runs: dict[str, Any]) -> str:
    """Per row, the share of test outputs that equal one of the user's earlier tags, and the
    share that share at least one word with them (a partial copy)."""
    from tastemaker.text.metrics import copies_profile
    from tastemaker.text.sources import normalise_tag

    def words(texts: list[str]) -> set[str]:
        return {w for t in texts for w in normalise_tag(t.replace(",", " ")).split()}

    shares = []
    for label, run in runs.items():
        n = len(run.examples)
        pairs = list(zip(run.examples, run.predictions, strict=True))
        same = sum(copies_profile([p.output for p in e.profile], out) for e, out in pairs)
        near = sum(bool(words([out or ""]) & words([p.output for p in e.profile]))
                   for e, out in pairs)  # fmt: skip
        shares.append(f"{label} {same / n:.3f} ({same:.0f}/{n}; a shared word: {near}/{n})")
    return "outputs equal to one of the user's earlier tags (copying): " + "; ".join(shares)


def command(args: argparse.Namespace, name: str) -> str:
    """The command line that remakes this section (the adapters' folder left at its default)."""
    peers = ",".join(f"{k}:{n}" for k, n in args.finetune_peer or [])
    return (
        f"python benchmarks/personalized_text.py --data-root $TASTEMAKER_DATA --tasks "
        f"{name}-finetune --finetune-k {args.finetune_k} --finetune-limit {args.finetune_limit} "
        f"--finetune-epochs {args.finetune_epochs} --max-length {args.max_length}"
        + (f" --finetune-peer {peers}" if peers else "")
    )


def finetuned(
    bench: Any, name: str, metric: str, row: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """LoRA at bm25 ``--finetune-k`` on ``--finetune-limit`` pairs vs (a) the same model
    zero-shot at the same k (the headline), (b) each ``--finetune-peer`` setting fine-tuned
    alike, (c) the user's most frequent tag; all on the same test examples, paired. The
    section is saved (as partial) after every row."""
    from tastemaker.text.runner import compare

    task = bench.task(name)
    method = "llm-score" if name == "tagging" else "llm"
    k, seed = bench.args.finetune_k, bench.args.seed
    tuned_llm, result, pairs, config = adapted(bench, task, k, bench.args.finetune_limit)
    section: dict[str, Any] = {"task": name, "metric": metric, "users": task.users, "rows": [],
                               "paired": []}  # fmt: skip
    notes = [f"command: {command(bench.args, name)}", *training_notes(result, config, pairs, k)]
    if (k, bench.args.finetune_limit) != PLANNED:
        notes.insert(1, f"bm25 k={k} in the training prompts, {pairs} pairs and the peers were "
                     f"set after the planned setting's results (k={PLANNED[0]}, {PLANNED[1]} "
                     "pairs) were seen: not fixed in advance")  # fmt: skip
    runs: dict[str, Any] = {}

    def add(label: str, run: Any, seconds: float, *pair: dict[str, Any]) -> None:
        runs[label] = run
        copying = [copy_note(runs)] if name == "tag-generation" else []
        section["notes"] = notes + copying
        bench.add(section, row(label, run, seconds), *pair)

    zero, s = bench.run(task, "zero-shot", method=method, retriever="bm25", k=k)
    add(f"{zero.label} zero-shot", zero, s)
    tuned, s = bench.run(task, "fine-tuned", llm=tuned_llm, method=method, retriever="bm25", k=k)
    label = f"{tuned.label} fine-tuned ({pairs} pairs)"

    def versus(other: Any, pair: str) -> dict[str, Any]:
        return {"pair": pair, **compare(tuned, other, metric, seed=seed)}

    add(label, tuned, s, {"headline": True} | versus(zero, "fine-tuned − zero-shot"))
    baseline, s = bench.run(task, BASELINE, method=BASELINE)
    add(BASELINE, baseline, s, versus(baseline, f"{label} − {BASELINE}"))
    for peer_k, limit in bench.args.finetune_peer or []:
        peer_llm, peer_result, peer_pairs, _ = adapted(bench, task, peer_k, limit)
        notes += training_notes(peer_result, config, peer_pairs, peer_k)
        peer, s = bench.run(task, f"fine-tuned k={peer_k}", llm=peer_llm, method=method,
                            retriever="bm25", k=peer_k)  # fmt: skip
        peer_label = f"{peer.label} fine-tuned ({peer_pairs} pairs)"
        add(peer_label, peer, s, versus(peer, f"{label} − {peer_label}"))
    return section
