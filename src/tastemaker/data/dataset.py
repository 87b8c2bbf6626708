"""Data set folders: a Catalog and Interactions (or a train/valid/test Split) on disk.

Layout of a folder (written atomically)::

    items.parquet          the Catalog
    interactions.parquet   a Dataset's interactions      (Dataset)
    train/valid/test.parquet  the three parts             (Split)
    manifest.json          source, checksums, steps, counts, split seed and hashes
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.atomic import atomic_path, write_text
from tastemaker.data.catalog import ITEM_ID, Catalog
from tastemaker.data.interactions import USER_ID, Interactions, content_hash, normalise_frame
from tastemaker.data.manifest import Manifest, SplitInfo
from tastemaker.data.vocab import Vocab
from tastemaker.errors import DataError
from tastemaker.reporting.values import plural

PARTS = ("train", "valid", "test")


def read_parquet(path: Path) -> pl.DataFrame:
    """Read a Parquet file, turning a missing or corrupt file into a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing", "re-create the folder with `tastemaker data prepare`")
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"{path} is not a readable Parquet file (truncated or corrupt: {exc})",
            "re-create the folder with `tastemaker data prepare`",
        ) from exc


def _check_items_known(catalog: Catalog, interactions: pl.DataFrame, what: str) -> None:
    """Every interaction's item is in the catalog; a DataError names some that are not.
    A set lookup per row proves it (several times cheaper than the join that finds
    the unknown rows, which runs only when one exists)."""
    known = catalog.frame[ITEM_ID].implode()
    if interactions[ITEM_ID].is_in(known).all(ignore_nulls=False):
        return
    unknown = interactions.join(catalog.frame.select(ITEM_ID), on=ITEM_ID, how="anti")
    if unknown.height:
        ids = unknown[ITEM_ID].unique().head(3).to_list()
        raise DataError(
            f"{plural(unknown.height, f'{what} row')} with an item missing from the item "
            f"table (e.g. {', '.join(ids)})",
            "add those items to the item table or drop their interactions",
        )


class Dataset:
    """A catalog and all its interactions: the unit loaders return."""

    def __init__(self, catalog: Catalog, interactions: Interactions, manifest: Manifest) -> None:
        try:  # bound by their indices: no row is read, checked or encoded again
            bound = interactions.on_users().on_items(catalog.vocab)
        except DataError:
            _check_items_known(catalog, interactions.frame, "interaction")  # names them
            raise
        self.catalog = catalog
        self.interactions = bound
        self.manifest = manifest.model_copy(update={"counts": self.counts()})

    def __repr__(self) -> str:
        return f"Dataset({self.manifest.name!r}, {self.catalog!r}, {self.interactions!r})"

    def counts(self) -> dict[str, int]:
        return {
            "interactions": len(self.interactions),
            "users": self.interactions.n_active_users,
            "items": len(self.catalog),
            "interacted_items": self.interactions.n_active_items,
            "items_with_image": self.catalog.n_images,
        }

    def replace(
        self,
        *,
        interactions: pl.DataFrame | None = None,
        catalog: Catalog | None = None,
        manifest: Manifest | None = None,
    ) -> Dataset:
        """A new Dataset with some parts swapped (used by preprocessing steps)."""
        return Dataset(
            catalog or self.catalog,
            Interactions(self.interactions.frame if interactions is None else interactions),
            manifest or self.manifest,
        )

    def derived(
        self, interactions: Interactions, catalog: Catalog | None, manifest: Manifest
    ) -> Dataset:
        """A Dataset of rows taken from this one (:meth:`Interactions.subset`, bound to
        ``catalog``'s vocabulary): they were checked when this one was made, so nothing
        is read, checked or encoded again (what keeps a 20M-row preparation linear)."""
        catalog = catalog or self.catalog
        if interactions.items != catalog.vocab:
            raise DataError(
                "derived interactions use another item vocabulary than the catalog",
                "take them with Interactions.subset(keep, catalog.vocab)",
            )
        derived = object.__new__(Dataset)
        derived.catalog, derived.interactions = catalog, interactions
        derived.manifest = manifest.model_copy(update={"counts": derived.counts()})
        return derived

    def save(self, path: Path) -> Path:
        return _write_folder(path, self.catalog, {"interactions": self.interactions}, self.manifest)

    @classmethod
    def load(cls, path: Path) -> Dataset:
        path = _existing_folder(path)
        manifest = Manifest.read(path / "manifest.json")
        if manifest.split is not None:
            raise DataError(
                f"{path} holds a split, not a whole data set", "load it with Split.load"
            )
        catalog = Catalog(read_parquet(path / "items.parquet"))
        return cls(catalog, Interactions(read_parquet(path / "interactions.parquet")), manifest)


