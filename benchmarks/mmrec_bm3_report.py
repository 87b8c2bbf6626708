"""The BM3 section of ``results/multimodal.md``: tastemaker's BM3 runs beside MMRec's
(``mmrec_bm3.py``) on the same split: each curve's best validation epoch, how much of that
score it keeps after it, its training loss, and what that says about whose decline it is.
"""

from __future__ import annotations

import json
from typing import Any

from mmrec_bm3 import MODALITIES, SETTINGS, peer_label, result_path  # beside this script

DECLINE = 0.95  # a curve that keeps less than this share of its best has declined
STEEPER = 0.05  # keeping this much less of the best than the authors' BM3 is steeper
COLLAPSE = 0.5  # a curve that keeps less than half of its best has collapsed
CURVES = "multimodal.curves.png"  # written by multimodal.py beside its page


def read_peers() -> dict[str, dict[str, Any]]:
    """The MMRec results written so far, by row label (the authors' run first)."""
    runs = [(m, frozen, result_path(m, frozen)) for m in MODALITIES for frozen in (False, True)]
    return {peer_label(m, f): json.loads(path.read_text()) for m, f, path in runs if path.is_file()}


def _curves(
    records: list[dict[str, Any]], peers: dict[str, dict[str, Any]]
) -> tuple[str | None, dict[str, tuple[list[dict[str, Any]], dict[str, float]]]]:
    """The validation metric (the first BM3 run's) and, per row label, the training log
    (epoch, loss, metric) and the test metrics of the best epoch: tastemaker's BM3 runs
    that early-stopped on that metric, then MMRec's runs that recorded it."""
    runs = [r for r in records if r["model"] == "bm3" and r.get("log")]
    metric = runs[0]["early_stopping_metric"] if runs else "recall@20"
    curves = {
        f"tastemaker {r['run']}": (r["log"], r["test_all_items_train_masked"])
        for r in runs
        if r["early_stopping_metric"] == metric
    }
    for label, peer in peers.items():
        if metric in peer["epochs"][0]["valid"]:
            log = [
                {"epoch": e["epoch"], "loss": e.get("loss"), metric: e["valid"][metric]}
                for e in peer["epochs"]
            ]
            curves[label] = (log, peer["test_at_best"])
    return (metric if runs or curves else None), curves


def bm3_curves(records: list[dict[str, Any]], peers: dict[str, dict[str, Any]]) -> bytes | None:
    """Training loss and validation curves of tastemaker's BM3 runs and MMRec's."""
    metric, curves = _curves(records, peers)
    if metric is None or not any(label.startswith("tastemaker") for label in curves):
        return None
    from tastemaker.evaluation.html import training_chart

    return training_chart({label: log for label, (log, _) in curves.items()}, metric)


