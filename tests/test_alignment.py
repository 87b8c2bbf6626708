"""Cross-modal alignment: the InfoNCE loss and recall by hand, learning, files, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from tastemaker.atomic import OUTPUT_MARKER
from tastemaker.encoders import ItemEmbeddings
from tastemaker.errors import ConfigError, DataError
from tastemaker.pretrain import AlignedSpace, info_nce, retrieval_metrics, train_alignment
from tastemaker.pretrain.alignment import chance_retrieval, metric_table, retrieval_markdown

from .test_cli import assert_user_error, movielens, run  # noqa: F401 - movielens: a fixture


def features(vectors: np.ndarray, modality: str, mask=None, encoder="enc") -> ItemEmbeddings:
    n = len(vectors)
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    vectors = np.where(mask[:, None], vectors, 0).astype(np.float32)
    return ItemEmbeddings([f"i{k}" for k in range(n)], vectors, mask, encoder, modality)


def synthetic(n: int = 300, seed: int = 0) -> tuple[ItemEmbeddings, ItemEmbeddings]:
    """32-d "images" and 12-d unit "texts" = a random linear map of the image plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 32))
    y = x @ rng.normal(size=(32, 12)) + 1.5 * rng.normal(size=(n, 12))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return features(x, "image", encoder="img-enc"), features(y, "text", encoder="txt-enc")


SMALL = {"dim": 16, "hidden": 32, "epochs": 80, "batch_size": 64, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def trained() -> tuple[AlignedSpace, ItemEmbeddings, ItemEmbeddings]:
    torch.set_num_threads(1)
    image, text = synthetic()
    space = train_alignment(image, text, {**SMALL, "test_fraction": 0.25}, progress=False)
    return space, image, text


# --- the loss and the metric by hand --------------------------------------------------------


def test_info_nce_matches_hand_computed_2x2() -> None:
    # logits = 2 * [[1, 0], [0, 1]] @ [[.6, .8], [0, 1]]^T = [[1.2, 0], [1.6, 2]]
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    i2t = (math.log(1 + math.exp(-1.2)) + math.log(1 + math.exp(-0.4))) / 2  # rows
    t2i = (math.log(1 + math.exp(0.4)) + math.log(1 + math.exp(-2.0))) / 2  # columns
    loss = info_nce(image, text, torch.tensor(math.log(2.0)))
    assert loss.item() == pytest.approx((i2t + t2i) / 2, abs=1e-6)


def test_info_nce_matches_hand_computed_3x3() -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(size=(3, 4))
    text = rng.normal(size=(3, 4))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    scale = 1 / 0.07
    s = [[scale * sum(a * b for a, b in zip(u, v, strict=True)) for v in text] for u in image]
    rows = [math.log(sum(math.exp(x) for x in s[i])) - s[i][i] for i in range(3)]
    cols = [math.log(sum(math.exp(s[j][i]) for j in range(3))) - s[i][i] for i in range(3)]
    want = (sum(rows) / 3 + sum(cols) / 3) / 2
    got = info_nce(
        torch.tensor(image), torch.tensor(text), torch.tensor(math.log(scale), dtype=torch.float64)
    )
    assert got.item() == pytest.approx(want, rel=1e-9)


def test_retrieval_recall_by_hand_with_ties_counted_against() -> None:
    sims = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.4], [0.2, 0.3, 0.3]])
    result = retrieval_metrics(sims, np.eye(3), ks=(1, 2, 3))
    # image->text ranks 0, 2 (0.5 and a tie above 0.4), 1 (a tie); text->image ranks 0, 0, 1.
    assert result.image_to_text == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})
    assert result.text_to_image == pytest.approx({1: 2 / 3, 2: 1.0, 3: 1.0})
    assert result.as_dict()["t2i_r@1"] == pytest.approx(2 / 3)
    assert chance_retrieval(50).as_dict() == {"i2t_r@1": 0.02, "i2t_r@10": 0.2} | {
        "t2i_r@1": 0.02,
        "t2i_r@10": 0.2,
    }


