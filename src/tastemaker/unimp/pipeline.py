"""The Python API of a UniMP run: data in, a trained model, answers for a user.

:func:`prepare` loads a data folder (MovieLens layouts, with a posters folder
when given), splits it leave-one-out in time order, computes the spatial poster
features through the store and reads the per-user tags; :func:`train_unimp`
builds and trains a model on the train part; :func:`load_unimp` rebuilds a saved
one; :func:`ask` answers one task for one user from their train + valid history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tastemaker.data.dataset import Dataset, Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.serialize import ItemDescriber, user_histories
from tastemaker.unimp.tasks import TaskBuilder
from tastemaker.unimp.visual import VisualBank, default_store, spatial_features

if TYPE_CHECKING:
    from tastemaker.unimp.model import UniMP
    from tastemaker.unimp.training import TrainResult

ASK_TASKS = ("recommend", "rating", "explain", "select", "search")


@dataclass
class UniMPData:
    """A split and everything UniMP reads from it."""

    split: Split
    describer: ItemDescriber
    bank: VisualBank
    tags: dict[tuple[str, str], list[str]]
    train: dict[str, list[tuple[str, float | None]]]
    known: dict[str, list[tuple[str, float | None]]]  # train + valid: the test-time history
    test: dict[str, list[tuple[str, float | None]]]
    seen: dict[str, set[str]]  # every item each user rated, in any part

    @property
    def titles(self) -> list[str]:
        return [self.describer.title(i) for i in self.split.items.ids]

    def builder(self, config: UniMPConfig) -> TaskBuilder:
        posters = [
            i for i, row in zip(self.bank.vocab.ids, self.bank.rows, strict=True) if row >= 0
        ]
        return TaskBuilder(self.describer, config, poster_items=posters, tags=self.tags)


def load_data(data: str | Path, posters: Path | None = None) -> Dataset:
    """A data folder, or a known data set's name, with posters when given."""
    from tastemaker.data.sources import load_dataset, load_folder

    path = Path(data).expanduser()
    if path.is_dir():
        return load_folder(path, posters=posters)
    return load_dataset(str(data), posters=posters, download=False)


def user_tags(folder: Path | None) -> dict[tuple[str, str], list[str]]:
    """(user, item) -> the user's own tags, from a MovieLens folder's tags.csv ({} if none)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    from tastemaker.text.sources import read_user_tags

    frame = read_user_tags(Path(folder))
    out: dict[tuple[str, str], list[str]] = {}
    if frame is not None:
        for user, item, tag in (
            frame.sort("timestamp").select("user_id", "item_id", "tag").iter_rows()
        ):
            tags = out.setdefault((str(user), str(item)), [])
            if tag not in tags:
                tags.append(tag)
    return out


def prepare(
    dataset: Dataset,
    config: UniMPConfig,
    *,
    tags_folder: Path | None = None,
    store: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> UniMPData:
    """Leave-one-out split, features, histories and tags of ``dataset``."""
    from tastemaker.data.splits import leave_one_out

    split = leave_one_out(dataset)
    catalog = dataset.catalog.subset(split.items.ids)
    if catalog.n_images and config.fusion != "none":
        bank = spatial_features(
            catalog, split.items, store or default_store(), grid=config.grid,
            image_size=config.image_size, device=device, progress=progress,
        )  # fmt: skip
    else:
        bank = VisualBank.empty(split.items)
    train, valid, test = (split.part(p) for p in ("train", "valid", "test"))
    everything = Interactions.concat([train, valid, test]).frame
    seen: dict[str, set[str]] = {}
    for user, item in everything.select("user_id", "item_id").iter_rows():
        seen.setdefault(str(user), set()).add(str(item))
    return UniMPData(
        split=split,
        describer=ItemDescriber(catalog, config.title_words),
        bank=bank,
        tags=user_tags(tags_folder),
        train=user_histories(train),
        known=user_histories(Interactions.concat([train, valid])),
        test=user_histories(test),
        seen=seen,
    )


def train_unimp(
    data: UniMPData,
    config: UniMPConfig,
    out: Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    resume: bool = False,
    per_user: int = 16,
    progress: bool = True,
) -> tuple[UniMP, TrainResult]:
    """Build a model on ``data``'s items and train it on the train part's task pools."""
    from tastemaker.unimp.examples import training_pool
    from tastemaker.unimp.model import build_model
    from tastemaker.unimp.training import train

    table = None
    if config.item_init == "id":
        from tastemaker.unimp.item_table import id_item_table

        table = id_item_table(data.split.part("train"), set(data.train), data.split.items,
                              config.retrieval_dim, config.seed)  # fmt: skip
    model = build_model(config, data.bank, data.titles, device=device, dtype=dtype,
                        item_table=table)  # fmt: skip
    pool = training_pool(
        data.builder(config), data.train, config.tasks, per_user=per_user, seed=config.seed
    )
    return model, train(model, pool, out, resume=resume, progress=progress)


def load_unimp(
    model_dir: Path, data: UniMPData, *, device: str = "cpu", dtype: str = "float32"
) -> UniMP:
    """A saved model (``OUT/model``) rebuilt on ``data``'s items."""
    from tastemaker.unimp.model import build_model
    from tastemaker.unimp.saved import load_weights, read_config

    config = read_config(model_dir)
    model = build_model(config, data.bank, data.titles, device=device, dtype=dtype)
    load_weights(model, model_dir)
    return model.eval()


