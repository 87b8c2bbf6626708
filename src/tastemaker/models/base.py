"""The contract every recommender follows: typed config, fit, score, recommend, save, load.

Users speak raw IDs (strings); inside, a model works on contiguous indices of
the training :class:`~tastemaker.data.vocab.Vocab`\\ s, which it keeps, so the
evaluator can call :meth:`Recommender.score_indices` without any ID mapping.
A saved model is a folder of JSON and safetensors (never pickle), so loading
one cannot run code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from pydantic import ValidationError

from tastemaker.atomic import atomic_path
from tastemaker.checkpoint import (
    check_recorded,
    read_json,
    read_tensors,
    recorded,
    write_json,
    write_tensors,
)
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError, DataError
from tastemaker.models.config import ModelConfig, validate_config
from tastemaker.models.registry import get_model_class

if TYPE_CHECKING:
    from tastemaker.encoders.base import ItemEmbeddings

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"
IDS_FILE, LOG_FILE = "ids.json", "training_log.json"
_SEEN_INDPTR, _SEEN_INDICES = "seen.indptr", "seen.indices"
_RECOMMEND_BATCH = 1024  # users scored at once by recommend(): bounds the dense block


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit after an epoch: a KeyboardInterrupt whose ``model`` holds the
    best weights so far and its (resumable) training state, so the work can be saved."""

    def __init__(self, model: Recommender, epoch: int) -> None:
        super().__init__(f"training of '{model.name}' interrupted after epoch {epoch}")
        self.model, self.epoch = model, epoch