# --- learning -------------------------------------------------------------------------------


def test_alignment_lifts_heldout_recall_far_above_the_baselines(trained) -> None:
    space, _, _ = trained
    m = space.metrics
    assert space.n_test == 75 and m["chance"]["i2t_r@1"] == pytest.approx(1 / 75)
    for key in ("i2t_r@1", "t2i_r@1"):
        assert m["aligned"][key] >= 0.8, m
        assert m["untrained"][key] <= 0.1, m
    assert m["ridge"]["i2t_r@10"] >= 0.9  # the data are linear: the ridge map must find it
    assert space.log[0]["valid_loss"] > min(r["valid_loss"] for r in space.log)
    assert space.best_epoch == min(space.log, key=lambda r: r["valid_loss"])["epoch"]
    parts = space.split
    assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (195, 30, 75)
    assert not set(parts["test"]) & (set(parts["train"]) | set(parts["valid"]))


def test_only_items_with_both_masks_are_pairs_and_the_split_is_seeded() -> None:
    image, text = synthetic(n=60)
    image_mask = np.arange(60) % 5 != 0  # 12 items without an image
    text_mask = np.arange(60) % 7 != 0  # 9 without a text, 2 of them also without an image
    image = features(image.vectors, "image", image_mask)
    text = features(text.vectors, "text", text_mask)
    config = {**SMALL, "epochs": 2}
    space = train_alignment(image, text, config, progress=False)
    used = {i for part in space.split.values() for i in part}
    assert used == {f"i{k}" for k in range(60) if image_mask[k] and text_mask[k]}
    assert len(used) == 60 - 12 - 9 + 2
    again = train_alignment(image, text, config, progress=False)
    assert again.split == space.split
    np.testing.assert_array_equal(again.embed_text(text), space.embed_text(text))
    assert not space.embed_image(image)[~image_mask].any()  # masked rows stay zero


def test_bad_inputs_are_clear_errors() -> None:
    image, text = synthetic(n=10)
    with pytest.raises(DataError, match="at least 2"):
        train_alignment(image, text, {"valid_fraction": 0.05, "test_fraction": 0.1})
    with pytest.raises(DataError, match="image ItemEmbeddings first"):
        train_alignment(text, image)
    with pytest.raises(ConfigError, match="valid_fraction"):
        train_alignment(image, text, {"valid_fraction": 0.5, "test_fraction": 0.5})
    with pytest.raises(ConfigError, match="epochs"):
        train_alignment(image, text, {"epochs": 0})


# --- files ------------------------------------------------------------------------------


def test_save_load_round_trip_and_encoder_checks(trained, tmp_path: Path) -> None:
    space, image, text = trained
    space.save(tmp_path / "space")
    files = {p.name for p in (tmp_path / "space").iterdir()}
    assert files == {
        "space.json", "space.safetensors", "training_log.json", "metrics.json", "metrics.md",
        "training.png", OUTPUT_MARKER,
    }  # fmt: skip
    assert (tmp_path / "space" / "training.png").read_bytes()[:4] == b"\x89PNG"
    assert "| aligned space (InfoNCE heads) |" in (tmp_path / "space" / "metrics.md").read_text()
    assert json.loads((tmp_path / "space" / "metrics.json").read_text())["n_test"] == 75

    loaded = AlignedSpace.load(tmp_path / "space", image_encoder="img-enc")
    np.testing.assert_array_equal(loaded.embed_image(image), space.embed_image(image))
    np.testing.assert_array_equal(loaded.embed_text(text.vectors), space.embed_text(text.vectors))
    assert (loaded.log, loaded.split, loaded.metrics) == (space.log, space.split, space.metrics)
    assert loaded.temperature == pytest.approx(space.temperature)
    unit = np.linalg.norm(loaded.embed_image(image), axis=1)
    np.testing.assert_allclose(unit, 1.0, atol=1e-5)

    with pytest.raises(DataError, match="trained on image features of 'img-enc'"):
        AlignedSpace.load(tmp_path / "space", image_encoder="efficientnet-lite0")
    other = dataclasses.replace(text, encoder_id="another-text-model")
    with pytest.raises(DataError, match="not of 'another-text-model'"):
        loaded.embed_text(other)
    with pytest.raises(DataError, match="takes 32-d image features"):
        loaded.embed_image(np.zeros((2, 31), np.float32))
    with pytest.raises(DataError, match="text features where image features belong"):
        loaded.embed_image(text)
    with pytest.raises(DataError, match="missing or invalid"):
        AlignedSpace.load(tmp_path / "nowhere")


