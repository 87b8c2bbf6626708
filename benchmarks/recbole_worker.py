"""One RecBole 1.2.1 run for ``vs_recbole.py``; runs inside ``.venv-recbole``, never ``.venv``.

``python recbole_worker.py MODEL --data DIR --params JSON --out FILE`` trains MODEL
(bpr, lightgcn, sasrec) the way ``run_recbole`` does, on the atomic files in DIR
(RecBole reads ``<data_path>/<dataset>/<dataset>.inter``), with the shared
hyper-parameters in JSON, and writes the run's record (the schema of
``tastemaker_worker.py``) to FILE. Run it from a scratch folder: RecBole writes
its TensorBoard logs and checkpoints into the working directory.

RecBole's ``Trainer.fit`` has no hook per training epoch, so the trainer's
``_train_epoch`` and ``_valid_epoch`` are wrapped on the instance to time them,
and a time budget ends training by raising from ``fit``'s ``callback_fn`` (called
after each validation, once a new best has been checkpointed).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from vs_recbole import METRIC, outcome, worker_main

# RecBole's own checkpoints hold numpy objects, which torch>=2.6 refuses to load by default.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

MODELS = {"bpr": "BPR", "lightgcn": "LightGCN", "sasrec": "SASRec"}
RANDOM_811 = {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"}
LEAVE_ONE_OUT = {
    "split": {"LS": "valid_and_test"},
    "order": "TO",
    "group_by": "user",
    "mode": "full",
}


class OutOfTime(Exception):
    """Raised after a validation once the run's time budget is spent."""


def recbole_config(model: str, data: Path, params: dict[str, Any], scratch: Path) -> dict:
    """The config dict of the run: RecBole's defaults except what the benchmark fixes."""
    config: dict[str, Any] = {
        "data_path": str(data.parent),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": LEAVE_ONE_OUT if model == "sasrec" else RANDOM_811,
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": params["epochs"],
        "stopping_step": params["patience"],
        "train_batch_size": params["batch_size"],
        "learning_rate": params["learning_rate"],
        "seed": params["seed"],
        "reproducibility": True,
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": str(scratch / "saved"),
        **params.get("recbole", {}),
    }
    if model == "sasrec":  # cross-entropy over all items: no sampled negatives
        config.update(hidden_size=params["dim"], loss_type="CE", train_neg_sample_args=None)
    else:
        config["embedding_size"] = params["dim"]
    return config


def run(model: str, data: Path, params: dict[str, Any], budget: float, eval_repeats: int) -> dict:
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    logging.basicConfig(level=logging.WARNING)
    scratch = Path.cwd()
    config = Config(
        model=MODELS[model],
        dataset=data.name,
        config_dict=recbole_config(model, data, params, scratch),
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)

    epochs: list[dict[str, Any]] = []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        loss = train_epoch(*args, **kwargs)
        epochs.append(
            {"epoch": len(epochs) + 1, "train_seconds": time.perf_counter() - begin, METRIC: None}
        )
        return loss

    def timed_valid(*args: Any, **kwargs: Any) -> Any:
        score, result = valid_epoch(*args, **kwargs)
        epochs[-1].update({METRIC: float(score), "elapsed_seconds": time.perf_counter() - start})
        return score, result

    def stop_when_out_of_time(epoch_idx: int, valid_score: float) -> None:
        if time.perf_counter() - start > budget:
            raise OutOfTime

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    start = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data, saved=True, callback_fn=stop_when_out_of_time)
        stopped_by_budget = False
    except OutOfTime:
        stopped_by_budget = True
    fit_seconds = time.perf_counter() - start

    trainer.evaluate(test_data, load_best_model=True)  # restore the best checkpoint once

    def test() -> dict[str, float]:
        return trainer.evaluate(test_data, load_best_model=False)

    return {
        "toolkit": "recbole",
        "version": recbole.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": model,
        "params": params,
        "data": {
            "users": dataset.user_num - 1,  # RecBole's index 0 is padding
            "items": dataset.item_num - 1,
            "train": len(train_data._dataset),
            "valid": len(valid_data._dataset),
            "test": len(test_data._dataset),
        },
        **outcome(epochs, stopped_by_budget, fit_seconds, test, eval_repeats),
    }


def main(argv: list[str] | None = None) -> None:
    worker_main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
