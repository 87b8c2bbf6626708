"""Evaluating generation: SSIM against scikit-image, perceptual features, PMG's ablation table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data as skdata
from skimage.metrics import structural_similarity

from tastemaker import Catalog, Dataset
from tastemaker.data.splits import make_split
from tastemaker.encoders import clip_encoders
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.evaluation import (
    METRICS,
    evaluate_generation,
    read_pairs,
    sample_pairs,
)
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.scoring import ClipScorer, EncoderScorer
from tastemaker.generation.similarity import perceptual_features, pixels, ssim
from tastemaker.generation.soft_training import train_soft_tokens

from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_pipeline import movie_dataset, tiny_config, tiny_llm  # noqa: F401 - fixture
from .test_scoring import FixedScorer


def reference_ssim(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    """scikit-image's SSIM set up as Wang et al. (2004): Gaussian window, population moments."""
    return float(
        structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **kwargs
        )
    )


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()[60:160, 150:270].astype(np.float64) / 255.0


# --- SSIM ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(24, 31), (24, 31, 3)])
def test_ssim_is_one_exactly_for_identical_images(seed: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(seed)
    image = rng.random(shape)
    other = np.clip(image + rng.normal(0, 0.05, shape), 0, 1)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert ssim(image, other) < 1.0
    assert ssim(image, other) == pytest.approx(ssim(other, image))


def test_ssim_is_low_for_noise_and_orders_by_damage(astronaut: np.ndarray) -> None:
    noise = np.random.default_rng(0).random(astronaut.shape)
    assert ssim(astronaut, noise) < 0.05
    assert ssim(astronaut, astronaut * 0.5) < 0.9  # luminance and contrast both halved
    blurred = gaussian_filter(astronaut, (1.2, 1.2, 0))
    assert ssim(astronaut, noise) < ssim(astronaut, blurred) < 1.0


def test_colour_ssim_is_scikit_image_with_wang_settings(astronaut: np.ndarray) -> None:
    """Colour: the mean over channels of an 11x11 (σ 1.5, truncate 3.5) Gaussian SSIM."""
    noisy = np.clip(astronaut + np.random.default_rng(1).normal(0, 0.1, astronaut.shape), 0, 1)
    want = reference_ssim(astronaut, noisy, channel_axis=-1, data_range=1.0)
    assert ssim(astronaut, noisy) == pytest.approx(want, abs=1e-12)
    per_channel = [
        reference_ssim(astronaut[..., c], noisy[..., c], data_range=1.0) for c in range(3)
    ]
    assert ssim(astronaut, noisy) == pytest.approx(np.mean(per_channel), abs=1e-12)
    # data_range is the pixels' range: the same images in 0-255 give the same SSIM
    assert ssim(astronaut * 255, noisy * 255, data_range=255.0) == pytest.approx(want, abs=1e-9)
    assert ssim(astronaut * 255, noisy * 255) != pytest.approx(want, abs=1e-3)


def test_ssim_rejects_mismatched_or_tiny_images() -> None:
    with pytest.raises(DataError, match="resize them to match"):
        ssim(np.zeros((16, 16)), np.zeros((16, 17)))
    with pytest.raises(DataError, match="at least 11 pixels"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))


def test_pixels_crop_to_the_aspect_and_scale_to_unit_range() -> None:
    wide = np.zeros((2, 6, 3), np.uint8)
    wide[:, 2:4] = 255  # a white centre square between black sides
    image = Image.fromarray(wide)
    assert np.array_equal(pixels(image, (2, 2)), np.ones((2, 2, 3)))
    plain = pixels(image)
    assert plain.shape == (2, 6, 3) and plain.max() == 1.0 and plain.min() == 0.0


# --- perceptual features ------------------------------------------------------------------------


class Reversed(EncoderScorer):
    """A scorer whose joint space reverses the image features: not what perception compares."""

    def project_image(self, vectors: np.ndarray) -> np.ndarray:
        return vectors[:, ::-1] * np.arange(1, vectors.shape[1] + 1)


