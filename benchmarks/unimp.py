"""UniMP against its peers, its ablations and two generalization tests, on ml-latest-small.

One command; time-ordered leave-one-out; the same seeded test users and the same
100 candidates (test item + 99 items the user never rated) for every model:

    python benchmarks/unimp.py --data-root $TASTEMAKER_DATA --quick LM   # the measured run
    python benchmarks/unimp.py --data-root $TASTEMAKER_DATA LM           # default (estimated)

Writes benchmarks/results/unimp.{md,json} after every row, so a stopped run still
reports what it measured: recommendation HR/NDCG/MRR@3,5,10 (UniMP's generative
head over candidate titles and its retrieval head, over the candidates and over
all unseen items) next to SASRec, mm_sasrec, UniSRec and VBPR; rating vs biased
MF; explanations (the text issue's measures) vs the item's most frequent tag;
poster selection vs chance and PMG's d_p; search Recall@10 vs text retrieval;
held-out users (never trained on); ml-100k zero-shot (text only); the paper's
ablations. The UniMP recipe is chosen beforehand on validation users
(``--part recipe``, :mod:`unimp_recipe`); nothing is tuned on the test users reported
here. Parts may run side by side as separate processes (``--part unimp|peers|ablations``
with ``--peers``/``--ablations`` lists); ``--part report`` rewrites the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import data_root
from unimp_report import markdown, targets

RESULTS = data_root.REPO / "benchmarks" / "results"
SEED = 0

#: Model and budget; the quick one is what this session ran, the default is estimated
#: from its CPU-seconds (see the Markdown).
SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"lm_layers": 2, "steps": 40, "batch_size": 4, "history": 3, "users": 20,
              "per_user": 4, "held_out": 10, "ml100k_users": 20, "peer_epochs": 5},
    "default": {"lm_layers": 2, "steps": 300, "batch_size": 4, "history": 3, "users": 60,
                "per_user": 8, "held_out": 30, "ml100k_users": 60, "peer_epochs": 10},
}  # fmt: skip
PARTS = ("all", "unimp", "peers", "ablations", "recipe", "report")
KEPT = ("recipe",)  # chosen on validation users before the run: kept by a fresh one
ABLATIONS: dict[str, dict[str, Any]] = {
    "single-task recommend": {"tasks": ("recommend",)},
    "single-task rating": {"tasks": ("rating",)},
    "single-task select": {"tasks": ("select",)},
    "without images": {"fusion": "none"},
    "coarse cross-attention": {"fusion": "coarse"},
    "without context reconstruction": {
        "tasks": ("recommend", "rating", "explain", "select", "search")
    },
    "without re-weighting": {"reweight": 0.0},
}


class Recorder:
    """The results so far, merged into the JSON and Markdown after every row.

    Parts of one run (``--part``) may run as separate processes: each merges its rows
    into the same files under a lock; ``--part all`` starts the files afresh.
    """

    def __init__(self, head: dict[str, Any], fresh: bool) -> None:
        self.head, self.fresh = head, fresh
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def row(
        self, key: str, value: Any, cpu_since: float | None = None, cpu_key: str | None = None
    ) -> None:
        import fcntl

        from tastemaker.atomic import write_text

        path = RESULTS / "unimp.json"
        with open(Path(tempfile.gettempdir()) / "tastemaker-unimp-results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            out = json.loads(path.read_text()) if path.exists() else {}
            if self.fresh:
                out = {k: out[k] for k in KEPT if k in out}
            self.fresh = False
            out.update(self.head)
            if isinstance(value, dict) and key == "peers":  # parts may measure different peers
                value = {**out.get(key, {}), **value}
            out[key] = value
            if cpu_since is not None:
                spent = round(time.process_time() - cpu_since, 1)
                out.setdefault("cpu_per_part", {})[cpu_key or key] = spent
            if self.head["part"] == "report":
                out["targets"] = targets(out)
                write_text(path, json.dumps(out, indent=2) + "\n")
                write_text(RESULTS / "unimp.md", markdown(out))
                return
            out["load_average"] = [round(x, 2) for x in os.getloadavg()]
            out.setdefault("cpu_seconds", {})[self.head["part"]] = round(
                time.process_time() - self.cpu, 1
            )
            out.setdefault("wall_seconds", {})[self.head["part"]] = round(
                time.perf_counter() - self.wall, 1
            )
            out["targets"] = targets(out)
            write_text(path, json.dumps(out, indent=2) + "\n")
            write_text(RESULTS / "unimp.md", markdown(out))


def ranked(scores: np.ndarray, plan: Any, data: Any) -> dict[str, Any]:
    """HR/NDCG/MRR on the plan's candidates and over all unseen items."""
    from tastemaker.unimp.evaluate import rank_metrics, target_ranks
    from tastemaker.unimp.report import full_ranks

    sampled = np.take_along_axis(scores, plan.candidates, axis=1)
    return {"@100": rank_metrics(target_ranks(sampled)),
            "@full": rank_metrics(full_ranks(scores, plan, data))}  # fmt: skip


