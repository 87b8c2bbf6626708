"""Sparse k-nearest-neighbour item graphs from content features, built in chunks.

FREEDOM (Zhou & Shen, MM 2023) smooths item embeddings over a frozen graph linking each
item to its k most similar items by content. The full similarity matrix of 100k items
would take 40 GB in float32, so it is never formed: ``chunk_size`` query rows at a time
are compared with every key item, and only the top k of each row are kept.

Memory for n items with d-dim features, k neighbours and c query rows per chunk:

- n·k·(4 + 8) bytes for the kept similarities (float32) and columns (int64),
- c·n·4 bytes for one chunk of similarities (and ``torch.topk``'s output),
- n·d·4 bytes for the unit-normalised features (plus their key rows when only some
  items are keys).

For n = 100,000, d = 384, k = 10, c = 1024: 12 MB + 410 MB + 154 MB = 575 MB (a dense
matrix: 40 GB). Measured (``benchmarks/item_graph_memory.py``, one CPU thread on the
shared 2-core machine): 147 s, peak RSS 1.01 GB of which 585 MB for the build; with
c = 256, 201 s and 278 MB. The finished graph takes 8.4 MB.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from tastemaker.errors import ConfigError

DEFAULT_CHUNK = 1024  # query rows per chunk: c·n·4 bytes, 410 MB for 100k items


def knn_graph(
    vectors: torch.Tensor,
    k: int,
    *,
    queries: torch.Tensor | None = None,
    keys: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> sp.csr_matrix:
    """The top-``k`` cosine neighbours among ``keys`` of each row in ``queries``.

    Returns an (n, n) CSR matrix whose row i holds the cosine similarities of item i's
    neighbours (itself included when it is a key); rows of non-queries are empty.
    ``queries``/``keys`` are bool masks (default: all); all-zero rows (items lacking the
    modality) are never queries nor keys. A row with fewer than ``k`` keys keeps them all.
    ``progress`` shows a bar (on a terminal).
    """
    if k < 1 or chunk_size < 1:
        raise ConfigError(
            f"k={k} and chunk_size={chunk_size} must both be at least 1",
            "use e.g. k=10 neighbours and chunk_size=1024 rows",
        )
    n = vectors.shape[0]
    with torch.no_grad():
        vectors = vectors.float()
        norms = vectors.norm(dim=1)
        usable = norms > 0
        unit = vectors / norms.clamp_min(torch.finfo(torch.float32).tiny)[:, None]
        query_idx = torch.nonzero(usable if queries is None else usable & queries).ravel()
        key_idx = torch.nonzero(usable if keys is None else usable & keys).ravel()
        k = min(k, len(key_idx))
        key_matrix = (unit if len(key_idx) == n else unit[key_idx]).T
        values = np.empty((len(query_idx), k), dtype=np.float32)
        columns = np.empty((len(query_idx), k), dtype=np.int64)
        starts = range(0, len(query_idx) if k else 0, chunk_size)
        for start in tqdm(
            starts, desc="item kNN graph", unit="chunk", disable=None if progress else True
        ):
            rows = query_idx[start : start + chunk_size]
            top, position = torch.topk(unit[rows] @ key_matrix, k, dim=1)
            values[start : start + len(rows)] = top.numpy()
            columns[start : start + len(rows)] = key_idx[position].numpy()
    counts = np.zeros(n, dtype=np.int64)
    counts[query_idx.numpy()] = k
    indptr = np.concatenate([[0], np.cumsum(counts)])
    graph = sp.csr_matrix((values.ravel(), columns.ravel(), indptr), shape=(n, n))
    graph.sort_indices()
    return graph


def mixed_knn_graph(
    features: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    k: int,
    *,
    keys: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> sp.csr_matrix:
    """FREEDOM's item-item graph: per modality a kNN graph, mixed by ``weights``.

    Each modality's graph is binary and row-normalised (a mean over the k neighbours,
    which is what FREEDOM's D^-1/2 A D^-1/2 gives when every row has k entries). Rows
    are mixed as Σ_m w_m(i) A_m with w_m(i) = w_m / Σ_{m' item i has} w_m': an item
    lacking a modality (mask False) has no neighbours through it, is nobody's neighbour
    through it, and its other modalities' weights are renormalised to sum to one.
    """
    n = len(next(iter(masks.values())))
    graphs, shares = [], []
    for modality, vectors in features.items():
        present = masks[modality].bool()
        graph = knn_graph(
            vectors,
            k,
            queries=present,
            keys=present if keys is None else present & keys,
            chunk_size=chunk_size,
            progress=progress,
        )
        degree = np.diff(graph.indptr)
        graph.data[:] = 1.0
        graphs.append(sp.diags(1.0 / np.maximum(degree, 1)) @ graph)
        shares.append(weights[modality] * (degree > 0))
    total = np.sum(shares, axis=0)
    mixed = sp.csr_matrix((n, n), dtype=np.float32)
    for graph, share in zip(graphs, shares, strict=True):
        scale = np.divide(share, total, out=np.zeros(n), where=total > 0)
        mixed = mixed + sp.diags(scale.astype(np.float32)) @ graph
    mixed = mixed.tocsr().astype(np.float32)
    mixed.sort_indices()
    return mixed