def test_perceptual_features_are_the_encoder_before_projection(tiny_clip: Path) -> None:  # noqa: F811
    photos = [Image.fromarray(skdata.coffee()), Image.fromarray(skdata.chelsea())]
    clip = ClipScorer(str(tiny_clip))
    np.testing.assert_allclose(perceptual_features(clip, photos), clip.image_features(photos))
    projected = Reversed(*clip_encoders(str(tiny_clip)))
    raw = perceptual_features(projected, photos)
    np.testing.assert_allclose(raw, clip.image_features(photos), atol=1e-6)
    assert not np.allclose(raw, projected.image_features(photos), atol=1e-3)
    fixed = FixedScorer()
    blanks = [Image.new("RGB", (w, 1)) for w in (1, 3)]
    np.testing.assert_allclose(perceptual_features(fixed, blanks), [[1, 0], [-1, 0]])


# --- pairs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return movie_dataset(tmp_path_factory.mktemp("eval-posters"))


def test_sample_pairs_takes_one_liked_unseen_test_item_per_user(movies: Dataset) -> None:
    split = make_split(movies, "loo")
    pairs = sample_pairs(split, 10, seed=0)
    test = dict(zip(*split.test.frame.select("user_id", "item_id"), strict=True))
    # u3's only rating is 1 (not liked), and is their train history anyway: left out.
    assert sorted(u for u, _ in pairs) == ["u1", "u2", "u4"]
    for user, item in pairs:
        assert test[user] == item
        assert item not in split.train.frame.filter(user_id=user)["item_id"].to_list()
    assert sample_pairs(split, 10, seed=0) == pairs
    assert len(sample_pairs(split, 2, seed=1)) == 2
    assert sample_pairs(split, 10, min_rating=None) != [] and len(pairs) == 3


def test_read_pairs(tmp_path: Path) -> None:
    good = tmp_path / "pairs.csv"
    good.write_text("user_id,item_id,note\n001,0042,x\nu2,m5,y\n")
    assert read_pairs(good) == [("001", "0042"), ("u2", "m5")]  # IDs stay text
    (tmp_path / "bad.csv").write_text("user,item_id\n1,2\n")
    with pytest.raises(DataError, match="no user_id column"):
        read_pairs(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="cannot read pairs"):
        read_pairs(tmp_path / "missing.csv")


# --- the ablation ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge_clip(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The tiny CLIP with every weight moved by seeded noise: a scorer with other weights."""
    import shutil

    from transformers import CLIPModel

    folder = tmp_path_factory.mktemp("judge-clip") / "clip"
    shutil.copytree(tiny_clip, folder)
    model = CLIPModel.from_pretrained(tiny_clip)
    noise = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=noise))
    model.save_pretrained(folder)
    return folder


