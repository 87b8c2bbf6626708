"""Scale-out on Ray (``pip install 'tastemaker[ray]'``): the jobs of one machine spread
over a Ray cluster, each giving what the single-process path gives.

One module per job: ``embeddings`` (catalog extraction on Ray Data into the same
store shards), ``evaluation`` (full ranking sharded by users), ``generation`` (PMG
over many pairs), ``trials`` (Optuna-proposed trials in parallel), ``training``
(sequential models data-parallel through Ray Train's TorchTrainer, DDP on gloo);
``cluster`` joins a cluster (:func:`connect`). Ray is imported inside functions only,
and each job's module on first use (PEP 562), so a Ray worker that runs one job
imports only what that job needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tastemaker.distributed.cluster import connect
    from tastemaker.distributed.embeddings import encode_catalog_on_ray
    from tastemaker.distributed.evaluation import evaluate_split_on_ray
    from tastemaker.distributed.generation import generate_on_ray
    from tastemaker.distributed.training import train_on_ray
    from tastemaker.distributed.trials import tune_on_ray

_HOMES = {
    "connect": "cluster",
    "encode_catalog_on_ray": "embeddings",
    "evaluate_split_on_ray": "evaluation",
    "generate_on_ray": "generation",
    "train_on_ray": "training",
    "tune_on_ray": "trials",
}
__all__ = [
    "connect",
    "encode_catalog_on_ray",
    "evaluate_split_on_ray",
    "generate_on_ray",
    "train_on_ray",
    "tune_on_ray",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'tastemaker.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tastemaker.distributed.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