def ask(
    model: UniMP,
    data: UniMPData,
    task: str,
    user: str,
    *,
    item: str | None = None,
    query: str | None = None,
    k: int = 10,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """One task's answer for ``user`` as (answer, score) pairs, best first.

    recommend: the retrieval head's top ``k`` unseen items (raw IDs); search: the
    same among items matching ``query`` re-scored by constrained decoding; rating /
    explain: the answer for ``item``; select: option letters for ``item`` and K-1
    random posters.
    """
    from tastemaker.unimp.batching import encode
    from tastemaker.unimp.constrained import answer_scores, constrained_decode
    from tastemaker.unimp.evaluate import retrieval_scores

    if task not in ASK_TASKS:
        raise ConfigError(f"unknown task '{task}'", f"use one of: {', '.join(ASK_TASKS)}")
    history = data.known.get(str(user))
    if not history:
        raise DataError(
            f"user '{user}' has no history in this data", "pass a user ID of the data set"
        )
    builder = data.builder(model.config)
    vocab = data.split.items
    rng = np.random.default_rng(seed)
    if task in ("rating", "explain", "select") and item is None:
        raise ConfigError(f"the {task} task needs an item", "pass --item ITEM_ID")
    if task == "recommend":
        example = builder.recommend(str(user), history, history[-1][0])
        scores = retrieval_scores(model, [example])[0]
        scores[vocab.index([i for i, _ in history])] = -np.inf
        top = np.argsort(-scores)[:k]
        return [(vocab.ids[i], float(scores[i])) for i in top]
    if task == "search":
        if not query:
            raise ConfigError("the search task needs a query", "pass --query TEXT")
        matching = [
            i
            for i in vocab.ids
            if query.lower() in " ".join(data.describer.fields(i).values()).lower()
        ]
        if not matching:
            raise DataError(f"no item matches '{query}'", "pass a genre, tag or title word")
        sentence = builder.search(str(user), history, matching[0], rng)
        example = (
            sentence if sentence is not None else builder.recommend(str(user), history, matching[0])
        )
        titles = [data.describer.title(i) for i in matching[:200]]
        scores = answer_scores(model, encode(model.tokenizer, example, vocab, answer=False), titles)
        order = np.argsort(-scores)[:k]
        return [(matching[i], float(scores[i])) for i in order]
    if item not in set(vocab.ids):
        raise DataError(f"item '{item}' is not in this data", "pass an item ID of the data set")
    if task == "rating":
        example = builder.rating(str(user), history, item, 0.0)
    elif task == "select":
        example = builder.select(str(user), history, item, rng, data.seen.get(str(user), set()))
        if example is None:
            raise DataError(f"item '{item}' has no poster to select", "pass an item with a poster")
    else:  # explain
        example = builder.explain(str(user), history, item, need_tags=False)
        prompt = encode(model.tokenizer, example, vocab, answer=False)
        tags = sorted({t for tags in data.tags.values() for t in tags}) or [
            "(no tags in this data)"
        ]
        return [(constrained_decode(model, prompt, tags), 1.0)]
    prompt = encode(model.tokenizer, example, vocab, answer=False)
    probs = np.exp(answer_scores(model, prompt, example.options))
    order = np.argsort(-probs)
    return [(example.options[i], float(probs[i])) for i in order]
