"""What a running service holds: the data, its lookups, the feedback store and the models.

The models are one immutable :class:`ModelSet` behind one attribute. ``/admin/reload``
loads a complete new set first and then replaces the reference (one assignment,
atomic under the GIL); a request takes the set once (:meth:`ServeState.current`) and
uses that object to the end, so requests in flight finish on the old models and
none sees half of each. A reload that fails leaves the old set serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import polars as pl

from tastemaker.config import DataConfig
from tastemaker.data.catalog import IMAGE, ITEM_ID, TITLE
from tastemaker.data.interactions import RATING, TIMESTAMP, USER_ID
from tastemaker.errors import ConfigError
from tastemaker.generation.data import Data, data_parts, load_data
from tastemaker.generation.history import known_interactions
from tastemaker.models.base import Recommender
from tastemaker.serve.feedback import Event, FeedbackStore
from tastemaker.serve.problems import ApiError
from tastemaker.serve.search import CatalogSearch
from tastemaker.serve.settings import ServeSettings
from tastemaker.serve.similar import ItemSimilarity

log = logging.getLogger("tastemaker.serve")

MODEL_CONFIG = "config.json"  # what marks a folder written by Recommender.save
PREFERRED_DEFAULT = "bpr"


@dataclass(frozen=True)
class ModelSet:
    """The models served together, by name, and the one used when a request names none."""

    models: dict[str, Recommender]
    default: str
    folder: Path
    loaded_at: float = field(default_factory=time.time)
    # Each model's item IDs by index, as a plain list: decoding a top-k by list indexing
    # costs microseconds, where a Vocab lookup builds a Series on every request.
    item_ids: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        ids = {name: m.items.ids for name, m in self.models.items() if m.items is not None}
        object.__setattr__(self, "item_ids", ids)

    def get(self, name: str | None) -> Recommender:
        """The model called ``name`` (the default for None); a ConfigError names the others."""
        model = self.models.get(name or self.default)
        if model is None:
            raise ConfigError(
                f"no model called '{name}' is served",
                f"use one of: {', '.join(self.models)} (GET /models lists them)",
            )
        return model


def model_folders(model_dir: Path) -> dict[str, Path]:
    """name → folder: ``model_dir`` itself when it is one saved model, else each of its
    sub-folders that holds one (named after the folder)."""
    if (model_dir / MODEL_CONFIG).is_file():
        return {model_dir.name: model_dir}
    if not model_dir.is_dir():
        raise ConfigError(
            f"model folder {model_dir} does not exist",
            "pass --model-dir a folder written by tastemaker train or tastemaker demo",
        )
    found = {p.name: p for p in sorted(model_dir.iterdir()) if (p / MODEL_CONFIG).is_file()}
    if not found:
        raise ConfigError(
            f"{model_dir} holds no saved model (no sub-folder has a {MODEL_CONFIG})",
            "pass --model-dir a folder of models, e.g. tastemaker-demo/models",
        )
    return found


def load_models(model_dir: Path, default: str | None) -> ModelSet:
    """Every model under ``model_dir``, loaded completely before anything is served."""
    models = {}
    for name, folder in model_folders(model_dir).items():
        started = time.perf_counter()
        models[name] = Recommender.load(folder)
        log.info("loaded model %s from %s in %.1f s", name, folder, time.perf_counter() - started)
    chosen = default or (PREFERRED_DEFAULT if PREFERRED_DEFAULT in models else next(iter(models)))
    if chosen not in models:
        raise ConfigError(
            f"the default model '{chosen}' is not in {model_dir}",
            f"choose one of: {', '.join(models)}",
        )
    return ModelSet(models, chosen, model_dir)


def load_served_data(folder: Path) -> Data:
    """The Split or Dataset folder the service reads (refusing anything else)."""
    if not (folder / "manifest.json").is_file():
        raise ConfigError(
            f"{folder} is not a data folder written by tastemaker (no manifest.json)",
            "pass --data a folder from tastemaker data prepare (or tastemaker-demo/split)",
        )
    return load_data(DataConfig(dataset=str(folder)))


class ServeState:
    """Data, lookups, feedback and the current models of one service."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.data = load_served_data(settings.data)
        self.catalog, parts = data_parts(self.data)
        frame = self.catalog.frame
        self.item_ids: list[str] = frame[ITEM_ID].to_list()
        self.item_index = {item: i for i, item in enumerate(self.item_ids)}
        self.titles: list[str] = frame[TITLE].to_list()
        self.images: dict[str, Path] = {
            item: Path(image)
            for item, image in zip(self.item_ids, frame[IMAGE].to_list(), strict=True)
            if image is not None and Path(image).is_file()  # a URL or a missing file: no poster
        }
        known = known_interactions(parts).frame.sort([USER_ID, TIMESTAMP], maintain_order=True)
        self.data_name = settings.data.name
        # With ratings and times: what the text explanations read as a user's profile.
        self.interactions = known.select(USER_ID, ITEM_ID, RATING, TIMESTAMP)
        self.histories: dict[str, list[str]] = {
            str(user): items
            for user, items in known.group_by(USER_ID, maintain_order=True)
            .agg(pl.col(ITEM_ID))
            .iter_rows()
        }
        self.similarity = ItemSimilarity(self.histories, self.item_index)
        self.search = CatalogSearch(self.catalog)
        self.feedback = FeedbackStore(settings.events_path)
        self.load_error: str | None = None  # why the first model load failed, if it did
        self._models: ModelSet | None = None
        self._reload_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._models is not None

    def current(self) -> ModelSet:
        """The model set to use for the whole of one request."""
        models = self._models
        if models is None:
            raise ApiError(503, "the models are still loading", "retry when GET /ready says ready")
        return models

    def reload(self) -> ModelSet:
        """Load the configured models anew and swap them in (one reload at a time)."""
        with self._reload_lock:
            models = load_models(self.settings.model_dir, self.settings.default_model)
            self._models = models
        return models

    def history(self, user_id: str) -> tuple[list[str], list[Event]]:
        """The user's item IDs, oldest first (known interactions, then feedback events),
        and those feedback events."""
        events = self.feedback.for_user(user_id)
        return [*self.histories.get(user_id, []), *(e.item_id for e in events)], events

    def rated_history(self, user_id: str) -> pl.DataFrame:
        """The user's (item_id, rating, timestamp) rows, oldest first: known interactions,
        then feedback events (a rating may be null)."""
        known = self.interactions.filter(pl.col(USER_ID) == user_id).drop(USER_ID)
        events = pl.DataFrame(
            [(e.item_id, e.rating, e.timestamp) for e in self.feedback.for_user(user_id)],
            schema=known.schema,
            orient="row",
        )
        return pl.concat([known, events])

    def image_path(self, item_id: str) -> Path | None:
        """The poster of ``item_id`` on disk, or None: files are found by item ID only."""
        return self.images.get(item_id)

    def item_view(self, item_id: str, score: float | None = None) -> dict[str, object]:
        """An item as the API shows it in lists: ID, title, poster URL, score."""
        view: dict[str, object] = {
            "item_id": item_id,
            "title": self.titles[self.item_index[item_id]] if item_id in self.item_index else None,
            "image_url": f"/items/{quote(item_id, safe='')}/image"
            if item_id in self.images
            else None,
        }
        if score is not None:
            view["score"] = score
        return view

    def close(self) -> None:
        self.feedback.close()


__all__ = ["ModelSet", "ServeState", "load_models", "model_folders"]
