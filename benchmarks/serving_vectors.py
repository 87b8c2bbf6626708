"""Synthetic item and user vectors for the ANN sweep (``benchmarks/serving_sweep.py``).

Two kinds, both seeded float32, d = 64:

* ``isotropic``: i.i.d. N(0, 1) items and users. Every direction is equally likely, so
  the data's intrinsic dimension is the full 64, near neighbours are barely nearer than
  anything else, and a graph index has no local structure to follow: the worst case
  for HNSW (Aumüller & Ceccarello, "The role of local intrinsic dimensionality in
  benchmarking nearest neighbor search", SISAP 2019), kept as such.
* ``structured``: shaped like trained factor embeddings, which are low-rank and
  clustered, with norms that vary (popular items get longer vectors under inner-product
  training). Items: a cluster centre (one of ``items / 1000`` centres, at least 16,
  drawn N(0, I) in a rank-16 latent space) plus N(0, 0.5² I) latent noise, mapped into
  64 dimensions by a random orthonormal basis, plus N(0, 0.1² I) full-rank noise, then
  scaled by a log-normal norm factor exp(N(0, 0.3²)). Users: the mean of two random
  centres (two tastes) plus the same latent and full-rank noise. These constants are
  assumptions, not fitted to a data set; they make the point that the recall of
  isotropic data says little about the recall on embeddings a model learned.
"""

from __future__ import annotations

import numpy as np

DIM = 64
RANK = 16
ITEMS_PER_CLUSTER = 1000
MIN_CLUSTERS = 16
LATENT_NOISE, FULL_NOISE, NORM_SPREAD = 0.5, 0.1, 0.3
KINDS = ("structured", "isotropic")


def synthetic(kind: str, items: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(item vectors ``items x DIM``, user vectors ``queries x DIM``) of ``kind``."""
    rng = np.random.default_rng([seed, items])
    if kind == "isotropic":
        return (
            rng.standard_normal((items, DIM), dtype=np.float32),
            rng.standard_normal((queries, DIM), dtype=np.float32),
        )
    if kind != "structured":
        raise ValueError(f"unknown vector kind {kind!r}: use one of {', '.join(KINDS)}")
    basis = np.linalg.qr(rng.standard_normal((DIM, RANK)))[0].T.astype(np.float32)
    centres = rng.standard_normal((max(MIN_CLUSTERS, items // ITEMS_PER_CLUSTER), RANK))
    centres = centres.astype(np.float32)

    def embed(latent: np.ndarray) -> np.ndarray:
        latent += LATENT_NOISE * rng.standard_normal(latent.shape, dtype=np.float32)
        full = latent @ basis
        full += FULL_NOISE * rng.standard_normal(full.shape, dtype=np.float32)
        return full

    vectors = embed(centres[rng.integers(0, len(centres), items)])
    vectors *= np.exp(NORM_SPREAD * rng.standard_normal(items)).astype(np.float32)[:, None]
    pairs = rng.integers(0, len(centres), (queries, 2))
    users = embed((centres[pairs[:, 0]] + centres[pairs[:, 1]]) / 2)
    return np.ascontiguousarray(vectors), np.ascontiguousarray(users)
