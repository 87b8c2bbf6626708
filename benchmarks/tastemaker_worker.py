"""One tastemaker run for ``vs_recbole.py``; the twin of ``recbole_worker.py`` in ``.venv``.

``python tastemaker_worker.py MODEL --data DIR --params JSON --out FILE`` loads the
atomic files in DIR, splits them as RecBole's protocol does (random 8:1:1 per user
for bpr/lightgcn, leave-one-out by time for sasrec), fits with early stopping on
validation NDCG@10 and writes the run's record (same schema as the RecBole worker).

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
from typing import Any

from vs_recbole import METRIC, outcome, worker_main


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


def run(model: str, data: Path, params: dict[str, Any], budget: float, eval_repeats: int) -> dict:
    import torch

    import tastemaker
    from tastemaker.data.sources import load_atomic
    from tastemaker.data.splits import leave_one_out, random_ratio
    from tastemaker.evaluation import evaluate_split
    from tastemaker.models import create_model

    dataset = load_atomic(data)
    if model == "sasrec":
        split = leave_one_out(dataset)
    else:
        split = random_ratio(dataset, (0.8, 0.1, 0.1), seed=params["seed"])
    recommender = create_model(model, **model_params(model, params))

    starts: list[float] = []
    train_seconds: list[float] = []
    train_epoch = recommender._train_epoch
    last_loss = float("nan")

    def timed_train() -> float:
        nonlocal last_loss
        begin = time.perf_counter()
        if begin - start > budget:
            return last_loss  # out of time: idle epochs until patience runs out
        starts.append(begin - start)
        last_loss = train_epoch()
        train_seconds.append(time.perf_counter() - begin)
        return last_loss

    recommender._train_epoch = timed_train  # type: ignore[method-assign]
    start = time.perf_counter()
    recommender.fit(split.train, split.valid)
    fit_seconds = time.perf_counter() - start
    assert recommender.training_log is not None
    trained = recommender.training_log[: len(train_seconds)]
    epochs = [
        {
            "epoch": row["epoch"],
            "train_seconds": seconds,
            METRIC: row[METRIC],
            "elapsed_seconds": began + row["seconds"],
        }
        for row, seconds, began in zip(trained, train_seconds, starts, strict=True)
    ]

    def test() -> dict[str, float]:
        return evaluate_split(recommender, split, "test", ks=(10,), metrics=("ndcg", "recall"))

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
    }


def main(argv: list[str] | None = None) -> None:
    worker_main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
