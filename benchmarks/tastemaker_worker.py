"""One tastemaker run for ``vs_recbole.py``; the twin of ``recbole_worker.py`` in ``.venv``.

``python tastemaker_worker.py MODEL --data DIR --params JSON --out FILE`` loads the
split that ``recbole_split.py`` wrote into ``DIR/split`` (the rows RecBole reads from
the atomic files beside it), fits with early stopping on validation NDCG@10 and
writes the run's record (same schema as the RecBole worker). For SASRec the test
metrics come under both protocols: the user's train and valid items excluded from the
ranking (tastemaker's) and not excluded (RecBole's), after the best epoch and, with
``snapshot_epoch`` in the params, after that many epochs.

Training seconds per epoch come from wrapping the model's ``_train_epoch``; the
wall-clock time of each validation from ``training_log``'s per-epoch seconds
(training + validation) added to that epoch's start. The shared loop has no time
budget, so once the budget is spent the wrapper stops training (it returns the
last loss without a pass): the unchanged model cannot improve, so the loop's
patience ends the run with the best weights restored; those idle epochs are not
reported.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vs_recbole import METRIC, outcome, worker_main

if TYPE_CHECKING:
    import numpy as np
    import torch

    from tastemaker.data.dataset import Split
    from tastemaker.data.interactions import Interactions
    from tastemaker.models.base import Recommender


def model_params(model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The shared hyper-parameters in the model's own names, plus tastemaker-only ones."""
    size = "hidden_size" if model == "sasrec" else "factors"
    return {
        size: params["dim"],
        "batch_size": params["batch_size"],
        "learning_rate": params["learning_rate"],
        "epochs": params["epochs"],
        "patience": params["patience"],
        "seed": params["seed"],
        **params.get("tastemaker", {}),
    }


class _KnownContext:
    """A model scored with a fixed context: a user's history is read, not masked."""

    def __init__(self, model: Recommender, context: Interactions) -> None:
        self.model, self.context = model, context

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        return self.model.score_indices(user_idx, self.context)


def protocols(model: Recommender, split: Split) -> dict[str, dict[str, float]]:
    """Test NDCG@10 / Recall@10 with the train and valid items excluded and not."""
    from tastemaker.data.interactions import Interactions
    from tastemaker.evaluation import evaluate, evaluate_split

    kw: dict[str, Any] = {"ks": (10,), "metrics": ("ndcg", "recall")}
    known = _KnownContext(model, Interactions.concat([split.train, split.valid]))
    return {
        "excluded": evaluate_split(model, split, "test", **kw),
        "not_excluded": evaluate(known, split.test, **kw),
    }


def run(model: str, data: Path, params: dict[str, Any], budget: float, eval_repeats: int) -> dict:
    import torch

    import tastemaker
    from tastemaker.data.dataset import Split
    from tastemaker.evaluation import evaluate_split
    from tastemaker.models import create_model

    split = Split.load(data / "split")
    recommender = create_model(model, **model_params(model, params))
    sequential = model == "sasrec"
    snapshot: dict[str, Any] = {}

    starts: list[float] = []
    train_seconds: list[float] = []
    train_cpu: list[float] = []
    train_epoch = recommender._train_epoch
    last_loss = float("nan")

    def timed_train() -> float:
        nonlocal last_loss
        begin, cpu = time.perf_counter(), time.process_time()
        if begin - start > budget and len(train_seconds) >= params.get("snapshot_epoch", 0):
            return last_loss  # out of time: idle epochs until patience runs out
        starts.append(begin - start)
        last_loss = train_epoch()
        train_seconds.append(time.perf_counter() - begin)
        train_cpu.append(time.process_time() - cpu)
        if sequential and len(train_seconds) == params.get("snapshot_epoch"):
            snapshot.update(epoch=len(train_seconds), **protocols(recommender, split))
        return last_loss

    recommender._train_epoch = timed_train  # type: ignore[method-assign]
    start = time.perf_counter()
    recommender.fit(split.train, split.valid)
    fit_seconds = time.perf_counter() - start
    if recommender.training_log is None:
        raise SystemExit("the model kept no training log")
    trained = recommender.training_log[: len(train_seconds)]
    epochs = [
        {
            "epoch": row["epoch"],
            "train_seconds": seconds,
            "train_cpu_seconds": cpu,
            METRIC: row[METRIC],
            "elapsed_seconds": began + row["seconds"],
        }
        for row, seconds, cpu, began in zip(trained, train_seconds, train_cpu, starts, strict=True)
    ]

    def test() -> dict[str, float]:
        return evaluate_split(recommender, split, "test", ks=(10,), metrics=("ndcg", "recall"))

    extra: dict[str, Any] = {}
    if sequential:
        extra = {"test_protocols": protocols(recommender, split), "test_at_epoch": snapshot or None}
    return {
        "toolkit": "tastemaker",
        "version": tastemaker.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": model,
        "params": params,
        "data": {
            "users": len(split.train.users),
            "items": len(split.train.items),
            "train": len(split.train),
            "valid": len(split.valid),
            "test": len(split.test),
        },
        **outcome(
            epochs, len(trained) < len(recommender.training_log), fit_seconds, test, eval_repeats
        ),
        **extra,
    }


def main(argv: list[str] | None = None) -> None:
    worker_main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
