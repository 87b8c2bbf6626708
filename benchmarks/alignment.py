"""Cross-modal alignment on ml-latest-small posters, and the aligned scorer on real pairs.

Run with ``.venv/bin/python benchmarks/alignment.py`` (``--help`` for options).

1. Poster (EfficientNet-Lite0) and text (all-MiniLM-L6-v2; title, genres, tags)
   vectors come through the embedding store (``--store``; a shared, filled store
   makes this step take seconds). :func:`train_alignment` with its default
   config trains on the items that have both; the held-out test items' image→text
   and text→image Recall@1/@10 are reported for the aligned space, a ridge map
   and the untrained heads, with chance.
2. The scorer behind PMG's z (issue 5), :class:`AlignedScorer`, run end to end on
   the poster files (decoded by Pillow, not read from the store): for ``--pairs``
   random (user, movie) pairs with rating >= 4 whose movie is a test item (never
   seen in training, nor used to choose the epoch), the real poster is ranked by
   d_t (text: "title. Genres: ...") among itself and 99 random other test-item
   posters (top-1 / top-10 accuracy; chance 1% / 10%); and d_p (text: the user's
   other liked movies, the 5 most recent titles and their 8 most frequent genres)
   of the user's own liked poster is compared with that of those random posters
   the user has not liked.

Writes ``benchmarks/results/alignment.{md,json}`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from PIL import Image
from tqdm.auto import tqdm

import data_root
from tastemaker.atomic import write_text
from tastemaker.data.catalog import Catalog
from tastemaker.data.sources import load_dataset
from tastemaker.data.sources.registry import default_cache_dir
from tastemaker.encoders import EmbeddingStore, create_encoder, encode_catalog
from tastemaker.generation.scoring import AlignedScorer, unit_interval
from tastemaker.pretrain import AlignedSpace, AlignmentConfig, train_alignment
from tastemaker.pretrain.alignment import metric_table
from tastemaker.reporting.markdown import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
LIKED = 4.0
CANDIDATES = 100
N_TITLES, N_GENRES = 5, 8


def item_text(row: dict[str, Any]) -> str:
    """What d_t compares a poster with: the movie's title and genres."""
    return f"{row['title']}. Genres: {', '.join(row['genres'] or [])}"


def preference_text(rows: list[dict[str, Any]]) -> str:
    """Keywords of a user's liked movies (most recent first): titles, then frequent genres."""
    genres = Counter(g for row in rows for g in row["genres"] or [])
    titles = ", ".join(row["title"] for row in rows[:N_TITLES])
    return f"{titles}. Genres: {', '.join(g for g, _ in genres.most_common(N_GENRES))}"


def mean_ci(values: list[float] | list[bool]) -> dict[str, float]:
    """The mean of per-pair values with its normal-approximation 95% half-width."""
    x = np.asarray(values, dtype=np.float64)
    return {"value": float(x.mean()), "ci95": 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x))}


def scorer_bench(
    space: AlignedSpace,
    catalog: Catalog,
    ratings: pl.DataFrame,
    n_pairs: int,
    seed: int,
    *,
    scorer: AlignedScorer | None = None,
    part: str = "test",
) -> dict[str, Any]:
    """Rank of the real poster by d_t among 100, and d_p of own vs random posters, on the
    items of the space's ``part`` (another ``scorer`` over that space may be passed)."""
    rng = np.random.default_rng(seed)
    test = sorted(space.split[part])
    movies = {row["item_id"]: row for row in catalog.frame.iter_rows(named=True)}
    liked = ratings.filter(pl.col("rating") >= LIKED).sort("timestamp", descending=True)
    history = {
        user: frame["item_id"].to_list()
        for (user,), frame in liked.group_by("user_id", maintain_order=True)
    }
    pairs = liked.filter(pl.col("item_id").is_in(test)).select("user_id", "item_id").rows()
    pairs = [(u, m) for u, m in pairs if len(history[u]) > 1]
    chosen = [
        pairs[i] for i in rng.choice(len(pairs), size=min(n_pairs, len(pairs)), replace=False)
    ]

    scorer = scorer or AlignedScorer(space)
    start = time.perf_counter()
    posters = np.concatenate(
        [
            scorer.image_features([Image.open(movies[m]["image"]) for m in test[lo : lo + 32]])
            for lo in tqdm(range(0, len(test), 32), desc="posters", unit="batch")
        ]
    )
    image_seconds = time.perf_counter() - start
    row_of = {m: i for i, m in enumerate(test)}
    targets = scorer.text_features([item_text(movies[m]) for _, m in chosen])
    prefs = scorer.text_features(
        [preference_text([movies[h] for h in history[u] if h != m]) for u, m in chosen]
    )

    top1, top10, own_p, random_p, wins, pair_wins = [], [], [], [], [], []
    for k, (user, movie) in enumerate(chosen):
        others = [i for i in range(len(test)) if i != row_of[movie]]
        rows = np.array([row_of[movie], *rng.choice(others, size=CANDIDATES - 1, replace=False)])
        d_t = unit_interval(posters[rows] @ targets[k])
        rank = int((d_t[1:] >= d_t[0]).sum())  # ties count against the real poster
        top1.append(rank < 1)
        top10.append(rank < 10)
        seen = set(history[user])
        unliked = np.array([test[i] not in seen for i in rows[1:]])
        d_p = unit_interval(posters[rows] @ prefs[k])
        own_p.append(d_p[0])
        random_p.extend(d_p[1:][unliked])
        wins.append(float((d_p[0] > d_p[1:][unliked]).mean()))
        pair_wins.append(d_p[0] > d_p[1:][unliked].mean())
    return {
        "pairs": len(chosen),
        "distinct_movies": len({m for _, m in chosen}),
        "distinct_users": len({u for u, _ in chosen}),
        "test_posters": len(test),
        "candidates": CANDIDATES,
        "poster_seconds": image_seconds,
        "d_t_top1": mean_ci(top1),
        "d_t_top10": mean_ci(top10),
        "d_p_own_mean": float(np.mean(own_p)),
        "d_p_random_mean": float(np.mean(random_p)),
        "d_p_own_beats_random": mean_ci(wins),
        "d_p_own_beats_random_mean": mean_ci(pair_wins),
    }