class Recommender(ABC):
    """A model that scores every catalog item for a user.

    Subclasses set ``name``, ``config_class`` and ``state_keys`` and implement
    :meth:`_fit`, :meth:`_score_indices`, :meth:`_state` and :meth:`_load_state`.
    Every model is fitted the same way, ``fit(train, valid, features=...)``: models
    that read item content (``requires_features``) take the features in
    :meth:`_use_features`, the others ignore them, so no caller branches on the kind.

    Randomness comes from the model's own ``generator`` (a ``torch.Generator``
    seeded from ``config.seed``, made at construction and again at the start of
    every fit; SPEC 7's per-object ``rng``): fitting twice gives the same model,
    and the global torch/NumPy RNG state is never touched.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    state_keys: ClassVar[tuple[str, ...]]
    requires_features: ClassVar[bool] = False
    scores_are_new: ClassVar[bool] = True  # score_indices returns new tensors: masked in place
    config: ModelConfig
    generator: torch.Generator

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and not isinstance(config, self.config_class):
            raise ConfigError(
                f"model '{self.name}' got a {type(config).__name__}",
                f"pass a {self.config_class.__name__} or keyword parameters",
            )
        base = config.model_dump() if config is not None else {}
        self.config = validate_config(self.config_class, self.name, {**base, **params})
        self._unfit()

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{type(self).__name__}({params})"

    def _unfit(self) -> None:
        self.users: Vocab | None = None
        self.items: Vocab | None = None
        self.seen: sp.csr_matrix | None = None
        self.training_log: list[dict[str, Any]] | None = None
        self.generator = torch.Generator().manual_seed(self.config.seed)

    @property
    def is_fitted(self) -> bool:
        return self.seen is not None

    @property
    def n_items(self) -> int:
        return len(self._fitted()[1])

    def _check_fitted(self) -> None:
        self._fitted()

    def _fitted(self) -> tuple[Vocab, Vocab, sp.csr_matrix]:
        """(users, items, seen) of a fitted model; a ConfigError before :meth:`fit`."""
        if self.users is None or self.items is None or self.seen is None:
            raise self.not_fitted_error()
        return self.users, self.items, self.seen

    def not_fitted_error(self) -> ConfigError:
        """What using state that only :meth:`fit` or :meth:`load` makes raises before them."""
        return ConfigError(
            f"model '{self.name}' is not fitted yet",
            "call fit(train) first, or get a trained model with Recommender.load(path)",
        )

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Interactions,
        valid: Interactions | None = None,
        *,
        features: Mapping[str, ItemEmbeddings] | None = None,
    ) -> Self:
        """Learn from ``train``; iterative models early-stop on ``valid``.

        ``features`` (one :class:`ItemEmbeddings` per modality, e.g. from
        :func:`tastemaker.experiment.item_features`) are required by models that read
        item content and ignored by the others.
        """
        if len(train) == 0:
            raise DataError("the training interactions are empty", "train on a non-empty split")
        if valid is not None and (valid.users != train.users or valid.items != train.items):
            raise DataError(
                "validation interactions use other user/item vocabularies than training",
                "pass parts of one Split (split.train, split.valid)",
            )
        self._unfit()  # a fresh generator: fitting again gives the same model
        with self._unfit_on_failure():
            self._use_features(features, train.items)
            self.users, self.items, self.seen = train.users, train.items, train.to_csr()
            self._fit(train, valid)
        return self

    @contextmanager
    def _unfit_on_failure(self) -> Iterator[None]:
        """A failed fit leaves no half-trained model; an interrupted one keeps its best."""
        try:
            yield
        except TrainingInterrupted:
            raise
        except BaseException:
            self._unfit()
            raise

    def _use_features(self, features: Mapping[str, ItemEmbeddings] | None, items: Vocab) -> None:
        """Take the item features (content models); ID models ignore them."""
        return None

    @abstractmethod
    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        """Learn the model's state; vocabularies and ``self.seen`` are already set."""

    # ------------------------------------------------------------------- scoring
    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        """Scores of all catalog items, (len(user_idx), n_items) float32.

        ``context`` is what is known about the users at scoring time (e.g. train +
        valid when testing), on the training vocabularies; models that read a user's
        history from it (sequential ones) use it, the others ignore it. ``None``
        means the training interactions.
        The tensor is new: callers (the evaluator, :meth:`recommend`) may mask it in place.
        """
        users = self._fitted()[0]
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if user_idx.size and (user_idx.min() < 0 or user_idx.max() >= len(users)):
            raise DataError(
                f"user indices outside 0..{len(users) - 1}",
                "use indices of the training user vocabulary",
            )
        self._check_context(context)
        return self._score_indices(user_idx, context)

    def _check_context(self, context: Interactions | None) -> None:
        """Context indices mean what the model's do only on the same vocabularies."""
        if context is not None and not (
            (context.users is self.users or context.users == self.users)
            and (context.items is self.items or context.items == self.items)
        ):
            raise DataError(
                "the context interactions use other user/item vocabularies than training",
                "pass parts of the Split the model was trained on",
            )

    @abstractmethod
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        """Scores for valid user indices (see :meth:`score_indices`)."""

    def score(self, users: Sequence[str], items: Sequence[str] | None = None) -> np.ndarray:
        """Scores of ``items`` (default: all, in vocabulary order) for raw user IDs."""
        vocab_users, vocab_items, _ = self._fitted()
        scores = self.score_indices(vocab_users.index(users)).numpy()
        return scores if items is None else scores[:, vocab_items.index(items)]

    def recommend(
        self,
        users: Sequence[str],
        k: int = 10,
        exclude_seen: bool = True,
        context: Interactions | None = None,
    ) -> pl.DataFrame:
        """Top-``k`` items per user as rows (user_id, rank, item_id, score), raw IDs only.

        ``context``: the interactions known now (see :meth:`score_indices`). With
        ``exclude_seen`` a user's training (and context) items are never recommended,
        so a user may get fewer than ``k`` rows.
        """
        vocab_users, vocab_items, trained_seen = self._fitted()
        if isinstance(users, str):
            raise ConfigError(
                f"users={users!r} is one string, not a list of user IDs",
                f"pass a list, e.g. recommend([{users!r}])",
            )
        if k < 1:
            raise ConfigError(f"k={k} is invalid", "ask for at least 1 recommendation")
        idx = vocab_users.index(users)
        k = min(k, len(vocab_items))
        self._check_context(context)
        seen = trained_seen if context is None else (trained_seen + context.to_csr()).tocsr()
        user_rows, item_rows, score_rows = [], [], []
        for start in range(0, len(idx), _RECOMMEND_BATCH):
            batch = idx[start : start + _RECOMMEND_BATCH]
            scores = self.score_indices(batch, context)
            if exclude_seen:
                rows, cols = seen[batch].nonzero()
                scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
            top_scores, top_items = torch.topk(scores, k, dim=1)
            user_rows.append(np.repeat(batch, k))
            item_rows.append(top_items.reshape(-1).numpy())
            score_rows.append(top_scores.reshape(-1).numpy())
        user_idx = np.concatenate(user_rows) if user_rows else np.zeros(0, np.int64)
        item_idx = np.concatenate(item_rows) if item_rows else np.zeros(0, np.int64)
        values = np.concatenate(score_rows) if score_rows else np.zeros(0, np.float32)
        frame = pl.DataFrame(
            {
                "user_id": pl.Series(vocab_users.decode(user_idx), dtype=pl.Utf8),
                "rank": pl.Series(np.tile(np.arange(1, k + 1), len(idx)), dtype=pl.Int32),
                "item_id": pl.Series(vocab_items.decode(item_idx), dtype=pl.Utf8),
                "score": pl.Series(values, dtype=pl.Float32),
            }
        )
        return frame.filter(pl.col("score") > -np.inf)

    # --------------------------------------------------------------- persistence
    @abstractmethod
    def _state(self) -> dict[str, torch.Tensor]:
        """The learned tensors, keyed by ``state_keys``."""

    @abstractmethod
    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`_state` returned (vocabularies are already set)."""

    def _fixed_state(self) -> dict[str, torch.Tensor]:
        """Tensors saved with the model that training does not change (item content features)."""
        return {}

    def _load_fixed_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`_fixed_state` saved, removing its keys from ``tensors``."""
        return None  # no fixed state by default

    def _save_extra(self, folder: Path) -> None:
        """Write files beyond config, weights, IDs and log (iterative models: resume state)."""
        return None  # nothing more by default

    def _load_extra(self, folder: Path, fix: str) -> None:
        """Read what :meth:`_save_extra` wrote."""
        return None  # nothing more by default

    def save(self, path: Path | str) -> Path:
        """Write the model to the folder ``path`` atomically (config, weights, IDs, log)."""
        from tastemaker import __version__

        users, items, seen = self._fitted()
        path = Path(path)
        meta = {
            "model": self.name,
            "config": self.config.model_dump(mode="json"),
            "tastemaker_version": __version__,
        }
        tensors = {
            **self._state(),
            **self._fixed_state(),
            _SEEN_INDPTR: torch.from_numpy(seen.indptr.astype(np.int64)),
            _SEEN_INDICES: torch.from_numpy(seen.indices.astype(np.int64)),
        }
        with atomic_path(path, directory=True) as tmp:
            write_json(tmp / CONFIG_FILE, meta)
            write_tensors(tmp / WEIGHTS_FILE, tensors, recorded(self.name, meta["config"]))
            write_json(tmp / IDS_FILE, {"users": users.ids, "items": items.ids}, None)
            if self.training_log is not None:
                write_json(tmp / LOG_FILE, self.training_log, indent=1)
            self._save_extra(tmp)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Recommender:
        """A model saved by :meth:`save`; ``Recommender.load`` picks the right class."""
        path = Path(path)
        refit = "point to a folder written by model.save() or re-train the model"
        if not path.is_dir():
            raise DataError(f"model folder {path} does not exist", refit)
        meta = read_json(path / CONFIG_FILE, refit)
        try:
            model_cls = get_model_class(str(meta["model"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path / CONFIG_FILE} names no model", refit) from exc
        except ConfigError as exc:
            raise DataError(
                f"{path} holds a model unknown to this tastemaker ({exc.problem})",
                "upgrade tastemaker or import the package that defines that model",
            ) from exc
        if not issubclass(model_cls, cls):
            raise DataError(
                f"{path} holds a '{model_cls.name}' model, not a '{cls.name}' model",
                f"load it with Recommender.load or {model_cls.__name__}.load",
            )
        try:
            model = model_cls(model_cls.config_class.model_validate(meta.get("config", {})))
        except ValidationError as exc:
            raise DataError(f"{path / CONFIG_FILE} has an invalid config", refit) from exc
        check_recorded(path, CONFIG_FILE, WEIGHTS_FILE, model.name, model.config)
        ids = read_json(path / IDS_FILE, refit)
        try:
            model.users = Vocab(ids["users"], kind="user")
            model.items = Vocab(ids["items"], kind="item")
        except (KeyError, TypeError) as exc:
            raise DataError(f"{path / IDS_FILE} lacks user or item IDs", refit) from exc
        tensors = read_tensors(path / WEIGHTS_FILE, refit)
        missing = {*model_cls.state_keys, _SEEN_INDPTR, _SEEN_INDICES} - set(tensors)
        if missing:
            raise DataError(
                f"{path / WEIGHTS_FILE} lacks tensors {', '.join(sorted(missing))}", refit
            )
        indices = tensors.pop(_SEEN_INDICES).numpy()
        model.seen = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, tensors.pop(_SEEN_INDPTR).numpy()),
            shape=(len(model.users), len(model.items)),
        )
        model._load_fixed_state(tensors)
        model._load_state(tensors)
        if (path / LOG_FILE).is_file():
            model.training_log = read_json(path / LOG_FILE, refit)
        model._load_extra(path, refit)
        return model