def test_evaluate_generation_compares_the_four_methods(
    movies: Dataset,
    tiny_llm: Path,  # noqa: F811
    tiny_clip: Path,  # noqa: F811
    judge_clip: Path,
    tmp_path: Path,
) -> None:
    torch.set_num_threads(1)
    # m5 keeps its poster; m3's is removed: the "missing image" case has no target scores.
    frame = movies.catalog.frame.with_columns(
        pl.when(pl.col("item_id") == "m3").then(None).otherwise(pl.col("image")).alias("image")
    )
    data = movies.replace(catalog=Catalog(frame))
    statistical = {"extractor": "statistical", "statistical": {"mmr_lambda": 1.0}}
    config = tiny_config(tiny_llm, tiny_clip, weights=["1:3", "3:1"], keywords=statistical)
    pipe = PersonalizedGenerationPipeline(config)
    soft = {"steps": 3, "batch_size": 2, "checkpoint_every": 1000}
    train_soft_tokens(pipe, data, ["u1"], tmp_path / "soft", soft, progress=False)

    pairs = [("u1", "m5"), ("u2", "m3")]
    judge = ClipScorer(str(judge_clip))
    with pytest.raises(ConfigError, match="the judge is the selector"):
        evaluate_generation(pipe, data, pairs, judge=pipe.scorer, progress=False)
    result = evaluate_generation(pipe, data, pairs, judge=judge, n_candidates=1, progress=False)
    assert result.methods == ["none", "hard", "soft", "both"] and result.notes == []
    assert len(result.records) == 8
    summary = {row["method"]: row for row in result.summary()}
    assert list(summary) == result.methods
    for row in summary.values():
        assert row["pairs"] == 2
        for metric in METRICS:
            assert row[metric] is not None and math.isfinite(row[metric]), (row, metric)
        assert row["target_cosine_n"] == row["target_ssim_n"] == 1  # only m5 has a poster
        assert row["history_cosine_n"] == 2
    for r in result.records:
        alpha = result.alpha
        assert r.z == pytest.approx(alpha * math.log(r.d_p) + (1 - alpha) * math.log(r.d_t))
        assert -1.0 <= r.history_cosine <= 1.0 and r.history_ssim < 1.0
        assert math.isnan(r.target_ssim) == (r.item_id == "m3")
    # Every method drew the same seeds; the conditions, hence images, differ.
    images = {r.method: np.asarray(r.image, np.int16) for r in result.records if r.item_id == "m5"}
    assert np.abs(images["none"] - images["both"]).mean() > 1

    # One record by hand: its image against u1's history posters and m5's real poster.
    record = next(r for r in result.records if r.user_id == "u1" and r.method == "hard")
    prepared = pipe.prepare(data, "u1", "m5")
    # The judge has other weights, and scores the chosen image unlike the selector.
    photo = [Image.fromarray(skdata.coffee())]
    assert not np.allclose(judge.image_features(photo), pipe.scorer.image_features(photo))
    texts = [prepared.preference.text, prepared.item_keywords.text]
    cos = judge.similarity([record.image], texts)[0]
    assert (record.judge_d_p, record.judge_d_t) == pytest.approx(tuple((1 + cos) / 2), abs=1e-6)
    assert record.judge_z == pytest.approx(
        0.5 * math.log(record.judge_d_p) + 0.5 * math.log(record.judge_d_t)
    )
    # Another scorer, not a copy of the selector: its figures differ across the records
    # (a single pair may come close by chance, so the spread is what is compared).
    gaps = np.array([[r.judge_d_p - r.d_p, r.judge_d_t - r.d_t] for r in result.records])
    assert np.abs(gaps).mean(axis=0).min() > 1e-3, gaps
    history = [Image.open(p).convert("RGB") for p in prepared.history_images]
    target = Image.open(prepared.item_image).convert("RGB")
    features = perceptual_features(pipe.scorer, [record.image, *history, target])
    assert record.n_history_images == len(history) == 5
    assert record.history_cosine == pytest.approx(float((features[1:6] @ features[0]).mean()))
    assert record.target_cosine == pytest.approx(float(features[6] @ features[0]), abs=1e-6)
    size = (record.image.size[1], record.image.size[0])
    want = ssim(pixels(record.image), pixels(target, size))
    assert record.target_ssim == pytest.approx(want)
    assert record.target_ssim == pytest.approx(
        reference_ssim(pixels(record.image), pixels(target, size), channel_axis=-1, data_range=1)
    )

    folder = result.write(tmp_path / "eval")
    markdown = (folder / "table.md").read_text()
    for method in result.methods:
        assert markdown.count(f"\n| {method} | 2 |") == 1
    table = json.loads((folder / "table.json").read_text())
    assert [row["method"] for row in table["methods"]] == result.methods
    missing = [r for r in table["records"] if r["item_id"] == "m3"]
    assert all(r["target_cosine"] is None and r["target_ssim"] is None for r in missing)
    assert len(list((folder / "images").glob("*.png"))) == 8
    page = (folder / "index.html").read_text()
    assert "no personalization (item keywords only)" in page and "images/001-both.png" in page


def test_evaluate_generation_refuses_what_it_cannot_do(movies: Dataset) -> None:
    unscored = PersonalizedGenerationPipeline(tiny_config(None, None))
    with pytest.raises(ConfigError, match="needs a generator and a scorer"):
        evaluate_generation(unscored, movies, [("u1", "m5")], progress=False)
    scored = PersonalizedGenerationPipeline(tiny_config(None, None), scorer=FixedScorer())
    with pytest.raises(ConfigError, match="unknown method"):
        evaluate_generation(scored, movies, [("u1", "m5")], ["hard", "best"], progress=False)
    with pytest.raises(DataError, match="unknown user ID 'nobody'"):
        evaluate_generation(scored, movies, [("u1", "m5"), ("nobody", "m5")], progress=False)
    with pytest.raises(DataError, match="no \\(user, item\\) pairs"):
        evaluate_generation(scored, movies, [], progress=False)
