"""The embedded default data set: MovieLens ml-latest-small, shipped inside the package.

So that ``tastemaker`` works offline on first use. The raw tables are stored as
zstd Parquet in ``bundled/`` (about 1 MB) and go through the very same code as
the CSV files, so the result equals :func:`load_movielens` on the original
folder. Regenerate with ``tools/build_bundled.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tastemaker.data.dataset import Dataset
from tastemaker.data.sources.movielens import csv_layout_dataset
from tastemaker.errors import DataError

BUNDLE_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLE_NAME = "ml-latest-small"
#: Written beside the Parquet files: sha256 of the original CSV files.
SOURCE_JSON = "source.json"


def load_bundled(posters: Path | None = None, *, drop_invalid: bool = False) -> Dataset:
    """The embedded ml-latest-small; ``posters`` is a folder of ``<movieId>.jpg`` (not shipped).

    ``drop_invalid`` is accepted like every loader's (the bundle holds no invalid rows).
    """
    try:
        meta = json.loads((BUNDLE_DIR / SOURCE_JSON).read_text(encoding="utf-8"))
        frames = {t: pl.read_parquet(BUNDLE_DIR / f"{t}.parquet") for t in meta["tables"]}
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
        raise DataError(
            f"the embedded data set in {BUNDLE_DIR} is missing or damaged ({exc})",
            "reinstall tastemaker, or regenerate it with tools/build_bundled.py",
        ) from exc
    source = {
        "kind": "movielens",
        "variant": BUNDLE_NAME,
        "layout": "csv",
        "location": "embedded",
    }
    return csv_layout_dataset(
        frames, BUNDLE_NAME, source, meta["source_files"], posters, drop_invalid=drop_invalid
    )
