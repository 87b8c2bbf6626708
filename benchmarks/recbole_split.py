"""One split of a data set, written once for both toolkits of ``vs_recbole.py``.

tastemaker makes the split (``random_ratio`` 8:1:1 per user, seeded, with RecBole's
part sizes, for the general models; ``leave_one_out`` by time for the sequential ones)
and writes it twice: as a tastemaker Split folder (``split/``) and as RecBole's
pre-split atomic files (``<token>/<token>.{train,valid,test}.inter``, read through its
``benchmark_filename`` option). So both toolkits train, validate and test on the same
rows, and neither toolkit's own splitter or default data set settings play a part.

RecBole reads a sequential benchmark file as given (no augmentation of its own), so the
sequential files hold what its ``data_augmentation`` would have made: one row per
training target with the up to ``MAX_LEN`` items before it (``item_id_list``), and one
valid (test) row per user whose history is the train (train + valid) sequence.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tastemaker.data.dataset import Dataset, Split
from tastemaker.data.interactions import ITEM_ID, TIMESTAMP, USER_ID
from tastemaker.data.sources import load_atomic, load_movielens
from tastemaker.data.splits import leave_one_out, random_ratio

PROTOCOLS = ("ratio", "loo")
MAX_LEN = 50  # RecBole's MAX_ITEM_LIST_LENGTH default
PARTS = ("train", "valid", "test")
HEADER = {
    USER_ID: "user_id:token",
    "item_id_list": "item_id_list:token_seq",
    ITEM_ID: "item_id:token",
    TIMESTAMP: "timestamp:float",
}


def load(name: str, root: Path) -> Dataset:
    """``ml-100k`` (RecBole's atomic file) or ``ml-latest-small`` (CSVs) under ``root``."""
    folder = root / name
    return load_atomic(folder) if name == "ml-100k" else load_movielens(folder)


def make_split(data: Dataset, protocol: str, seed: int) -> Split:
    """The benchmark's split: ``ratio`` (8:1:1 per user, ``seed``) or ``loo``."""
    return (
        random_ratio(data, (0.8, 0.1, 0.1), seed=seed)
        if protocol == "ratio"
        else leave_one_out(data)
    )


def token(name: str, protocol: str, seed: int) -> str:
    """The RecBole data set name of an export (never a name RecBole ships settings for)."""
    return f"{name}-{protocol}-{seed}".replace(".", "_")


def export(name: str, root: Path, protocol: str, seed: int, out: Path) -> Path:
    """Write the split of data set ``name`` for both toolkits into ``out``; returns ``out``."""
    split = make_split(load(name, root), protocol, seed)
    split.save(out / "split")
    folder = out / token(name, protocol, seed)
    folder.mkdir(parents=True, exist_ok=True)
    frames = {p: split.part(p).frame.select(USER_ID, ITEM_ID, TIMESTAMP) for p in PARTS}
    if protocol == "loo":
        frames = sequential_rows(frames)
    for part, frame in frames.items():
        path = folder / f"{folder.name}.{part}.inter"
        frame.rename(HEADER, strict=False).write_csv(path, separator="\t")
    return out


def sequential_rows(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Each part as (user, the ≤ MAX_LEN items before the target, target, time) rows.

    Train targets are every training item but a user's first; a valid (test) target
    follows the user's whole train (train + valid) sequence, as in the Split."""
    known: dict[str, list[str]] = {}
    rows = {}
    for part in PARTS:
        records = []
        ordered = frames[part].with_row_index("_row").sort([USER_ID, TIMESTAMP, "_row"])
        for user, item, time in ordered.select(USER_ID, ITEM_ID, TIMESTAMP).iter_rows():
            sequence = known.setdefault(user, [])
            if sequence:
                records.append((user, " ".join(sequence[-MAX_LEN:]), item, time))
            if part == "train":
                sequence.append(item)
        if part != "train":  # the part's items join the history only after all its targets
            for user, item in ordered.select(USER_ID, ITEM_ID).iter_rows():
                known[user].append(item)
        rows[part] = pl.DataFrame(
            records, schema=[USER_ID, "item_id_list", ITEM_ID, TIMESTAMP], orient="row"
        )
    return rows
