"""The Python API of a whole run: prepare data, train, evaluate, recommend.

The CLI is a thin shell over these functions; notebooks and scripts call them
directly. Model selection uses the validation part only; :func:`evaluate` on
``part="test"`` is meant to be called once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import polars as pl

from tastemaker.config import DataConfig, EvalConfig, FeaturesConfig, ModelSpec, SplitConfig
from tastemaker.data import filters
from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.data.sources.registry import load_configured
from tastemaker.data.splits import make_split
from tastemaker.data.vocab import id_list
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.evaluation.ranking import evaluate_split
from tastemaker.evaluation.report import EvaluationReport
from tastemaker.models.base import Recommender
from tastemaker.models.fold_in import recommend_for_items
from tastemaker.models.multimodal import MultimodalConfig
from tastemaker.models.registry import create_model
from tastemaker.models.training import EpochCallback, IterativeRecommender


def prepare(data: DataConfig, split: SplitConfig, events: Path | None = None) -> Split:
    """Load a data set, clean it as configured, and split it; ``events``: a feedback
    file of ``tastemaker serve`` whose events are appended before cleaning."""
    ds = load_configured(data)
    if events is not None:
        from tastemaker.data.sources.events import read_events, with_events

        ds = with_events(ds, read_events(events), source=str(events))
    if data.dedupe != "none":
        ds = filters.deduplicate(ds, data.dedupe)
    if data.threshold is not None:
        ds = filters.implicit(ds, data.threshold)
    if data.min_user > 1 or data.min_item > 1:
        ds = filters.k_core(ds, data.min_user, data.min_item)
    return make_split(
        ds, split.kind, ratios=split.ratios, seed=split.seed, cold_items=split.cold_items
    )


def item_features(
    catalog: Catalog,
    modalities: Iterable[str] = ("text",),
    cfg: FeaturesConfig | None = None,
    *,
    progress: bool = True,
) -> dict[str, ItemEmbeddings]:
    """Vectors of ``catalog``'s items for each modality, through the embedding store."""
    from tastemaker.data.sources.registry import default_cache_dir
    from tastemaker.encoders.base import create_encoder
    from tastemaker.encoders.store import EmbeddingStore, encode_catalog

    cfg = cfg or FeaturesConfig()
    store = EmbeddingStore(Path(cfg.store or default_cache_dir().parent / "embeddings"))
    settings: dict[str, dict[str, object]] = {
        "text": {"model": cfg.text_model, "template": cfg.template},
        "image": {"model": cfg.image_model},
    }
    features = {}
    for modality in dict.fromkeys(modalities):
        if modality not in settings:
            raise ConfigError(f"unknown modality '{modality}'", "use 'text' and/or 'image'")
        params = {k: v for k, v in settings[modality].items() if v is not None}
        encoder = create_encoder(modality, **params)
        features[modality] = encode_catalog(catalog, encoder, store, progress=progress)
    return features


def train(
    split: Split,
    spec: ModelSpec | None,
    features: Mapping[str, ItemEmbeddings] | FeaturesConfig | None = None,
    *,
    resume: Path | None = None,
    on_epoch: EpochCallback | None = None,
) -> Recommender:
    """Fit a registered model on train, early-stopping on validation when there is one.

    Multimodal models also get item ``features``: given, or encoded (cached) from the
    split's catalog as a :class:`FeaturesConfig` says (defaults when None). ``resume``,
    a folder saved by an iteratively trained model, continues that run where it stopped
    (``spec``, when given, must name its model and may only raise epochs or patience);
    models fitted in one go have nothing to resume (a ConfigError). Iterative models
    call ``on_epoch`` after every epoch.
    """
    valid = split.valid if len(split.valid) else None
    if resume is None:
        spec = spec or ModelSpec()
        model = create_model(spec.name, **spec.params)
        if isinstance(model, IterativeRecommender) and on_epoch is not None:
            model.on_epoch = on_epoch
        return model.fit(split.train, valid, features=model_features(model, split, features))
    saved = Recommender.load(resume)
    if not isinstance(saved, IterativeRecommender):
        raise ConfigError(
            f"model '{saved.name}' in {resume} is fitted in one go, so there is no run to resume",
            "train it again without --resume",
        )
    if spec is not None and spec.name != saved.name:
        raise ConfigError(
            f"model '{spec.name}' differs from the saved run's model '{saved.name}'",
            "resume with the saved model, or train anew without --resume",
        )
    if on_epoch is not None:
        saved.on_epoch = on_epoch
    return saved.resume(split.train, valid, **(spec.params if spec is not None else {}))


def model_features(
    model: Recommender,
    split: Split,
    features: Mapping[str, ItemEmbeddings] | FeaturesConfig | None = None,
) -> Mapping[str, ItemEmbeddings] | None:
    """The item features ``model`` reads: ``features`` as given, or encoded (cached) from
    the split's catalog as a :class:`FeaturesConfig` says; None for a model that reads no
    content. Callers that fit many models (tuning) call it once and share the result."""
    if not model.requires_features:
        return None
    if features is not None and not isinstance(features, FeaturesConfig):
        return features
    config = model.config
    modalities = config.modalities if isinstance(config, MultimodalConfig) else ("text",)
    return item_features(split.catalog, modalities, features)


def evaluate(
    model: Recommender,
    split: Split,
    part: Literal["valid", "test"] = "valid",
    cfg: EvalConfig | None = None,
) -> EvaluationReport:
    """Full-ranking metrics of ``model`` on one part, with everything needed to reproduce them."""
    cfg = cfg or EvalConfig()
    metrics = evaluate_split(
        model, split, part, ks=cfg.ks, metrics=cfg.metrics, batch_size=cfg.batch_size
    )
    return EvaluationReport.from_split(
        split, part, model.name, model.config.model_dump(mode="json"), metrics, list(cfg.ks)
    )


def recommend(model: Recommender, split: Split, users: Sequence[str], k: int = 10) -> pl.DataFrame:
    """Top-``k`` items ``users`` never interacted with, with titles (raw IDs in and out)."""
    wanted = id_list(users, "users")
    # Everything known about the users: sequential models condition on it, and none of
    # it is recommended back.
    known = Interactions.concat([split.train, split.valid, split.test])
    return _with_titles(model.recommend(wanted, k=k, context=known), split)


def recommend_new_user(
    model: Recommender, split: Split, items: Sequence[str], k: int = 10
) -> pl.DataFrame:
    """Top-``k`` items, with titles, for a user the model was not trained on, known only by
    ``items`` (raw IDs, oldest first): fold-in, no retraining (:mod:`models.fold_in`)."""
    return _with_titles(recommend_for_items(model, items, k), split)


def _with_titles(recs: pl.DataFrame, split: Split) -> pl.DataFrame:
    titles = split.catalog.frame.select("item_id", "title")
    return recs.join(titles, on="item_id", how="left", maintain_order="left")