def markdown(report: dict[str, Any]) -> str:
    m, s, a = report["machine"], report["scorer"], report["alignment"]
    header, rows = metric_table(a["metrics"])
    lines = [
        "# Cross-modal alignment on ml-latest-small posters",
        "",
        f"{report['date']}; {m['platform']}, {m['cpu_count']} CPUs, torch {report['torch']} "
        f"({report['torch_threads']} thread), python {m['python']}; 1-minute load average "
        f"{m['load_average_start']:.2f} at start, {m['load_average_end']:.2f} at end.",
        "",
        f"Image features `{a['image_encoder']}` ({a['image_dim']}-d posters), text features "
        f"`{a['text_encoder']}` ({a['text_dim']}-d; title, genres, tags). {a['pairs']} items "
        f"have both: {a['train']} train, {a['valid']} valid (early stopping on the valid "
        f"InfoNCE loss), {a['test']} test (reported once). Default `AlignmentConfig`: "
        f"{a['config_text']}. Trained {a['epochs_run']} epochs in {a['train_seconds']:.1f} s "
        f"and kept epoch {a['best_epoch']} (learned temperature {a['temperature']:.3f}).",
        "",
        "## Held-out retrieval",
        "",
        markdown_table(header, rows),
        "",
        "*ridge map*: ridge regression from standardised poster features to text features "
        "on the train items (penalty chosen on valid), compared by cosine with the actual "
        "text features, both centred on the train texts' mean. *untrained heads*: the "
        "same heads at their random initialisation: the unaligned space. Raw features "
        "cannot be compared at all (1280-d vs 384-d).",
        "",
        "## The aligned scorer on real (user, movie) pairs",
        "",
        f"{s['pairs']} random pairs (rating >= {LIKED}; {s['distinct_users']} users, "
        f"{s['distinct_movies']} distinct movies) whose movie is one of the {s['test_posters']} "
        f"test items; every poster shown is a test item's, embedded end to end by "
        f"`AlignedScorer` from the JPEG files ({s['poster_seconds']:.0f} s). "
        "d = (1 + cos) / 2. ± is a 95% normal interval over the pairs (approximate: pairs "
        "share movies and users).",
        "",
        "| check | result | chance |",
        "|---|---:|---:|",
        f"| real poster ranked first by d_t among {s['candidates']} | {_pct(s['d_t_top1'])} | 1% |",
        f"| real poster in the top 10 by d_t among {s['candidates']} | "
        f"{_pct(s['d_t_top10'])} | 10% |",
        f"| mean d_p, the user's own liked poster | {s['d_p_own_mean']:.4f} | |",
        f"| mean d_p, random posters the user has not liked | {s['d_p_random_mean']:.4f} | |",
        "| share of random posters with a lower d_p than the own one (mean over pairs) | "
        f"{_pct(s['d_p_own_beats_random'])} | 50% |",
        "| share of pairs where own d_p > the mean d_p of the random posters | "
        f"{_pct(s['d_p_own_beats_random_mean'])} | 50% |",
        "",
        "d_t text: `title. Genres: g1, g2, ...`. d_p text: the user's other liked movies "
        f"(the target left out), the {N_TITLES} most recent titles and the {N_GENRES} most "
        "frequent genres, in the same layout.",
        "",
    ]
    return "\n".join(lines)


def _pct(share: dict[str, float]) -> str:
    return f"{100 * share['value']:.1f}% ± {100 * share['ci95']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=default_cache_dir().parent / "embeddings")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair sample")
    parser.add_argument("--out", type=Path, help="also save the aligned space to this folder")
    data_root.add_argument(parser)
    args = parser.parse_args()
    root = data_root.data_root(args.data_root, "ml-latest-small", "ml-latest-small-posters")
    torch.set_num_threads(1)
    load_start = os.getloadavg()[0]
    ds = load_dataset(
        "ml-latest-small", root / "ml-latest-small", posters=root / "ml-latest-small-posters"
    )
    store = EmbeddingStore(args.store)
    image = encode_catalog(ds.catalog, create_encoder("image"), store)
    text = encode_catalog(ds.catalog, create_encoder("text"), store)

    config = AlignmentConfig()
    space = train_alignment(image, text, config)
    if args.out:
        space.save(args.out)
    scorer = scorer_bench(space, ds.catalog, ds.interactions.frame, args.pairs, args.seed)
    defaults = config.model_dump()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
        },
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "alignment": {
            "image_encoder": space.image_encoder,
            "text_encoder": space.text_encoder,
            "image_dim": space.image_dim,
            "text_dim": space.text_dim,
            "pairs": sum(len(p) for p in space.split.values()),
            **{part: len(ids) for part, ids in space.split.items()},
            "config": defaults,
            "config_text": ", ".join(f"{k}={v}" for k, v in defaults.items()),
            "epochs_run": len(space.log),
            "best_epoch": space.best_epoch,
            "temperature": space.temperature,
            "train_seconds": space.train_seconds,
            "n_test": space.n_test,
            "metrics": space.metrics,
        },
        "scorer": scorer,
    }
    write_text(RESULTS / "alignment.json", json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "alignment.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
