"""Catalog embedding extraction on Ray Data, into the same store shards as one process.

The items to encode (content keys neither stored nor seen before in this run) are
spread over a pool of Ray Data actors, each holding its own copy of the encoder's
model; their vectors stream back to this process, where the
:class:`~tastemaker.encoders.store.EmbeddingStore` itself writes them, through its
one extraction loop (:meth:`~tastemaker.encoders.store.EmbeddingStore.get_or_encode`),
fed by :class:`StreamedEncoder` instead of a local model. So the folder (encoder
signature), shard format, commits every ``commit_every`` items (an interrupted run
resumes), deduplication and masks are the single-process path's; only where each
vector is computed differs. Vectors equal the single-process ones up to the
float rounding of different batch compositions (padding within a text batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from tastemaker.data.catalog import Catalog
from tastemaker.distributed.cluster import check_workers, connect
from tastemaker.encoders.base import NO_CONTENT, Encoder, EncoderConfig, ItemEmbeddings
from tastemaker.encoders.store import EmbeddingStore
from tastemaker.errors import DataError


class EncodeBatch:
    """A Ray Data actor: the encoder built once from its class and config, then batches of
    item rows embedded as (key, vector, ok)."""

    def __init__(self, kind: type[Encoder], config: EncoderConfig, inputs: list[Any]) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per actor: Ray schedules the parallelism
        self.encoder = kind(config)
        self.inputs = inputs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [self.inputs[int(row)] for row in batch["row"]]
        vectors, ok = self.encoder.embed(items)
        return {
            "key": np.asarray(self.encoder.keys(items)),
            "vector": np.asarray(vectors, dtype=np.float32),
            "ok": np.asarray(ok, dtype=bool),
        }


class StreamedEncoder(Encoder):
    """``inner`` as the store sees it (same id, signature, inputs and keys, hence the same
    folder), whose vectors come from a stream of Ray Data batches instead of a model."""

    def __init__(self, inner: Encoder, batches: Iterator[dict[str, np.ndarray]]) -> None:
        self.inner, self.config, self.last_stats = inner, inner.config, None
        self.modality = inner.modality  # type: ignore[misc]
        self._batches = batches
        self._ready: dict[str, tuple[np.ndarray, bool]] = {}
        self._width: int | None = None

    @property
    def encoder_id(self) -> str:
        return self.inner.encoder_id

    @property
    def dim(self) -> int:
        """The width of the first vector back (no model is loaded here)."""
        while self._width is None:
            self._pull()
        return self._width

    def inputs(self, catalog: Catalog) -> list[Any | None]:
        return self.inner.inputs(catalog)

    def key_material(self, item_input: Any) -> str:
        return self.inner.key_material(item_input)

    def batch_order(self, inputs: Sequence[Any], rows: np.ndarray) -> np.ndarray:
        return self.inner.batch_order(inputs, rows)

    def provenance(self) -> dict[str, str]:
        return self.inner.provenance()

    def signature(self) -> dict[str, Any]:
        return self.inner.signature()

    def embed(self, batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        keys = self.keys(batch)
        while any(key not in self._ready for key in keys):
            self._pull()
        rows = [self._ready.pop(key) for key in keys]
        return np.stack([vector for vector, _ in rows]), np.array([ok for _, ok in rows])

    def _pull(self) -> None:
        """Take the next batch the workers finished."""
        try:
            batch = next(self._batches)
        except StopIteration:
            raise DataError(
                "the Ray workers returned fewer vectors than the store asked for",
                "run the extraction again: the vectors stored so far are kept",
            ) from None
        self._width = int(batch["vector"].shape[1])
        for key, vector, ok in zip(batch["key"], batch["vector"], batch["ok"], strict=True):
            self._ready[str(key)] = (vector, bool(ok))


def pending_rows(inputs: Sequence[Any], keys: list[str], stored: pl.Series) -> np.ndarray:
    """The rows the store will encode: content present, key not stored, first of its key."""
    series = pl.Series("key", keys, dtype=pl.Utf8)
    todo = (series != NO_CONTENT).to_numpy() & ~series.is_in(stored.implode()).to_numpy()
    rows = np.flatnonzero(todo)
    _, first = np.unique(series.gather(rows).to_numpy(), return_index=True)
    return np.sort(rows[first])


def encode_catalog_on_ray(
    catalog: Catalog,
    encoder: Encoder,
    store: EmbeddingStore,
    *,
    workers: int = 2,
    batch_size: int | None = None,
    progress: bool = True,
) -> ItemEmbeddings:
    """:meth:`EmbeddingStore.get_or_encode` with the encoding spread over ``workers`` Ray
    actors (one CPU each); the returned vectors and the shards written are the store's."""
    check_workers(workers)
    inputs = encoder.inputs(catalog)
    stored, _ = store.read(encoder)
    rows = pending_rows(inputs, encoder.keys(inputs), stored)
    if not len(rows):  # everything cached: no model anywhere
        return store.get_or_encode(catalog, encoder, progress=progress)
    connect()
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    size = batch_size or encoder.config.batch_size
    order = encoder.batch_order(inputs, rows)
    dataset = ray.data.from_items([{"row": int(r)} for r in order]).map_batches(
        EncodeBatch,
        fn_constructor_args=(type(encoder), encoder.config, inputs),
        batch_size=size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(order))),
        num_cpus=1,
    )
    streamed = StreamedEncoder(encoder, iter(dataset.iter_batches(batch_size=None)))
    return store.get_or_encode(catalog, streamed, batch_size=size, progress=progress)
