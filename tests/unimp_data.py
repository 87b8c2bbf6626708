"""A tiny data set for UniMP's tests: five users with eight time-ordered ratings each
over a small catalog of titled movies (odd items action, even items comedy)."""

from __future__ import annotations

import polars as pl

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.data.manifest import Manifest


def tiny_dataset(n_items: int, prefix: str = "i") -> Dataset:
    """Item IDs ``{prefix}0..``; user u's t-th rating is item (3u + t) mod n_items."""
    ids = [f"{prefix}{k}" for k in range(n_items)]
    catalog = Catalog(
        pl.DataFrame(
            {
                "item_id": ids,
                "title": [f"movie {k}" for k in range(n_items)],
                "genres": [["action"] if k % 2 else ["comedy"] for k in range(n_items)],
            }
        )
    )
    rows = [(f"u{u}", f"{prefix}{(3 * u + t) % n_items}", float(1 + (u + t) % 5), 10 * t)
            for u in range(5) for t in range(8)]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset(catalog, Interactions(frame), Manifest(name="tiny"))
