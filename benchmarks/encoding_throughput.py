"""Items per second of the item encoders: through the embedding store vs the raw model.

Run with ``.venv/bin/python benchmarks/encoding_throughput.py`` (``--help`` for sizes).
Text: ml-latest-small movies (title, genres, tags) by all-MiniLM-L6-v2; images:
real posters from ``$TASTEMAKER_DATA/ml-latest-small-posters`` by EfficientNet-Lite0.
Each repeat times, on consecutive parts of the items and in alternating order,
(a) the model called directly on the same inputs (``SentenceTransformer.encode``
on the rendered texts; a plain read-preprocess-forward loop over the poster
files) and (b) ``encode_catalog`` into a fresh :class:`EmbeddingStore`; then (c)
the whole catalog again, served from the cache. Both paths must give the same
vectors (asserted). Medians over repeats go to
``benchmarks/results/encoding_throughput.{md,json}`` with the load average: the
machine's 2 cores are shared, so wall times carry that noise; process CPU seconds
and the store's own time are recorded beside them.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch

import data_root
from tastemaker.atomic import write_text
from tastemaker.data.catalog import Catalog
from tastemaker.data.sources import load_dataset
from tastemaker.encoders import EmbeddingStore, Encoder, ImageEncoder, TextEncoder, encode_catalog

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("sentence-transformers", "transformers", "pillow", "efficientnet-lite-pytorch")


def timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    """``run()``'s result, wall seconds and process CPU seconds (all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def time_embed(encoder: Encoder) -> list[float]:
    """Count the seconds ``encoder`` spends in :meth:`Encoder.embed` (reading + model)."""
    spent = [0.0]
    inner = encoder.embed

    def embed(batch: Any) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        try:
            return inner(batch)
        finally:
            spent[0] += time.perf_counter() - start

    encoder.embed = embed  # type: ignore[method-assign]
    return spent


def split(catalog: Catalog, slices: int) -> list[Catalog]:
    """``catalog`` in ``slices`` consecutive parts."""
    ids = catalog.frame["item_id"].to_list()
    step = math.ceil(len(ids) / slices)
    return [catalog.subset(ids[lo : lo + step]) for lo in range(0, len(ids), step)]


def compare(
    catalog: Catalog,
    parts: list[Catalog],
    encoder: Encoder,
    direct: Callable[[int], np.ndarray],
    repeats: int,
) -> dict[str, Any]:
    """Direct calls vs the store, alternating part by part; then the cached rerun.

    Each repeat runs, part after part, the direct call (``direct(index)``) and
    ``encode_catalog`` into the repeat's fresh store, back to back in alternating
    order: both paths see nearly the same load from other work, which changes
    within seconds here. The store's own time (a run less the time inside
    ``Encoder.embed``, which does what the direct path does) measures its
    bookkeeping with little of that noise.
    """
    keys = ("direct", "store", "cached", "direct_cpu", "store_cpu", "store_own")
    runs: dict[str, list[float]] = {k: [] for k in keys}
    spent = time_embed(encoder)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            store = EmbeddingStore(Path(tmp) / f"run-{repeat}")
            total = dict.fromkeys(keys, 0.0)
            for index, part in enumerate(parts):
                paths = {
                    "direct": functools.partial(direct, index),
                    "store": functools.partial(
                        encode_catalog, part, encoder, store, progress=False
                    ),
                }
                order = ("direct", "store") if (repeat + index) % 2 == 0 else ("store", "direct")
                results = {}
                for name in order:
                    before = spent[0]
                    results[name], wall, cpu = timed(paths[name])
                    total[name] += wall
                    total[f"{name}_cpu"] += cpu
                    if name == "store":
                        total["store_own"] += wall - (spent[0] - before)
                got = results["store"]
                assert got.mask.all(), "every benchmark item has content"
                worst = max(worst, float(np.abs(got.vectors - results["direct"]).max()))
            full = functools.partial(encode_catalog, catalog, encoder, store, progress=False)
            _, total["cached"], _ = timed(full)
            assert store.last_stats is not None and store.last_stats.encoded == 0
            assert store.last_stats.cached == len(catalog), "the second run encodes nothing"
            for key in keys:
                runs[key].append(total[key])

    n = len(catalog)
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "items": n,
        "slices": len(parts),
        "encoder_id": encoder.encoder_id,
        "dim": encoder.dim,
        "batch_size": encoder.config.batch_size,
        "direct_seconds": med["direct"],
        "store_seconds": med["store"],
        "cached_seconds": med["cached"],
        "direct_items_per_s": n / med["direct"],
        "store_items_per_s": n / med["store"],
        "overhead": ratio(runs["store"], runs["direct"]) - 1,
        "cpu_overhead": ratio(runs["store_cpu"], runs["direct_cpu"]) - 1,
        "own_overhead": ratio(runs["store_own"], runs["direct"]),
        "cached_speedup": med["store"] / med["cached"],
        "max_abs_difference": worst,
        "runs": runs,
    }


def ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over repeats of numerator / denominator."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def text_bench(movies: Catalog, n: int, repeats: int, slices: int) -> dict[str, Any]:
    catalog = movies.subset(movies.frame["item_id"].head(n).to_list())
    encoder = TextEncoder()
    model = encoder.backend.model  # the loaded SentenceTransformer, shared by both paths
    parts = split(catalog, slices)
    texts = [encoder.inputs(part) for part in parts]  # rendered before timing, for free

    def direct(index: int) -> np.ndarray:
        return model.encode(
            texts[index],
            batch_size=encoder.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    example = texts[0][0]
    return {"example_text": example, **compare(catalog, parts, encoder, direct, repeats)}


def image_bench(
    movies: Catalog, posters: Path, n: int, repeats: int, slices: int
) -> dict[str, Any]:
    from PIL import Image

    with_posters = movies.with_images(posters)
    ids = with_posters.frame.filter(with_posters.frame["image"].is_not_null())["item_id"]
    catalog = with_posters.subset(ids.head(n).to_list())
    encoder = ImageEncoder()
    net, prep = encoder.backend.net, encoder.backend.preprocessing
    size = encoder.config.batch_size
    need = math.ceil(prep.size / prep.crop_fraction)

    parts = split(catalog, slices)
    images = [part.frame["image"].to_list() for part in parts]

    def direct(index: int) -> np.ndarray:
        paths = images[index]
        out = []
        for lo in range(0, len(paths), size):
            pixels = []
            for path in paths[lo : lo + size]:
                with Image.open(path) as image:
                    image.draft("RGB", (need, need))
                    pixels.append(prep.pixels(image.convert("RGB")))
            with torch.inference_mode():
                out.append(net.extract_features(prep.tensor(pixels)).mean(dim=(2, 3)).numpy())
        return np.concatenate(out)

    return compare(catalog, parts, encoder, direct, repeats)


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    rows = [
        f"| {name} | {r['encoder_id']} ({r['dim']}-d) | {r['items']} | "
        f"{r['direct_items_per_s']:.1f} | {r['store_items_per_s']:.1f} | "
        f"{r['overhead']:+.1%} | {r['cpu_overhead']:+.1%} | {r['own_overhead']:+.2%} | "
        f"{r['cached_seconds']:.2f} s | "
        f"{r['cached_speedup']:.0f}x |"
        for name, r in report["results"].items()
    ]
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    return "\n".join(
        [
            "# Encoding throughput: embedding store vs the raw model",
            "",
            f"{report['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"torch {report['torch']} ({report['torch_threads']} threads), python "
            f"{machine['python']}; {versions}. 1-minute load average "
            f"{machine['load_average_start']:.2f} at start, {machine['load_average_end']:.2f} "
            "at end: the 2 cores were shared with other work, which lowers every number "
            "here (unevenly from run to run).",
            "",
            f"Median of {report['repeats']} repeats; each repeat alternates the two paths "
            f"over {report['slices']} consecutive parts of the items, back to back. *direct*: "
            "the model called on the same inputs (SentenceTransformer.encode on the rendered "
            "texts; a read-preprocess-forward loop over the poster files). *store*: "
            "`encode_catalog` into a fresh EmbeddingStore (template rendering, content "
            "hashing, batching, Parquet commits included). *overhead*: store / direct - 1, "
            "in wall time and in process CPU time (both noisy under shared load); *own*: "
            "the store's time outside `Encoder.embed` (which does the direct path's work) "
            "over the direct time: its bookkeeping alone. *cached run*: the whole catalog "
            "again, which encodes nothing. Both paths give the same vectors (max abs "
            "difference "
            + ", ".join(f"{r['max_abs_difference']:.1e}" for r in report["results"].values())
            + ").",
            "",
            "| modality | model | items | direct items/s | store items/s | overhead (wall) "
            "| overhead (CPU) | own | cached run | cached speedup |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-items", type=int, default=2000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=5, help="alternation steps per repeat")
    data_root.add_argument(parser)
    args = parser.parse_args()
    root = data_root.data_root(args.data_root, "ml-latest-small")
    posters = root / "ml-latest-small-posters"
    load_start = os.getloadavg()[0]
    movies = load_dataset("ml-latest-small", root / "ml-latest-small").catalog
    results = {"text": text_bench(movies, args.text_items, args.repeats, args.slices)}
    if posters.is_dir() and args.images:
        results["image"] = image_bench(movies, posters, args.images, args.repeats, args.slices)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
        },
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "versions": {name: version(name) for name in PACKAGES},
        "repeats": args.repeats,
        "slices": args.slices,
        "results": results,
    }
    write_text(RESULTS / "encoding_throughput.json", json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "encoding_throughput.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
