"""Image-text scorers and PMG's selection objective: hand values, a tiny CLIP, an aligned space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from tastemaker import Catalog
from tastemaker.encoders import ImageEncoder, TextEncoder
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.scoring import (
    EPS,
    AlignedScorer,
    ClipScorer,
    ImageTextScorer,
    pmg_objective,
    select_best,
    unit_interval,
)
from tastemaker.pretrain import train_alignment

from .test_encoders import image_encoder, photos, text_encoder, tiny_clip  # noqa: F401 - fixtures


class FixedScorer(ImageTextScorer):
    """Image k (a k-pixel-wide image) and each text get fixed 2-d unit vectors."""

    IMAGES: ClassVar[np.ndarray] = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    TEXTS: ClassVar[dict[str, np.ndarray]] = {
        "space opera": np.array([1.0, 0.0]),
        "a cat": np.array([0.0, 1.0]),
    }

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.IMAGES[[image.size[0] - 1 for image in images]].astype(np.float32)

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.TEXTS[t] for t in texts]).astype(np.float32)


def blank(width: int) -> Image.Image:
    return Image.new("RGB", (width, 1))


# --- the objective by hand -------------------------------------------------------------------


def test_similarity_maps_into_the_unit_interval_and_z_by_hand() -> None:
    np.testing.assert_allclose(unit_interval([1.0, 0.6, 0.0, -0.2, -1.0]), [1, 0.8, 0.5, 0.4, EPS])
    assert float(pmg_objective(0.8, 0.4, 0.3)) == pytest.approx(
        0.3 * math.log(0.8) + 0.7 * math.log(0.4)
    )
    assert float(pmg_objective(EPS, 1.0, 0.5)) == pytest.approx(0.5 * math.log(1e-6))


def test_select_best_scores_each_candidate_and_picks_the_argmax() -> None:
    scorer = FixedScorer()
    candidates = [blank(1), blank(2), blank(3)]
    result = select_best(scorer, candidates, "space opera", "a cat", alpha=0.5)
    # cosines to (pref, item): (1, 0), (0.6, 0.8), (-1, 0)
    want_d = [(1.0, 0.5), (0.8, 0.9), (EPS, 0.5)]
    for score, (d_p, d_t) in zip(result.scores, want_d, strict=True):
        assert (score.d_p, score.d_t) == pytest.approx((d_p, d_t))
        assert score.z == pytest.approx(0.5 * math.log(d_p) + 0.5 * math.log(d_t))
    assert result.scores[1].cos_t == pytest.approx(0.8)
    assert result.best == 1  # z: -0.347, -0.164, -7.25
    assert select_best(scorer, candidates, "space opera", "a cat", alpha=1.0).best == 0
    assert select_best(scorer, candidates, "space opera", "a cat", alpha=0.0).best == 1
    assert select_best(scorer, candidates[::-1], "space opera", "a cat").best == 1
    assert result.as_dict()["scores"][2]["d_p"] == pytest.approx(EPS)


def test_select_best_rejects_bad_inputs() -> None:
    scorer = FixedScorer()
    with pytest.raises(DataError, match="no candidate images"):
        select_best(scorer, [], "space opera", "a cat")
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"alpha must lie in \[0, 1\]"):
            select_best(scorer, [blank(1)], "space opera", "a cat", alpha=alpha)


# --- a tiny random CLIP ---------------------------------------------------------------------


def test_clip_scorer_agrees_with_its_model(tiny_clip: Path, photos, monkeypatch) -> None:  # noqa: F811
    from transformers import AutoTokenizer, CLIPModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = ClipScorer(str(tiny_clip), batch_size=1)
    photo = Image.open(photos["coffee-png"])
    texts = ["a coffee cup", "a photo of a cat"]
    got = scorer.similarity([photo, photo], texts)

    # The model's own cosine, with its inputs prepared by hand (CLIP mean/std, centred
    # 400x400 crop of the 600x400 photo resized to 32x32).
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_clip)(texts, padding=True, return_tensors="pt")
    square = photo.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC, box=(100, 0, 500, 400))
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    pixels = (np.asarray(square, dtype=np.float64) / 255 - mean) / std
    with torch.inference_mode():
        image = model.get_image_features(
            pixel_values=torch.from_numpy(pixels.transpose(2, 0, 1)[None].astype(np.float32))
        ).pooler_output
        text = model.get_text_features(**tokens).pooler_output
    want = torch.nn.functional.cosine_similarity(image, text).numpy()
    np.testing.assert_allclose(got, [want, want], atol=1e-5)
    assert scorer.image_features([photo]).shape == (1, 12)

    with pytest.raises(ConfigError, match="not a joint image-text"):
        ClipScorer(str(tiny_clip.parent / "no-such-model"))


# --- the aligned space as scorer, end to end ---------------------------------------------------

CAPTIONS = {
    "astronaut": "an astronaut in a white space suit",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a ginger tabby cat",
    "rocket": "a rocket on its launch pad",
    "hubble_deep_field": "galaxies in the deep night sky",
    "immunohistochemistry": "stained tissue under a microscope",
}


def test_aligned_scorer_end_to_end(
    tmp_path: Path,
    text_encoder: TextEncoder,  # noqa: F811
    image_encoder: ImageEncoder,  # noqa: F811
    tiny_clip: Path,  # noqa: F811
) -> None:
    torch.set_num_threads(1)
    images = []
    for name in CAPTIONS:
        Image.fromarray(getattr(skdata, name)()).save(tmp_path / f"{name}.png")
        images.append(Image.open(tmp_path / f"{name}.png"))
    items = Catalog(
        pl.DataFrame(
            {
                "item_id": list(CAPTIONS),
                "title": list(CAPTIONS.values()),
                "image": [str(tmp_path / f"{name}.png") for name in CAPTIONS],
            }
        )
    )
    image_vectors = image_encoder.encode(items, progress=False)
    text_vectors = text_encoder.encode(items, progress=False)
    config = {"dim": 8, "hidden": 0, "epochs": 150, "batch_size": 6, "learning_rate": 1e-2}
    config |= {"valid_fraction": 0.0, "test_fraction": 0.0}
    space = train_alignment(image_vectors, text_vectors, config, progress=False)
    space.save(tmp_path / "space")

    scorer = AlignedScorer(tmp_path / "space", image=image_encoder)
    got_images = scorer.image_features(images)
    np.testing.assert_allclose(got_images, space.embed_image(image_vectors), atol=1e-4)
    got_texts = scorer.text_features(list(CAPTIONS.values()))
    np.testing.assert_allclose(got_texts, space.embed_text(text_vectors), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got_images, axis=1), 1.0, atol=1e-5)
    sims = scorer.similarity(images, list(CAPTIONS.values()))
    assert sims.argmax(axis=1).tolist() == list(range(len(CAPTIONS)))  # trained pairs match

    cat, rocket = CAPTIONS["chelsea"], CAPTIONS["rocket"]
    assert select_best(scorer, images, cat, rocket, alpha=1.0).best == 2
    assert select_best(scorer, images, cat, rocket, alpha=0.0).best == 3

    with pytest.raises(DataError, match="trained on text features of"):
        AlignedScorer(space, text=TextEncoder(model=str(tiny_clip)))
    with pytest.raises(DataError, match="empty"):
        scorer.text_features(["a cat", "  "])
