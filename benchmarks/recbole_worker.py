"""One RecBole 1.2.1 run for ``vs_recbole.py``; runs inside ``.venv-recbole``, never ``.venv``.

``python recbole_worker.py MODEL --data DIR --params JSON --out FILE`` trains MODEL
(bpr, lightgcn, sasrec) the way ``run_recbole`` does, on the pre-split atomic files
that ``recbole_split.py`` wrote into DIR (``<token>/<token>.{train,valid,test}.inter``,
read through ``benchmark_filename``), with the shared hyper-parameters in JSON, and
writes the run's record (the schema of ``tastemaker_worker.py``) to FILE. Run it from
a scratch folder: RecBole writes its TensorBoard logs and checkpoints into the working
directory.

RecBole ranks a sequential model's candidates without removing the items the user
has already seen; tastemaker removes them. So for SASRec the test metrics are
computed here from ``full_sort_predict`` under both protocols (the not-excluded one
is checked against RecBole's own ``evaluate``), after the best epoch and, with
``snapshot_epoch`` in the params, also after that many epochs.

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
PARTS = ["train", "valid", "test"]


class OutOfTime(Exception):
    """Raised after a validation once the run's time budget is spent."""


def recbole_config(model: str, data: Path, params: dict[str, Any], scratch: Path) -> dict:
    """The config dict of the run: RecBole's defaults except what the benchmark fixes."""
    columns = ["user_id", "item_id", "timestamp"]
    config: dict[str, Any] = {
        "data_path": str(data),
        "benchmark_filename": PARTS,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": [*columns, "item_id_list"] if model == "sasrec" else columns},
        "eval_args": {"order": "TO" if model == "sasrec" else "RO", "mode": "full"},
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
        config["alias_of_item_id"] = ["item_id_list"]  # one ID space for history and target
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
        dataset=export_token(data),
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

    sequential = model == "sasrec"
    snapshot: dict[str, Any] = {}

    def protocols() -> dict[str, dict[str, float]]:
        return sequential_test(net, train_data, valid_data, test_data)

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        begin, cpu = time.perf_counter(), time.process_time()
        loss = train_epoch(*args, **kwargs)
        epochs.append(
            {
                "epoch": len(epochs) + 1,
                "train_seconds": time.perf_counter() - begin,
                "train_cpu_seconds": time.process_time() - cpu,
                METRIC: None,
            }
        )
        return loss

    def timed_valid(*args: Any, **kwargs: Any) -> Any:
        score, result = valid_epoch(*args, **kwargs)
        epochs[-1].update({METRIC: float(score), "elapsed_seconds": time.perf_counter() - start})
        if sequential and len(epochs) == params.get("snapshot_epoch"):
            snapshot.update(epoch=len(epochs), **protocols())
        return score, result

    def stop_when_out_of_time(epoch_idx: int, valid_score: float) -> None:
        if time.perf_counter() - start > budget and len(epochs) >= params.get("snapshot_epoch", 0):
            raise OutOfTime  # out of time, and past the epoch whose test metrics are wanted

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

    extra: dict[str, Any] = {}
    if sequential:
        extra = {"test_protocols": protocols(), "test_at_epoch": snapshot or None}
        own = test()
        extra["recbole_evaluate"] = {k: float(own[k]) for k in ("ndcg@10", "recall@10")}
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
        **extra,
    }


def export_token(data: Path) -> str:
    """The RecBole data set name of the export in ``data`` (its folder of atomic files)."""
    return next(p.name for p in sorted(data.iterdir()) if (p / f"{p.name}.train.inter").is_file())


def leave_one_out_metrics(scores: Any, target: Any) -> dict[str, float]:
    """NDCG@10 and Recall@10 with one relevant item per row (``target``, item indices)."""
    rank = (scores > scores.gather(1, target[:, None])).sum(dim=1)
    hit = rank < 10
    ndcg = hit / (rank + 2).double().log2()
    return {"ndcg@10": float(ndcg.mean()), "recall@10": float(hit.double().mean())}


def sequential_test(net: Any, train_data: Any, valid_data: Any, test_data: Any) -> dict:
    """Test NDCG@10 / Recall@10 of a sequential model with the user's train and valid
    items excluded from the ranking and not excluded (RecBole's own protocol)."""
    import torch

    dataset = train_data._dataset
    uid, iid = dataset.uid_field, dataset.iid_field
    seen = torch.zeros(dataset.user_num, dataset.item_num, dtype=torch.bool)
    for part in (dataset, valid_data._dataset):
        feat = part.inter_feat
        users, history = feat[uid], feat[iid + "_list"]
        seen[users, feat[iid]] = True
        seen[users[:, None].expand_as(history), history] = True
    seen[:, 0] = False  # padding, never an item
    scores, targets, masks = [], [], []
    net.eval()
    with torch.no_grad():
        for interaction, _, _, positive in test_data:
            batch = net.full_sort_predict(interaction).view(len(positive), -1).clone()
            batch[:, 0] = -torch.inf
            scores.append(batch)
            targets.append(positive)
            masks.append(seen[interaction[uid]])
    all_scores, target, mask = torch.cat(scores), torch.cat(targets), torch.cat(masks)
    return {
        "not_excluded": leave_one_out_metrics(all_scores, target),
        "excluded": leave_one_out_metrics(all_scores.masked_fill(mask, -torch.inf), target),
    }


def main(argv: list[str] | None = None) -> None:
    worker_main(run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
