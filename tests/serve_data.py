"""A tiny data folder and model folder for the service's tests (built in seconds).

Planted taste groups (as tests/test_fold_in_mf.py): users of group g interact with
items of group g, whose genre is ``G<g>``; every item has a title and tags, and every
third item a poster (a tiny PNG), so search, explanations and images have something
real to find.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import random_ratio
from tastemaker.models.registry import get_model_class

GROUPS, ITEMS_PER_GROUP, USERS_PER_GROUP = 3, 12, 10
WORDS = ("space", "river", "castle")
COLD_ITEM = f"i{GROUPS * ITEMS_PER_GROUP}"  # in the catalog (a river item), never interacted with
MODELS = {
    "most_popular": {},
    "bpr": {"epochs": 30, "factors": 8, "batch_size": 128},
    "sasrec": {"epochs": 3, "hidden_size": 8, "inner_size": 16, "n_layers": 1, "max_len": 10},
}


@dataclass(frozen=True)
class ServeFolders:
    data: Path
    models: Path
    root: Path


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, seconds: float, log: Callable[[], str]
) -> None:
    """Poll ``url``/ready until it answers 200; fail with the server's ``log()`` if the
    process exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited: {log()}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server was not ready in {seconds:.0f} s: {log()}")


def group_of(item: str) -> int:
    return int(item[1:]) // ITEMS_PER_GROUP


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def build_dataset(posters: Path) -> Dataset:
    rng = np.random.default_rng(0)
    posters.mkdir(parents=True, exist_ok=True)
    n_items = GROUPS * ITEMS_PER_GROUP
    images = []
    for i in range(n_items):
        path = posters / f"i{i}.png"
        if i % 3 == 0:
            path.write_bytes(png())
        images.append(str(path) if i % 3 == 0 else None)
    catalog = Catalog(
        pl.DataFrame(
            {
                "item_id": [f"i{i}" for i in range(n_items)] + [COLD_ITEM],
                "title": [f"The {WORDS[i // ITEMS_PER_GROUP]} story {i}" for i in range(n_items)]
                + ["A river at night"],
                "image": [*images, None],
                "genres": [[f"G{i // ITEMS_PER_GROUP}"] for i in range(n_items)] + [["G1"]],
                "tags": [[WORDS[i // ITEMS_PER_GROUP], f"tag{i % 4}"] for i in range(n_items)]
                + [["river"]],
            }
        )
    )
    rows = []
    for g in range(GROUPS):
        for u in range(USERS_PER_GROUP):
            own = rng.choice(ITEMS_PER_GROUP, size=8, replace=False) + g * ITEMS_PER_GROUP
            rows += [(f"u{g}_{u}", f"i{i}", 4.0, 100 * t + u) for t, i in enumerate(own)]
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset(catalog, Interactions(frame), Manifest(name="serve-toy"))


def build_serve_folders(root: Path) -> ServeFolders:
    """``root/split`` (a Split) and ``root/models/<name>`` for :data:`MODELS`."""
    torch.set_num_threads(1)
    split = random_ratio(build_dataset(root / "posters"), ratios=(0.8, 0.1, 0.1), seed=0)
    split.save(root / "split")
    for name, params in MODELS.items():
        model = get_model_class(name)(**params, seed=0) if params else get_model_class(name)()
        model.fit(split.train, split.valid).save(root / "models" / name)
    return ServeFolders(root / "split", root / "models", root)