def test_retrieval_table_names_methods_rounds_recalls_and_marks_missing_ones() -> None:
    metrics = {"aligned": {"i2t_r@1": 0.12345, "i2t_r@10": 0.5}, "mine": {"t2i_r@1": 1.0}}
    header, rows = metric_table(metrics)
    assert header[0] == "method" and header[1:] == [
        "image→text R@1", "image→text R@10", "text→image R@1", "text→image R@10",
    ]  # fmt: skip
    assert rows == [
        ["aligned space (InfoNCE heads)", "0.123", "0.500", "–", "–"],
        ["mine", "–", "–", "1.000", "–"],
    ]
    table = retrieval_markdown(metrics, 7, "img", "txt").splitlines()
    assert table[0].startswith("Cross-modal retrieval on 7 held-out items (image: `img`")
    assert table[3] == "|---|---:|---:|---:|---:|"  # recalls right-aligned
    assert "No test items" in retrieval_markdown({}, 0, "img", "txt")


# --- the command --------------------------------------------------------------------------


def test_cli_align_writes_the_space_and_reports(movielens: Path, tmp_path: Path) -> None:  # noqa: F811
    posters = tmp_path / "posters"
    posters.mkdir()
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    for movie in range(1, 25):  # 24 of the 30 movies get a poster: crops of four photos
        photo = photos[movie % 4]
        h, w = photo.shape[:2]
        box = (movie * 7, movie * 5, w - movie * 3, h - movie * 4)
        Image.fromarray(photo).crop(box).save(posters / f"{movie}.jpg")
    out, store = tmp_path / "aligned", tmp_path / "store"
    args = ("pretrain", "align", "--data", movielens, "--store", store, "--out", out)
    code, output = run(*args, "--posters", posters, "--epochs", "3", "--test-fraction", "0.25")
    assert code == 0, output
    assert "Held-out retrieval (6 items)" in output and "chance" in output
    space = AlignedSpace.load(out, image_encoder="efficientnet-lite0")
    assert (space.image_dim, space.text_dim) == (1280, 384)
    assert len(space.log) <= 3 and sum(len(p) for p in space.split.values()) == 24
    assert space.metrics["chance"]["i2t_r@1"] == pytest.approx(1 / 6)

    code, output = run(*args, "--valid-fraction", "0.95")
    assert_user_error(code, output, "valid_fraction")
    code, output = run("pretrain", "align", "--data", movielens, "--store", store, "--out", out)
    assert_user_error(code, output, "only 0 items have both an image and a text", "--posters")


# --- seeding --------------------------------------------------------------------------------


def test_training_leaves_the_global_rng_alone_and_one_seed_gives_one_space() -> None:
    image, text = synthetic(n=60)
    config = {**SMALL, "epochs": 3, "dropout": 0.3}  # dropout draws masks during training
    before = torch.random.get_rng_state()
    first = train_alignment(image, text, config, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.rand(7)  # a caller's own draws between two runs change nothing
    second = train_alignment(image, text, config, progress=False)
    state, again = first.module.state_dict(), second.module.state_dict()
    assert state.keys() == again.keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, again[name]), name
    assert [r["loss"] for r in first.log] == [r["loss"] for r in second.log]
    other = train_alignment(image, text, {**config, "seed": 1}, progress=False)
    changed = other.module.state_dict()
    assert any(not torch.equal(changed[name], tensor) for name, tensor in state.items())