@dataclass
class Setup:
    """What every part shares: the config, data, held-out users and the evaluation plan."""

    root: Path
    size: dict[str, Any]
    config: Any
    dataset: Any
    data: Any
    held: set[str]
    pairs: list[Any]
    train_data: Any
    seen_data: Any
    plan: Any
    out_dir: Path


def setup(root: Path, size: dict[str, Any], config: Any) -> Setup:
    """The split, the held-out users (never trained on) and the held-out tagged pairs."""
    from tastemaker.data.sources.movielens import load_movielens
    from tastemaker.unimp import explanation as ex
    from tastemaker.unimp.pipeline import prepare
    from tastemaker.unimp.report import eval_plan

    folder = root / "ml-latest-small"
    dataset = load_movielens(folder, root / "ml-latest-small-posters")
    data = prepare(dataset, config, tags_folder=folder, progress=False)
    rng = np.random.default_rng(SEED)
    testable = sorted(u for u in data.test if data.known.get(u))
    held = set(rng.choice(testable, size=size["held_out"], replace=False).tolist())
    pairs = ex.held_out_tag_pairs(data, [u for u in data.train if u not in held])
    train_data = replace(
        data, train={u: h for u, h in data.train.items() if u not in held},
        tags=ex.without_pairs(data.tags, pairs),
    )  # fmt: skip
    seen_data = replace(data, test={u: v for u, v in data.test.items() if u not in held})
    plan = eval_plan(seen_data, size["users"], SEED)
    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "tastemaker-unimp-bench"
    return Setup(root, size, config, dataset, data, held, pairs, train_data, seen_data, plan,
                 out_dir)  # fmt: skip


def run_unimp(s: Setup, rec: Recorder) -> None:
    """The main model: recommendation, rating, selection, explanation, search, transfer."""
    from tastemaker.data.sources.registry import load_folder
    from tastemaker.unimp import explanation as ex
    from tastemaker.unimp.pipeline import prepare, train_unimp
    from tastemaker.unimp.report import eval_plan, evaluate_all
    from tastemaker.unimp.search import recall_at, search_set, unimp_search_ranks
    from tastemaker.unimp.transfer import transfer
    from unimp_peers import item_features, text_search_ranks

    cpu = time.process_time()
    model, result = train_unimp(s.train_data, s.config, s.out_dir, per_user=s.size["per_user"])
    rec.row("train", {"steps": s.config.steps, "log": result.log}, cpu)
    cpu = time.process_time()
    rec.row("unimp", evaluate_all(model, s.seen_data, users=s.size["users"], seed=SEED), cpu)

    cpu = time.process_time()
    texts = ex.unimp_explanations(model, s.data, s.pairs)
    popular = ex.popular_tag_explanations(s.train_data.tags, s.pairs)
    rec.row("explanation", {
        "UniMP": ex.explanation_measures(s.data, s.pairs, texts),
        "item's most frequent tag": ex.explanation_measures(s.data, s.pairs, popular),
        "examples": [[p.user, p.item, t] for p, t in list(zip(s.pairs, texts, strict=True))[:5]],
    }, cpu)  # fmt: skip

    cpu = time.process_time()
    searches = search_set(s.seen_data, s.plan, s.seen_data.builder(s.config), seed=SEED)
    text = item_features(data_catalog(s), ("text",))["text"]
    unimp_ranks = unimp_search_ranks(model, s.seen_data, s.plan, searches)
    text_ranks = text_search_ranks(
        searches.queries, s.plan.candidates[searches.rows], text, s.data.split.items
    )
    rec.row("search", {"UniMP": recall_at(unimp_ranks), "text retrieval": recall_at(text_ranks),
                       "n": len(searches.rows)}, cpu)  # fmt: skip

    cpu = time.process_time()
    held_data = replace(s.data, test={u: s.data.test[u] for u in sorted(s.held)})
    rec.row("held_out", evaluate_all(model, held_data, users=None, seed=SEED), cpu)

    cpu = time.process_time()
    ml100k = prepare(load_folder(s.root / "ml-100k"), s.config, progress=False)
    moved, ml100k = transfer(model, ml100k)
    new_domain = evaluate_all(moved, ml100k, users=s.size["ml100k_users"], seed=SEED)
    plan100 = eval_plan(ml100k, s.size["ml100k_users"], SEED)
    popular100 = peer_scores_popular(ml100k.split, plan100.users)
    new_domain["most_popular (trained on ml-100k)"] = ranked(popular100, plan100, ml100k)
    rec.row("ml100k", new_domain, cpu)