def decline(log: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """A validation curve's first best (value, epoch), its last value and the share of
    the best that is (kept), and the lowest training loss (with its epoch) and the last."""
    values = [row[metric] for row in log]
    at = values.index(max(values))
    losses = [(row["loss"], row["epoch"]) for row in log if row.get("loss") is not None]
    return {
        "best": values[at],
        "epoch": log[at]["epoch"],
        "last": values[-1],
        "kept": values[-1] / values[at],
        "epochs": len(log),
        "loss": (min(losses), losses[-1][0]) if losses else None,
    }


def bm3_section(
    records: list[dict[str, Any]], peers: dict[str, dict[str, Any]], split_hash: str, curves: bool
) -> list[str]:
    """The comparison with the authors' BM3 on the same split, when either side ran."""
    metric, logs = _curves(records, peers)
    if metric is None:
        return []
    stats = {label: decline(log, metric) for label, (log, _) in logs.items()}
    rows = [
        f"| run | best valid {metric} (epoch) | last valid | kept | epochs | "
        "training loss: lowest (epoch) → last | test recall@20 | test ndcg@20 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, s in stats.items():
        test = logs[label][1]
        loss = "–" if s["loss"] is None else f"{s['loss'][0][0]:.3f} ({s['loss'][0][1]}) → "
        loss += "" if s["loss"] is None else f"{s['loss'][1]:.3f}"
        rows.append(
            f"| {label} | {s['best']:.4f} ({s['epoch']}) | {s['last']:.4f} | "
            f"{s['kept']:.0%} | {s['epochs']} | {loss} | "
            f"{test['recall@20']:.4f} | {test['ndcg@20']:.4f} |"
        )
    lines = [
        "## BM3 and the authors' code (MMRec)",
        "",
        "Both on the split above, every item ranked and only the user's training items "
        "masked (MMRec's protocol, valid items are not masked at test time), so cold items "
        "compete with warm ones; test metrics of the best validation epoch. tastemaker's "
        "runs here early-stop on the metric in the header (`--set`). *kept*: the last "
        f"validation {metric} as a share of the best; a run ends `patience` epochs after its "
        "best, so one that peaked early may end before a later decline (see the curves). "
        "Training loss: tastemaker's is the mean over the epoch's pairs, MMRec's over its "
        "batches.",
        "",
        *rows,
        "",
        *_verdict(stats),
    ]
    for modality in MODALITIES:
        for frozen in (False, True):
            peer = peers.get(peer_label(modality, frozen))
            if peer is not None:
                lines += [_peer_note(peer, modality, frozen, split_hash), ""]
    if curves:
        lines += [f"![BM3 loss and validation curves]({CURVES})", ""]
    return lines


def _peer_note(peer: dict[str, Any], modality: str, frozen: bool, split_hash: str) -> str:
    """Where an MMRec row comes from: commit, split, features, settings, cost."""
    same = "the same split" if peer["split_hash"] == split_hash else "**another split**"
    flags = " --modality image" * (modality == "image") + " --frozen" * frozen
    patience = peer["settings"]["stopping_step"]
    flags += f" --patience {patience}" * (patience != SETTINGS["stopping_step"])
    kept = "frozen" if frozen else "fine-tuned, as in the authors' code"
    return (
        f"{peer_label(modality, frozen)}: MMRec commit "
        f"`{(peer['mmrec_commit'] or 'unknown')[:12]}`, {same} (hash "
        f"`{peer['split_hash'][:12]}`), {modality} features `{peer[f'{modality}_encoder']}` "
        f"({kept}), settings "
        f"`{json.dumps(peer['settings'])}`; {peer['cpu_seconds']:.0f} CPU-s, {peer['date']}, "
        f"written by `benchmarks/mmrec_bm3.py{flags}`."
    )


def _verdict(stats: dict[str, dict[str, Any]]) -> list[str]:
    """Per modality, whether tastemaker's decline after the best epoch is BM3's own: the
    authors' code has it too (as they wrote it, or with fixed features as tastemaker's)."""
    kept = {label: s["kept"] for label, s in stats.items()}
    lines = []
    for m in MODALITIES:
        runs = [
            kept[label]
            for label in kept
            if label == f"tastemaker bm3-{m}" or label.startswith(f"tastemaker bm3-{m}-seed")
        ]
        if runs:
            theirs, frozen = kept.get(peer_label(m, False)), kept.get(peer_label(m, True))
            lines += [_judge(m, runs, theirs, frozen), ""]
    return lines


def _judge(m: str, runs: list[float], theirs: float | None, frozen: float | None) -> str:
    """The verdict on modality ``m`` from the shares kept: tastemaker's runs (seeds),
    MMRec's as the authors wrote it and MMRec's with fixed features (None: not run)."""
    ours = sum(runs) / len(runs)
    shown = f"{ours:.0%}" if len(runs) == 1 else (
        f"{ours:.0%} on average over {len(runs)} seeds ({', '.join(f'{k:.0%}' for k in runs)})"
    )  # fmt: skip
    text = f"**Is the decline BM3's own ({m})?** tastemaker's bm3-{m} keeps {shown} of its best "
    peers = [("as the authors wrote it", theirs), ("with fixed features", frozen)]
    named = " and ".join(f"MMRec's BM3 {how} {k:.0%}" for how, k in peers if k is not None)
    if not named:
        collapsed = " It collapses." if ours < COLLAPSE else ""
        return f"{text}validation score; MMRec's BM3 did not run on {m} features here.{collapsed}"
    text += f"validation score, {named}. "
    if ours < COLLAPSE:
        fell = [k for k in (theirs, frozen) if k is not None and k < COLLAPSE]
        return text + (
            "It collapses, and so does the authors' code: a collapse of BM3's own."
            if fell
            else "It collapses and the authors' code does not: the collapse is tastemaker's."
        )
    if theirs is not None:
        return text + _against_authors(ours, theirs, frozen)
    if frozen is not None and ours >= frozen - STEEPER:  # like for like: fixed features
        return text + "With the same fixed features the authors' code declines as much."
    return text + "With the same fixed features the authors' code keeps more: it is ours."


def _against_authors(ours: float, theirs: float, frozen: float | None) -> str:
    """Whether the authors' BM3 declines too and, if tastemaker's declines more, whether
    the authors' BM3 with fixed features declines as much."""
    if theirs >= DECLINE:
        return "The authors' code holds its level, so the decline is tastemaker's."
    text = "The authors' code declines too, so a decline after the best epoch is BM3's own"
    if ours >= theirs - STEEPER:
        return text + "."
    text += "; tastemaker's is steeper."
    if frozen is None:
        return text
    if abs(frozen - ours) < abs(frozen - theirs):
        return text + (
            " With fixed features the authors' BM3 declines about as much as tastemaker's: "
            "the steeper decline comes with the fixed features (a deliberate difference, "
            "`models/bm3.py`), not from a fault of tastemaker's code."
        )
    return text + " Fixed features do not explain it, so the extra decline is tastemaker's."
