"""MMRec's own BM3 on the multimodal benchmark's split and text (or poster) features: the
peer of tastemaker's ``bm3-text`` (``bm3-image``) row in ``results/multimodal.md``.

Run with::

    TASTEMAKER_DATA=/path/to/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmrec_bm3.py \\
        --mmrec PATH/TO/MMRec [--config configs/multimodal-ml-latest-small.toml] \\
        [--modality image] [--frozen]

``PATH/TO/MMRec`` is a checkout of github.com/enoche/MMRec (the authors' framework, not
vendored here). The split and the text features are those ``multimodal.py`` makes from
the config (same seed, same embedding store). They are written in MMRec's layout into a
scratch folder (``<name>.inter``: userID, itemID, x_label 0/1/2 in tastemaker's index
order; ``text_feat.npy`` in item order, or ``image_feat.npy`` with ``--modality image``,
zeros for an item without a poster: one modality per run), and
MMRec's BM3 is trained by MMRec's own trainer with the settings of tastemaker's
``BM3Config`` (the first values of the authors' grid: 1 layer, dropout 0.3, reg 0.1;
cl_weight 2, 64 dims, lr 1e-3, batch 2048, patience 20 on valid Recall@20) and
MMRec's default seed 999. MMRec needs scipy<1.12 (``dok_matrix._update``), so it runs in
``.venv-recbole`` (``vs_recbole.py`` makes it); it imports lmdb, torchvision and
matplotlib only to read raw images and plot, which BM3 never does, so the worker puts
empty stand-ins for them in ``sys.modules``, and its metrics use ``np.float``, which the
worker restores as ``float``.

MMRec's protocol: every item is ranked, the user's training items masked (at test time
too: valid items are not masked). The result, ``results/multimodal.mmrec.json``
(per-epoch mean batch loss, valid and test Recall@20 / NDCG@20, the best epoch's,
seconds), is read by ``multimodal.py`` into its page (``mmrec_bm3_report.py``);
``--modality image`` writes ``multimodal.mmrec-image.json``. ``--frozen`` trains the
same BM3 with its features fixed, as tastemaker's are (the authors fine-tune them),
into ``…-frozen.json``: it tells a decline of BM3 with fixed features from a fault of
tastemaker's code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODALITIES = ("text", "image")
NAME = "tastemaker-split"
SETTINGS = {
    "n_layers": 1, "dropout": 0.3, "reg_weight": 0.1, "cl_weight": 2.0, "embedding_size": 64,
    "feat_embed_dim": 64, "learning_rate": 1e-3, "train_batch_size": 2048,
    "stopping_step": 20, "epochs": 1000, "valid_metric": "Recall@20", "seed": 999,
}  # fmt: skip


def result_path(modality: str, frozen: bool) -> Path:
    """Where a run on ``modality`` (with ``frozen`` features) writes its result."""
    name = "multimodal.mmrec" + "-image" * (modality == "image") + "-frozen" * frozen
    return HERE / "results" / f"{name}.json"


def peer_label(modality: str, frozen: bool) -> str:
    """The row of such a run in the page."""
    return f"MMRec BM3 ({modality}{', frozen' * frozen})"


def export(config: Path, folder: Path, modality: str) -> dict[str, Any]:
    """The config's split and ``modality`` features in MMRec's layout under ``folder/NAME``."""
    import numpy as np
    import polars as pl

    import multimodal
    from tastemaker import experiment

    exp = multimodal.load_experiment(config)
    split = experiment.prepare(exp.data, exp.split)
    features = experiment.item_features(split.catalog, [modality], exp.features)[modality]
    aligned = features.align(split.items)
    target = folder / NAME
    target.mkdir(parents=True)
    parts = []
    for label, part in enumerate((split.train, split.valid, split.test)):
        users, items = part.indices()
        parts.append(pl.DataFrame({"userID": users, "itemID": items, "x_label": label}))
    pl.concat(parts).write_csv(target / f"{NAME}.inter", separator="\t")
    np.save(target / f"{modality}_feat.npy", aligned.vectors.astype(np.float32))
    return {
        "split_hash": split.content_hash,
        "modality": modality,
        f"{modality}_encoder": aligned.encoder_id,
        "items": len(split.items),
        f"items_without_{modality}": int((~aligned.mask).sum()),
    }


def worker(mmrec: Path, data: Path, out: Path, frozen: bool, settings: dict[str, Any]) -> None:
    """Fit MMRec's BM3 through its own trainer with ``settings`` (its features fixed when
    ``frozen``); write the per-epoch record to ``out``."""
    for name in ("lmdb", "torchvision", "torchvision.transforms", "matplotlib"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["matplotlib.pyplot"] = types.ModuleType("matplotlib.pyplot")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.pad = functional.resize = None  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms.functional"] = functional
    sys.path.insert(0, str(mmrec / "src"))
    import numpy as np
    import torch

    np.float = float  # type: ignore[attr-defined]  # MMRec's metrics use the alias numpy 1.24 removed
    from utils.configurator import Config  # MMRec's modules
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(1)
    overrides = {
        **settings, "use_gpu": False, "data_path": f"{data}/", "inter_file_name": f"{NAME}.inter",
        "text_feature_file": "text_feat.npy", "vision_feature_file": "image_feat.npy",
        "hyper_parameters": ["seed"], "topk": [20], "metrics": ["Recall", "NDCG"],
        "USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "inter_splitting_label": "x_label",
        "field_separator": "\t", "filter_out_cod_start_users": True,
    }  # fmt: skip
    scratch = Path.cwd()
    os.chdir(mmrec / "src")  # MMRec reads its configs/*.yaml from the working folder
    config = Config("BM3", NAME, overrides)
    os.chdir(scratch)  # and writes its log there
    config["seed"] = settings["seed"]
    init_logger(config)
    train, valid, test = RecDataset(config).split()
    for part in (train, valid, test):
        str(part)  # MMRec's __str__ sets the counts its loaders read (inter_num)
    train_data = TrainDataLoader(config, train, batch_size=config["train_batch_size"], shuffle=True)
    size = config["eval_batch_size"]
    valid_data = EvalDataLoader(config, valid, additional_dataset=train, batch_size=size)
    test_data = EvalDataLoader(config, test, additional_dataset=train, batch_size=size)
    init_seed(config["seed"])
    train_data.pretrain_setup()
    model = get_model("BM3")(config, train_data).to(config["device"])
    for features in ("text_embedding", "image_embedding"):  # the one exported is there
        if hasattr(model, features):  # Adam skips a frozen weight
            getattr(model, features).weight.requires_grad_(not frozen)
    trainer = get_trainer()(config, model, False)
    results: list[dict[str, float]] = []
    losses: list[float] = []
    evaluate, train_epoch = trainer._valid_epoch, trainer._train_epoch

    def losses_kept(data: Any, epoch: int, loss_func: Any = None) -> Any:
        total, batches = train_epoch(data, epoch, loss_func)
        losses.append(float(total) / max(len(batches), 1))  # the mean batch loss
        return total, batches

    def recorded(data: Any) -> Any:  # fit evaluates valid, then test, every epoch
        score, result = evaluate(data)
        results.append({k: float(v) for k, v in result.items()})
        return score, result

    trainer._valid_epoch, trainer._train_epoch = recorded, losses_kept
    start = time.process_time()
    _, best_valid, best_test = trainer.fit(train_data, valid_data, test_data, saved=False)
    cpu = time.process_time() - start
    epochs = [
        {"epoch": n + 1, "loss": loss, "valid": v, "test": t}
        for n, (loss, v, t) in enumerate(zip(losses, results[::2], results[1::2], strict=True))
    ]
    valid_recall = [e["valid"]["recall@20"] for e in epochs]
    best = valid_recall.index(max(valid_recall)) + 1  # MMRec keeps the first best
    record = {
        "epochs": epochs,
        "best_epoch": best,
        "best_valid": {k: float(v) for k, v in best_valid.items()},
        "test_at_best": {k: float(v) for k, v in best_test.items()},
        "cpu_seconds": cpu,
        "torch": torch.__version__,
        "features": "frozen" if frozen else "fine-tuned (the authors' code)",
    }
    out.write_text(json.dumps(record, indent=2) + "\n")


def mmrec_commit(mmrec: Path) -> str | None:
    """The checkout's commit, when it is a git folder."""
    done = subprocess.run(
        ["git", "-C", str(mmrec), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mmrec", type=Path, required=True, help="a checkout of MMRec")
    parser.add_argument(
        "--config", type=Path, default=Path("configs/multimodal-ml-latest-small.toml")
    )
    parser.add_argument("--modality", choices=MODALITIES, default="text")
    parser.add_argument(
        "--frozen", action="store_true", help="keep the features fixed, as tastemaker does"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=SETTINGS["stopping_step"],
        help="epochs without a better validation score before stopping (the authors': 20)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # the data folder
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    mmrec = args.mmrec.resolve()
    if not (mmrec / "src" / "models" / "bm3.py").is_file():
        raise SystemExit(f"{mmrec} is no MMRec checkout (no src/models/bm3.py): pass --mmrec DIR")
    settings = {**SETTINGS, "stopping_step": args.patience}
    if args.worker is not None:
        worker(mmrec, args.worker, args.out, args.frozen, settings)
        return
    from tastemaker.atomic import write_text
    from vs_recbole import recbole_python

    started = datetime.now(UTC).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mmrec-") as scratch:
        folder = Path(scratch)
        exported = export(args.config, folder, args.modality)
        out = folder / "record.json"
        python = str(recbole_python())
        command = [python, __file__, "--mmrec", str(mmrec), "--worker", str(folder)]
        command += ["--patience", str(args.patience)] + ["--frozen"] * args.frozen
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        subprocess.run([*command, "--out", str(out)], cwd=folder, env=env, check=True)
        record = json.loads(out.read_text())
    result = {
        "date": started,
        "config": str(args.config),
        "mmrec_commit": mmrec_commit(mmrec),
        "settings": settings,
        "protocol": "all items ranked, the user's training items masked (valid and test)",
        "load_average_1min": [load, os.getloadavg()[0]],
        **exported,
        **record,
    }
    write_text(result_path(args.modality, args.frozen), json.dumps(result, indent=2) + "\n")
    best = result["test_at_best"]
    print(
        f"MMRec BM3: best epoch {result['best_epoch']}, test recall@20 {best['recall@20']:.4f}, "
        f"ndcg@20 {best['ndcg@20']:.4f} ({result['cpu_seconds']:.0f} CPU-s)"
    )


if __name__ == "__main__":
    main()
