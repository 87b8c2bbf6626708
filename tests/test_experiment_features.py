"""experiment.item_features through the store, features reaching a multimodal model,
and the [features] config section; a tiny hashing text model stands in for a real one."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from tastemaker import Catalog, experiment
from tastemaker.config import FeaturesConfig, ModelSpec, read_toml, section
from tastemaker.data import splits
from tastemaker.encoders import base as encoders_base
from tastemaker.encoders.text import TextEncoder
from tastemaker.errors import ConfigError
from tastemaker.models import CLCRec

from .conftest import make_dataset


class HashText:
    """A text model without weights: each text's vector is a hash of it."""

    dim = 6
    calls: ClassVar[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        HashText.calls.extend(texts)
        digests = [hashlib.sha256(t.encode()).digest()[: self.dim] for t in texts]
        return np.array([list(d) for d in digests], dtype=np.float32) + 1.0


class FakeText(TextEncoder):
    @property
    def backend(self) -> HashText:  # type: ignore[override]
        return HashText()


@pytest.fixture
def fake_text(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """create_encoder('text', ...) builds a FakeText; returns the params it was given."""
    given: list[dict[str, Any]] = []

    def create(kind: str, **params: Any) -> encoders_base.Encoder:
        assert kind == "text"
        given.append(params)
        return FakeText(**{**params, "model": "hash-text"})

    monkeypatch.setattr(encoders_base, "create_encoder", create)
    HashText.calls = []
    return given


def catalog() -> Catalog:
    return Catalog(
        pl.DataFrame(
            {
                "item_id": [f"i{k}" for k in range(6)],
                "title": ["Heat", "Up", "Alien", "Heat", "Big", "Jaws"],
                "genres": [["Crime"], ["Kids"], ["SciFi"], ["Crime"], [], ["Thriller"]],
            }
        )
    )


def test_item_features_go_through_the_store(fake_text: list, tmp_path: Path) -> None:
    cfg = FeaturesConfig(store=tmp_path / "store", template="{title} ({genres})")
    first = experiment.item_features(catalog(), ["text"], cfg, progress=False)["text"]
    # Items 0 and 3 have the same text: encoded once.
    assert len(HashText.calls) == 5 and "Big" in HashText.calls
    assert fake_text == [{"template": "{title} ({genres})"}]  # None settings left out
    assert first.item_ids == catalog().vocab.ids and first.mask.all()
    assert np.array_equal(first.vectors[0], first.vectors[3])

    HashText.calls = []
    again = experiment.item_features(catalog(), ["text", "text"], cfg, progress=False)
    assert HashText.calls == []  # the second call encodes nothing
    assert list(again) == ["text"] and np.array_equal(again["text"].vectors, first.vectors)
    assert any((tmp_path / "store").iterdir())

    with pytest.raises(ConfigError, match="unknown modality 'audio'"):
        experiment.item_features(catalog(), ["audio"], cfg, progress=False)


def test_train_passes_features_to_multimodal_models(fake_text: list, tmp_path: Path) -> None:
    rows = [(f"u{u}", f"i{i}", 1.0, i) for u in range(12) for i in range(6) if (u + i) % 3]
    ds = make_dataset(rows, n_items=6).replace(catalog=catalog())
    split = splits.random_ratio(ds, seed=0)
    spec = ModelSpec(
        name="clcrec",
        params={"modalities": ["text"], "epochs": 2, "early_stopping_metric": "ndcg@3"},
    )

    cfg = FeaturesConfig(store=tmp_path / "store")
    model = experiment.train(split, spec, cfg)  # encoded from the split's catalog
    assert isinstance(model, CLCRec) and len(HashText.calls) == 5  # 0 and 3 alike
    given = experiment.item_features(split.catalog, ["text"], cfg, progress=False)["text"]
    aligned = given.align(split.items)
    assert np.array_equal(model.content["text"].numpy(), aligned.vectors)

    # Precomputed features are used as given: nothing is encoded.
    HashText.calls = []
    again = experiment.train(split, spec, {"text": given})
    assert HashText.calls == [] and np.array_equal(again.content["text"].numpy(), aligned.vectors)
    # ID-only models ignore features.
    bpr = experiment.train(
        split,
        ModelSpec(
            name="bpr", params={"epochs": 1, "patience": 1, "early_stopping_metric": "ndcg@3"}
        ),
        {"text": given},
    )
    assert not hasattr(bpr, "content")


def test_features_section_validates(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[features]\nstore = "emb"\ntext_model = "m"\n', encoding="utf-8")
    cfg = section(read_toml(path), "features")
    assert cfg == FeaturesConfig(store=Path("emb"), text_model="m")
    assert section({}, "features") == FeaturesConfig()
    path.write_text('[features]\nstor = "emb"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'stor'"):
        section(read_toml(path), "features")
