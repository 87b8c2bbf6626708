"""``tastemaker generate missing``: images for the items that have none, per user; and the
generator's GPU flags through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tastemaker.data.catalog import IMAGE, ITEM_ID, Catalog
from tastemaker.data.dataset import Dataset
from tastemaker.errors import DataError
from tastemaker.generation.missing import items_without_images, missing_pairs

from .test_cli import assert_user_error, run
from .test_generate_cli import FAST
from .test_pipeline import movie_dataset


@pytest.fixture(scope="module")
def unpictured(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The toy movies with no poster for m3, m5 and m7 (m8, without any text, left out)."""
    ds = movie_dataset(tmp_path_factory.mktemp("posters"))
    frame = ds.catalog.frame.filter(pl.col(ITEM_ID) != "m8")
    frame = frame.with_columns(
        pl.when(pl.col(ITEM_ID).is_in(["m3", "m5", "m7"])).then(None).otherwise(pl.col(IMAGE))
        .alias(IMAGE)
    )  # fmt: skip
    return Dataset(Catalog(frame), ds.interactions, ds.manifest)


def test_missing_pairs_by_hand(unpictured: Dataset) -> None:
    assert items_without_images(unpictured.catalog) == ["m3", "m5", "m7"]
    # popularity: m3 (u2, u4) 2, m7 (u2, u4) 2, m5 (u1) 1; u1 met m5, u2 met m3 and m7
    assert missing_pairs(unpictured, ["u1", "u2"], limit=2) == [
        ("u1", "m3"), ("u1", "m7"), ("u2", "m5"),
    ]  # fmt: skip
    assert missing_pairs(unpictured, ["u3"], limit=1) == [("u3", "m3")]
    assert missing_pairs(unpictured, ["u3"], items=["m5"]) == [("u3", "m5")]
    with pytest.raises(DataError, match="'m0' already has an image"):
        missing_pairs(unpictured, ["u1"], items=["m0"])
    with pytest.raises(DataError, match="user 'u1' has interacted with every item"):
        missing_pairs(unpictured, ["u1"], items=["m5"])
    with pytest.raises(DataError, match="unknown item ID 'x'"):
        missing_pairs(unpictured, ["u1"], items=["x"])
    bare = Catalog(unpictured.catalog.frame.with_columns(pl.lit(None, pl.Utf8).alias(IMAGE)))
    with pytest.raises(DataError, match="no item in the catalog has an image"):
        items_without_images(bare)


def test_generate_missing_writes_a_batch(unpictured: Dataset, tmp_path: Path) -> None:
    unpictured.save(tmp_path / "data")
    (tmp_path / "fast.toml").write_text(FAST)
    out = tmp_path / "out"
    code, output = run(
        "generate", "missing", "--data", tmp_path / "data", "--users", "u1,u2", "--limit", "1",
        "--config", tmp_path / "fast.toml", "--generator", "tiny", "--steps", "2",
        "--scorer", "none", "--weights", "1:1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    rows = json.loads((out / "summary.json").read_text())
    assert [(r["user_id"], r["item_id"]) for r in rows] == [("u1", "m3"), ("u2", "m5")]
    for row in rows:
        result = json.loads((out / row["folder"] / "result.json").read_text())
        assert result["item"]["image"] is None  # generated because there was none
        assert len(result["candidates"]) == 1 and result["candidates"][0]["nsfw"] is None
    assert (out / "index.html").is_file()
    code, output = run(
        "generate", "missing", "--data", tmp_path / "data", "--users", "u1", "--items", "m0",
        "--generator", "none", "--out", tmp_path / "bad",
    )  # fmt: skip
    assert_user_error(code, output, "already has an image")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--device", "tpu"], "device"),
        (["--dtype", "float64"], "torch_dtype"),
        (["--scheduler", "fastest"], "unknown scheduler 'fastest'"),
        (["--dtype", "float16"], "float16 diffusion does not run on the CPU"),
        (["--cpu-offload"], "CPU offload"),
    ],
)
def test_bad_generator_flags_exit_2_with_one_line(
    unpictured: Dataset, tmp_path: Path, flags: list[str], needle: str
) -> None:
    unpictured.save(tmp_path / "data")
    (tmp_path / "fast.toml").write_text(FAST)
    out = tmp_path / "out"
    code, output = run(
        "generate", "--data", tmp_path / "data", "--user", "u1", "--item", "m3",
        "--config", tmp_path / "fast.toml", "--generator", "tiny", "--scorer", "none",
        *flags, "--out", out,
    )  # fmt: skip
    assert_user_error(code, output, needle)
    assert not out.exists()


def test_generator_flags_reach_the_config() -> None:
    from tastemaker.cli.generate import build_config
    from tastemaker.cli.generator_flags import generator_flags

    hardware = generator_flags("auto", "bfloat16", True, True, False, "dpm++")
    config, _ = build_config(None, hardware=hardware)
    g = config.generator
    assert g is not None and g.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert (g.device, g.torch_dtype, g.scheduler) == ("auto", "bfloat16", "dpm++")
    assert g.attention_slicing and g.vae_tiling and not g.cpu_offload
    untouched, _ = build_config(None)
    assert untouched.generator == type(g)()  # no flag: the defaults (CPU, float32)
