"""On-disk cache of item vectors, keyed by encoder and by each item's content hash.

``root/<encoder id>-<modality>-<hash of the encoder's signature>/`` holds
``meta.json`` and Parquet shards of (content key, vector) rows. Extraction
encodes only keys no shard has, and commits a shard (atomically) every
``commit_every`` items and when it stops for any reason, so an interrupted run
resumes where it stopped, a second run encodes nothing, and a changed item is
re-encoded alone. Items that failed (unreadable image) are not stored: the next
run retries them. The signature holds the versions of the packages that compute
the vectors and the hash of packaged weights (``Encoder.provenance``), so an
upgrade gets a new folder instead of stale vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tastemaker.atomic import atomic_path, write_text
from tastemaker.data.catalog import Catalog
from tastemaker.encoders.base import (
    NO_CONTENT,
    Encoder,
    EncodeStats,
    ItemEmbeddings,
    log,
    run_batches,
)
from tastemaker.errors import DataError

META_FILE = "meta.json"
SHARD_PREFIX = "shard-"
STORE_FORMAT = 1


class EmbeddingStore:
    """A folder of cached item vectors, shared by every encoder (one subfolder each)."""

    def __init__(self, root: Path, *, commit_every: int = 1024) -> None:
        if commit_every < 1:
            raise ValueError("commit_every must be at least 1")
        self.root = Path(root).expanduser()
        self.commit_every = commit_every
        self.last_stats: EncodeStats | None = None

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r})"

    def folder(self, encoder: Encoder) -> Path:
        """The subfolder of ``encoder``: its id (made safe for a file name) and signature hash."""
        signature = json.dumps(encoder.signature(), sort_keys=True)
        digest = hashlib.sha256(signature.encode("utf-8")).hexdigest()[:12]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.encoder_id).strip("._-")[-60:]
        return self.root / f"{slug or 'encoder'}-{encoder.modality}-{digest}"

    def read(self, encoder: Encoder) -> tuple[pl.Series, np.ndarray | None]:
        """Every stored (key, vector) of ``encoder``; a key stored twice has one vector."""
        folder = self.folder(encoder)
        shards = sorted(folder.glob(f"{SHARD_PREFIX}*.parquet"))
        if not shards:
            return pl.Series("key", [], dtype=pl.Utf8), None
        keys, vectors = zip(*(_read_shard(path) for path in shards), strict=True)
        dims = {v.shape[1] for v in vectors}
        if len(dims) > 1:
            raise DataError(
                f"embedding store {folder} mixes vector widths {sorted(dims)}",
                f"delete {folder}; its items are encoded again on the next run",
            )
        return pl.concat(keys), np.concatenate(vectors)

    def get_or_encode(
        self,
        catalog: Catalog,
        encoder: Encoder,
        *,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> ItemEmbeddings:
        """Vectors for every item of ``catalog`` (catalog order), encoding only uncached ones."""
        stats = EncodeStats()
        inputs = encoder.inputs(catalog)
        keys = pl.Series("key", encoder.keys(inputs), dtype=pl.Utf8)
        stats.items = len(keys)
        stored_keys, stored = self.read(encoder)
        present = (keys != NO_CONTENT).to_numpy()
        cached = keys.is_in(stored_keys.implode()).to_numpy() & present
        stats.missing = int((~present).sum())
        stats.cached = int(cached.sum())
        todo = np.flatnonzero(present & ~cached)
        _, first = np.unique(keys.gather(todo).to_numpy(), return_index=True)
        todo = np.sort(todo[first])  # items with identical content are encoded once

        new_keys: list[str] = []
        new_vectors: list[np.ndarray] = []
        pending: tuple[list[str], list[np.ndarray]] = ([], [])
        try:
            for rows, vectors, ok in run_batches(
                encoder, inputs, todo, stats, batch_size, progress
            ):
                pending[0].extend(keys.gather(rows[ok]).to_list())
                pending[1].append(vectors[ok])
                if len(pending[0]) >= self.commit_every:
                    self._commit(encoder, *pending, new_keys, new_vectors)
                    pending = ([], [])
        finally:  # keep what was finished, whatever stopped the run
            if pending[0]:
                self._commit(encoder, *pending, new_keys, new_vectors)

        all_keys = pl.concat([stored_keys, pl.Series("key", new_keys, dtype=pl.Utf8)])
        parts = ([stored] if stored is not None else []) + new_vectors
        dim = parts[0].shape[1] if parts else self._dim(encoder)
        table = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        lookup = pl.DataFrame({"key": all_keys, "row": np.arange(len(all_keys))}).unique(
            "key", keep="last"
        )
        row = keys.to_frame().join(lookup, on="key", how="left", maintain_order="left")["row"]
        mask = row.is_not_null().to_numpy() & present
        vectors = np.zeros((len(keys), dim), dtype=np.float32)
        vectors[mask] = table[row.to_numpy()[mask].astype(np.int64)]
        self.last_stats = stats.finish()
        log.info(
            "%s: %d items, %d cached, %d encoded, %d failed, %d without %s (%.1f s)",
            encoder.encoder_id,
            stats.items,
            stats.cached,
            stats.encoded,
            stats.failed,
            stats.missing,
            encoder.modality,
            stats.seconds,
        )
        return encoder.embeddings(catalog, vectors, mask)

    def _dim(self, encoder: Encoder) -> int:
        """The width recorded for ``encoder``, else the model's (which loads it)."""
        meta = self.folder(encoder) / META_FILE
        if meta.is_file():
            return int(json.loads(meta.read_text(encoding="utf-8"))["dim"])
        return encoder.dim

    def _commit(
        self,
        encoder: Encoder,
        keys: list[str],
        vectors: list[np.ndarray],
        new_keys: list[str],
        new_vectors: list[np.ndarray],
    ) -> None:
        """Write one shard atomically and record it in ``new_keys``/``new_vectors``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        block = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)
        folder = self.folder(encoder)
        if not (folder / META_FILE).is_file():
            write_text(
                folder / META_FILE, json.dumps(self._meta(encoder, block.shape[1]), indent=2)
            )
        flat = pa.array(block.reshape(-1))
        table = pa.table(
            {
                "key": pa.array(keys, type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, block.shape[1]),
            }
        )
        name = f"{SHARD_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp)
        new_keys.extend(keys)
        new_vectors.append(block)

    @staticmethod
    def _meta(encoder: Encoder, dim: int) -> dict[str, Any]:
        return {
            "format": STORE_FORMAT,
            "encoder_id": encoder.encoder_id,
            "modality": encoder.modality,
            "dim": dim,
            "signature": encoder.signature(),
        }


def _read_shard(path: Path) -> tuple[pl.Series, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        column = table.column("vector").combine_chunks()
        dim = column.type.list_size
        keys = pl.Series("key", table.column("key").combine_chunks(), dtype=pl.Utf8)
    except (OSError, KeyError, AttributeError, pa.ArrowException) as exc:
        raise DataError(
            f"embedding store shard {path} cannot be read ({exc})",
            "delete that file; its items are encoded again on the next run",
        ) from exc
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return keys, vectors.astype(np.float32, copy=False)


def encode_catalog(
    catalog: Catalog,
    encoder: Encoder,
    store: EmbeddingStore | None = None,
    *,
    progress: bool = True,
) -> ItemEmbeddings:
    """Vectors for every item of ``catalog``: through ``store`` (cached) when one is given."""
    if store is None:
        return encoder.encode(catalog, progress=progress)
    return store.get_or_encode(catalog, encoder, progress=progress)