def run_peers(s: Setup, rec: Recorder, names: list[str], baselines: bool = True) -> None:
    """SASRec, mm_sasrec, UniSRec, VBPR; biased MF and PMG's d_p (when ``baselines``)."""
    from unimp_peers import item_features, peer_scores

    data, plan = s.data, s.plan
    features = item_features(data_catalog(s), ("text", "image"))
    if baselines:
        run_baselines(s, rec, features)
    peers: dict[str, Any] = {}
    for name in names:
        cpu = time.process_time()
        scores = peer_scores(name, data.split, plan.users, features, SEED, s.size["peer_epochs"])
        peers[name] = ranked(scores, plan, data)
        rec.row("peers", peers, cpu, cpu_key=f"peer {name}")


def run_baselines(s: Setup, rec: Recorder, features: dict[str, Any]) -> None:
    """Biased MF's test ratings and PMG's d_p selection, on the measured users."""
    from tastemaker.unimp.examples import held_out_examples
    from unimp_peers import biased_mf_predictions, dp_selection

    data, plan = s.data, s.plan
    cpu = time.process_time()
    items = [data.test[u][0][0] for u in plan.users]
    gold = np.array([data.test[u][0][1] for u in plan.users], dtype=np.float64)
    predicted = biased_mf_predictions(data.split, plan.users, items, SEED)
    known = {u: data.known[u] for u in plan.users}
    select = held_out_examples(s.seen_data.builder(s.config), known,
                               {u: data.test[u] for u in plan.users}, "select", seed=SEED,
                               everything=data.seen)  # fmt: skip
    rec.row("baselines", {
        "biased_mf": {"MAE": float(np.abs(predicted - gold).mean()),
                      "RMSE": float(np.sqrt(((predicted - gold) ** 2).mean())), "n": len(gold)},
        "d_p selection": dp_selection(select, known, features["image"], data.split.items),
    }, cpu)  # fmt: skip


def run_ablations(s: Setup, rec: Recorder, names: list[str]) -> None:
    """One training per ablation, on the same pool and users; merged into the results."""
    from tastemaker.unimp.pipeline import train_unimp
    from tastemaker.unimp.report import evaluate_all
    from tastemaker.unimp.visual import VisualBank

    for name in names:
        cpu = time.process_time()
        variant = s.config.model_copy(update=ABLATIONS[name])
        variant_train, variant_eval = s.train_data, s.seen_data
        if variant.fusion == "none":  # no poster anywhere: not in the retrieval head either
            empty = VisualBank.empty(s.data.split.items)
            variant_train, variant_eval = (
                replace(d, bank=empty) for d in (variant_train, variant_eval)
            )
        run = s.out_dir.with_name(s.out_dir.name + "-" + name.replace(" ", "-"))
        model, _ = train_unimp(variant_train, variant, run, per_user=s.size["per_user"])
        measured = evaluate_all(model, variant_eval, users=s.size["users"], seed=SEED,
                                generative="recommend" in variant.tasks)  # fmt: skip
        del model
        rec.row(f"ablation {name}", measured, cpu)


