"""Regenerate the embedded ml-latest-small from its original CSV folder.

    python tools/build_bundled.py ../shared/data/ml-latest-small

Writes ``src/tastemaker/data/sources/bundled/`` in one atomic step: the raw
tables as zstd Parquet, ``source.json`` (sha256 of the original CSV files),
the GroupLens ``README.txt`` (its terms require shipping it) and ``SOURCE.md``.
It then checks that the bundle loads to exactly the Dataset the CSV files give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tastemaker.atomic import atomic_path, write_bytes, write_text
from tastemaker.data.sources._common import hash_files
from tastemaker.data.sources.embedded import BUNDLE_DIR, SOURCE_JSON, load_bundled
from tastemaker.data.sources.movielens import CSV_TABLES, load_movielens, read_csv_layout
from tastemaker.errors import DataError

SOURCE_MD = """\
# Embedded data set: MovieLens ml-latest-small

The ratings, movies, tags and links of GroupLens' *MovieLens Latest Small*
(generated 2018-09-26; 100,836 ratings by 610 users on 9,742 movies), from
https://files.grouplens.org/datasets/movielens/ml-latest-small.zip.

Stored as zstd Parquet with the columns tastemaker reads; `source.json` records
the sha256 of the original CSV files. `README.txt` is GroupLens' own, shipped as
its terms require: research use only, no commercial use, cite Harper & Konstan
(2015). Movie posters are **not** shipped; pass a folder of `<movieId>.jpg` files
as `posters=` to attach them.

Regenerate with `python tools/build_bundled.py <ml-latest-small folder>`.
"""


def build(folder: Path, out: Path = BUNDLE_DIR) -> dict[str, int]:
    """Write the bundle from ``folder``; return the size in bytes of each file."""
    folder = Path(folder)
    frames = read_csv_layout(folder)
    missing = [f"{t}.csv" for t in CSV_TABLES if t not in frames]
    if missing or not (folder / "README.txt").is_file():
        raise DataError(
            f"{folder} lacks {', '.join(missing) or 'README.txt'}",
            "pass the complete unzipped ml-latest-small folder",
        )
    meta = {
        "tables": list(frames),
        "source_files": hash_files(folder / f"{t}.csv" for t in frames),
    }
    with atomic_path(out, directory=True) as tmp:
        for table, frame in frames.items():
            frame.write_parquet(tmp / f"{table}.parquet", compression="zstd", compression_level=22)
        write_text(tmp / SOURCE_JSON, json.dumps(meta, indent=2) + "\n")
        write_bytes(tmp / "README.txt", (folder / "README.txt").read_bytes())
        write_text(tmp / "SOURCE.md", SOURCE_MD)
    return {p.name: p.stat().st_size for p in sorted(out.iterdir())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the unzipped ml-latest-small folder")
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR, help="bundle folder to write")
    args = parser.parse_args(argv)
    sizes = build(args.folder, args.out)
    for name, size in sizes.items():
        print(f"{size:>10,}  {name}")
    print(f"{sum(sizes.values()):>10,}  total")
    if args.out == BUNDLE_DIR:
        bundled, original = load_bundled(), load_movielens(args.folder)
        same = (
            bundled.interactions.content_hash() == original.interactions.content_hash()
            and bundled.catalog.frame.equals(original.catalog.frame)
            and bundled.manifest.source_files == original.manifest.source_files
        )
        print("bundle equals the CSV folder:", same)
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
