"""Data-parallel training of the sequential models through Ray Train (TorchTrainer, DDP).

Every Ray Train worker holds the whole split and the same seeded model, so all start
from the same weights and draw the same batch order. Each batch is shared out: a
worker runs the network, wrapped in PyTorch's DistributedDataParallel (gloo on CPU),
on every ``world``-th of its training windows, and DDP averages the gradients of all
workers before each optimiser step, so the weights stay identical everywhere and
validation and early stopping (every worker runs them on the same weights) decide
the same. The worker with rank 0 saves the model as a Ray Train checkpoint, which
this process loads back as an ordinary model (e.g. ``sasrec``).

Comparable with one process: DDP averages the workers' mean losses, which weights
each half-batch equally, whereas one process averages over all targets of the
batch; a worker's loss is therefore scaled by ``world * n_mine / n_batch`` (its share
of the batch's targets), so the averaged gradient is the whole batch's mean gradient
and, without randomness inside a step (``dropout=0``, ``loss_type="ce"``), the trained
weights equal the single-process ones up to float rounding. What cannot be equal:
dropout masks and sampled negatives (``loss_type="bpr"``) are drawn by each worker
for its own windows, from a stream seeded by the model's seed, the step and the
worker's rank, so they differ from the draws of one process (and the model's own
generator, which orders the batches, stays in step on every worker). The logged
loss of an epoch is the worker's share, not the whole batch's mean.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from tastemaker.config import ModelSpec
from tastemaker.data.dataset import Split
from tastemaker.distributed.cluster import check_workers, connect
from tastemaker.errors import ConfigError
from tastemaker.models.base import Recommender
from tastemaker.models.registry import get_model_class
from tastemaker.models.sequential import SequentialRecommender

MODEL_FOLDER = "model"  # inside the Ray Train checkpoint


class SyncedNetwork(DistributedDataParallel):
    """DDP around a sequence network that still answers for the network's attributes
    (``item_embedding``, ...), so a model's loss code reads them through it unchanged."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not wrapped yet (inside DDP's own __init__)
                raise
            return getattr(self.module, name)


class DataParallelSequential(SequentialRecommender):
    """The batch share of one DDP worker (see the module docstring); mixed into a
    sequential model by :func:`data_parallel`."""

    _synced: SyncedNetwork | None = None
    _step = 0

    def batch_loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        n_batch = int((targets != self.n_items).sum())
        rows = torch.arange(rank, len(inputs), world)
        share = 1.0
        if not len(rows):  # fewer windows than workers: a stand-in row that weighs nothing
            rows, share = torch.arange(1), 0.0
        network, generator = self.network, self.generator
        if self._synced is None or self._synced.module is not network:
            self._synced = SyncedNetwork(network)
        seeds = np.random.SeedSequence([self.config.seed, self._step, rank])
        seed = int(seeds.generate_state(1)[0])
        self._step += 1
        self.network, self.generator = self._synced, torch.Generator().manual_seed(seed)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # dropout: this worker's own draws
                loss, n_mine = super().batch_loss(inputs[rows], targets[rows])
        finally:
            self.network, self.generator = network, generator
        return loss * (share * world * n_mine / n_batch), n_mine


def data_parallel(model_class: type[Recommender]) -> type[DataParallelSequential]:
    """``model_class`` (a sequential model) training as one DDP worker of many."""
    if not issubclass(model_class, SequentialRecommender):
        raise ConfigError(
            f"model '{model_class.name}' cannot be trained data-parallel on Ray",
            "use a sequential model (e.g. sasrec, gru4rec)",
        )
    name = f"DataParallel{model_class.__name__}"
    return type(name, (DataParallelSequential, model_class), {})


def train_worker(config: dict[str, Any]) -> None:
    """The loop of one Ray Train worker: fit, then rank 0 reports the model as a checkpoint."""
    import ray.train

    torch.set_num_threads(1)  # one CPU per worker: Ray schedules the parallelism
    split: Split = config["split"]
    spec: ModelSpec = config["spec"]
    model = data_parallel(get_model_class(spec.name))(**spec.params)
    model.fit(split.train, split.valid if len(split.valid) else None)
    metrics = {"epochs": len(model.training_log or []), "best_epoch": model.best_epoch}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            model.save(Path(folder) / MODEL_FOLDER)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_on_ray(
    split: Split, spec: ModelSpec, *, workers: int = 2, storage: str | None = None
) -> Recommender:
    """A sequential model trained data-parallel by ``workers`` Ray Train workers (one CPU
    each, DDP over gloo), early-stopped on ``split.valid``; returned as a plain model.

    ``storage`` is where Ray Train keeps the checkpoint (a folder or a URI such as
    ``s3://...``): on a cluster of several machines it must be reachable from all of
    them (shared storage); by default, a temporary folder on this machine.
    """
    check_workers(workers)
    data_parallel(get_model_class(spec.name))(**spec.params)  # a bad setting fails here
    connect()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    with tempfile.TemporaryDirectory() as scratch:
        trainer = TorchTrainer(
            train_worker,
            train_loop_config={"split": split, "spec": spec},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False),
            torch_config=TorchConfig(backend="gloo"),
            run_config=RunConfig(
                name=f"tastemaker-{spec.name}-{uuid.uuid4().hex[:8]}",
                storage_path=storage or scratch,
            ),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise ConfigError(
                "Ray Train finished without the model's checkpoint",
                "check the Ray logs of the training workers",
            )
        with result.checkpoint.as_directory() as folder:
            return Recommender.load(Path(folder) / MODEL_FOLDER)
