"""Shared fixtures: tiny hand-made data sets and the real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest
import torch

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.data.manifest import Manifest

if TYPE_CHECKING:
    from .serve_data import ServeFolders

# Under pytest-xdist each worker gets one core: torch's default of one thread per
# core would oversubscribe the machine and make every test slower and noisier.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of a real data set under ../shared/data, or skip the test with the reason.

    A user's clone has no ../shared, so there the test skips; under ``CI=true`` the
    folder is promised, and a missing one fails the test: CI never passes by skipping.
    """
    path = SHARED_DATA / name
    if not path.exists():
        reason = f"real data set {name} is not present (it lives in ../shared/data/{name})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true promises it", pytrace=False)
        pytest.skip(reason)
    return path


def most_active(ds: Dataset, n_users: int) -> Dataset:
    """``ds`` restricted to its ``n_users`` most active users (ties by user ID)."""
    ratings = ds.interactions.frame
    active = (
        ratings.group_by("user_id")
        .len()
        .sort(["len", "user_id"], descending=[True, False])
        .head(n_users)["user_id"]
    )
    return ds.replace(interactions=ratings.filter(pl.col("user_id").is_in(active.implode())))


def make_dataset(rows: list[tuple[str, str, float, int]], n_items: int | None = None) -> Dataset:
    """A Dataset from (user, item, rating, timestamp) rows; items named i0..i{n-1}."""
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    ids = sorted(set(frame["item_id"])) if n_items is None else [f"i{k}" for k in range(n_items)]
    catalog = Catalog(pl.DataFrame({"item_id": ids, "title": [f"Title {i}" for i in ids]}))
    return Dataset(catalog, Interactions(frame), Manifest(name="toy"))


@pytest.fixture
def toy() -> Dataset:
    """Three users with 5, 3 and 1 interactions over six items, timestamps increasing."""
    rows = [
        ("u1", "i0", 5.0, 10), ("u1", "i1", 4.0, 20), ("u1", "i2", 2.0, 30),
        ("u1", "i3", 5.0, 40), ("u1", "i4", 3.0, 50),
        ("u2", "i0", 4.0, 15), ("u2", "i2", 5.0, 25), ("u2", "i5", 1.0, 35),
        ("u3", "i1", 5.0, 12),
    ]  # fmt: skip
    return make_dataset(rows, n_items=6)


@pytest.fixture(scope="session")
def serve_folders(tmp_path_factory: pytest.TempPathFactory) -> ServeFolders:
    """A tiny Split and saved most_popular / bpr / sasrec models for the service's tests."""
    from .serve_data import build_serve_folders

    return build_serve_folders(tmp_path_factory.mktemp("serve"))