def data_catalog(s: Setup) -> Any:
    """The catalog of the split's items (what the content features are computed for)."""
    return s.dataset.catalog.subset(s.data.split.items.ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root.add_argument(parser)
    parser.add_argument("lm", nargs="?", default=None, help="backbone (default: SmolLM2-135M)")
    parser.add_argument("--quick", action="store_true", help="the run measured in this session")
    parser.add_argument("--part", choices=PARTS, default="all",
                        help="run one part (parts of a run may run side by side)")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="recipe part: keep candidates already in the results")  # fmt: skip
    parser.add_argument("--peers", default="sasrec,mm_sasrec,unisrec,vbpr",
                        help="comma-separated peers of the 'peers' part")  # fmt: skip
    parser.add_argument("--ablations", default=",".join(ABLATIONS),
                        help="comma-separated ablations of the 'ablations' part")  # fmt: skip
    args = parser.parse_args(argv)
    root = data_root.data_root(
        args.data_root, "ml-latest-small", "ml-latest-small-posters", "ml-100k"
    )
    from unimp_peers import PEERS

    names = [n for n in args.ablations.split(",") if n]
    peers = [n for n in args.peers.split(",") if n]
    for chosen, known in ((names, ABLATIONS), (peers, PEERS)):
        unknown = [n for n in chosen if n not in known]
        if unknown:
            parser.error(f"unknown name '{unknown[0]}'; use some of: {', '.join(known)}")

    import torch

    torch.set_num_threads(1)
    from tastemaker.unimp.config import DEFAULT_LM, UniMPConfig

    size = SETTINGS["quick" if args.quick else "default"]
    keys = ("lm_layers", "steps", "batch_size", "history")
    config = UniMPConfig(lm=args.lm or DEFAULT_LM, save_every=size["steps"], seed=SEED,
                         **{k: size[k] for k in keys})  # fmt: skip
    head = {
        "command": "python benchmarks/unimp.py --data-root $TASTEMAKER_DATA"
        + (" --quick" if args.quick else "") + (" LM" if args.lm else ""),
        "lm": Path(config.lm).name, "seed": SEED, "settings": size,
        "config": config.model_dump(mode="json"), "part": args.part,
        "ablations_planned": list(ABLATIONS), "default_settings": SETTINGS["default"],
    }  # fmt: skip
    rec = Recorder(head, fresh=args.part == "all")
    if args.part == "report":  # rewrite the Markdown of the results so far
        rec.row("default_settings", SETTINGS["default"])
        return
    cpu = time.process_time()
    s = setup(root, size, config)
    rec.row("prepare", {"held_out_users": len(s.held), "explanation_pairs": len(s.pairs)}, cpu)
    if args.part == "recipe":
        from unimp_recipe import run_recipe

        path = RESULTS / "unimp.json"
        earlier = json.loads(path.read_text()).get("recipe") or {} if args.reuse else {}
        run_recipe(s, rec, earlier.get("candidates"))
    if args.part in ("all", "unimp"):
        run_unimp(s, rec)
    if args.part == "all":  # what the targets read first, so a stopped run reports them
        for first in (True, False):
            run_peers(s, rec, [p for p in peers if (p == "sasrec") == first], baselines=first)
            run_ablations(s, rec, [n for n in names if n.startswith("single-task") == first])
    if args.part == "peers":
        run_peers(s, rec, peers)
    if args.part == "ablations":
        run_ablations(s, rec, names)


def peer_scores_popular(split: Any, users: list[str]) -> np.ndarray:
    """Most-popular scores on ``split`` (the in-domain reference of the ml-100k transfer)."""
    from tastemaker.data.interactions import Interactions
    from tastemaker.models import create_model

    train, valid = split.part("train"), split.part("valid")
    model = create_model("most_popular").fit(train, valid)
    return model.score_indices(
        split.users.index(users), Interactions.concat([train, valid])
    ).numpy()


if __name__ == "__main__":
    sys.exit(main())