class Split:
    """Train, validation and test interactions over one catalog and one user vocabulary."""

    def __init__(
        self,
        catalog: Catalog,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        manifest: Manifest,
    ) -> None:
        frames = {p: normalise_frame(f) for p, f in zip(PARTS, (train, valid, test), strict=True)}
        for name, frame in frames.items():
            _check_items_known(catalog, frame, name)
        users = Vocab(
            pl.concat([f.select(USER_ID) for f in frames.values()])[USER_ID].unique().sort(),
            kind="user",
        )
        self.catalog = catalog
        self.train, self.valid, self.test = (
            Interactions(frames[p], users, catalog.vocab) for p in PARTS
        )
        if manifest.split is None:
            raise DataError("a split needs split information in its manifest", "use data.splits")
        self.info: SplitInfo = manifest.split
        self.manifest = manifest.model_copy(update={"counts": self.counts()})

    def __repr__(self) -> str:
        return (
            f"Split({self.info.kind}: "
            f"train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)}, "
            f"hash={self.content_hash[:12]})"
        )

    @property
    def users(self) -> Vocab:
        return self.train.users

    @property
    def items(self) -> Vocab:
        return self.catalog.vocab

    @property
    def content_hash(self) -> str:
        return self.info.content_hash

    def part(self, name: str) -> Interactions:
        if name not in PARTS:
            raise DataError(f"unknown split part '{name}'", f"use one of {', '.join(PARTS)}")
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "items": len(self.items),
            **{p: len(self.part(p)) for p in PARTS},
        }

    @classmethod
    def derived(cls, catalog: Catalog, parts: dict[str, Interactions], manifest: Manifest) -> Split:
        """A Split of parts taken from one Dataset's rows (:meth:`Interactions.take`):
        checked when that Dataset was made, so nothing is read, checked or encoded again.
        Their user vocabulary must be the sorted users of all parts, as :meth:`load`
        rebuilds it, so that index ``u`` is one user before and after a save."""
        first = parts["train"]
        if any(p.users is not first.users or p.items != catalog.vocab for p in parts.values()):
            raise DataError(
                "the parts of a split must share one user vocabulary and the catalog's",
                "take them from one Dataset with Interactions.take",
            )
        if manifest.split is None:
            raise DataError("a split needs split information in its manifest", "use data.splits")
        split = object.__new__(cls)
        split.catalog, split.info = catalog, manifest.split
        split.train, split.valid, split.test = (parts[p] for p in PARTS)
        split.manifest = manifest.model_copy(update={"counts": split.counts()})
        return split

    def save(self, path: Path) -> Path:
        return _write_folder(path, self.catalog, {p: self.part(p) for p in PARTS}, self.manifest)

    @classmethod
    def load(cls, path: Path) -> Split:
        """Read a split folder, each part checked against its manifest: a part file whose
        bytes are those written is proved by one pass of SHA-256 over the file; any
        other (edited, replaced, or rewritten with other settings) is hashed by content."""
        path = _existing_folder(path)
        manifest = Manifest.read(path / "manifest.json")
        if manifest.split is None:
            raise DataError(
                f"{path} holds a whole data set, not a split",
                "make a split with `tastemaker data prepare --split ...`",
            )
        catalog = Catalog(read_parquet(path / "items.parquet"))
        parts = {p: read_parquet(path / f"{p}.parquet") for p in PARTS}
        for name, frame in parts.items():
            file = path / f"{name}.parquet"
            if manifest.split.part_files.get(name) == file_sha256(file):
                continue
            if content_hash(frame) != manifest.split.part_hashes.get(name):
                raise DataError(
                    f"{file} does not match the hash in its manifest "
                    "(edited or replaced since it was written)",
                    "re-create the split with `tastemaker data prepare`",
                )
        split = cls(catalog, *parts.values(), manifest=manifest)
        for name in PARTS:  # each proved above, so a fit need not hash it again
            split.part(name).adopt_content_hash(manifest.split.part_hashes[name])
        return split


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed (a 20M-row part is a few hundred MB)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def split_info(
    kind: str,
    seed: int | None,
    params: dict[str, Any],
    parts: dict[str, Interactions] | dict[str, pl.DataFrame],
) -> SplitInfo:
    """Hashes of each part and of the whole, recorded in the manifest."""
    part_hashes = {
        name: part.content_hash() if isinstance(part, Interactions) else content_hash(part)
        for name, part in ((p, parts[p]) for p in PARTS)
    }
    whole = hashlib.sha256("".join(part_hashes[p] for p in PARTS).encode()).hexdigest()
    return SplitInfo(
        kind=kind, seed=seed, params=params, content_hash=whole, part_hashes=part_hashes
    )


def _write_folder(
    path: Path, catalog: Catalog, tables: dict[str, Interactions], manifest: Manifest
) -> Path:
    """Write items, interaction tables and the manifest as one atomic folder."""
    with atomic_path(Path(path), directory=True) as tmp:
        catalog.frame.write_parquet(tmp / "items.parquet", compression="zstd")
        for name, table in tables.items():
            table.frame.write_parquet(tmp / f"{name}.parquet", compression="zstd")
        if manifest.split is not None:  # what lets Split.load skip the content hashes
            files = {name: file_sha256(tmp / f"{name}.parquet") for name in tables}
            split = manifest.split.model_copy(update={"part_files": files})
            manifest = manifest.model_copy(update={"split": split})
        write_text(tmp / "manifest.json", manifest.to_json())
    return Path(path)


def _existing_folder(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"data folder {path} does not exist",
            "run `tastemaker data prepare --out <folder>` first, or pass the right --data",
        )
    return path
