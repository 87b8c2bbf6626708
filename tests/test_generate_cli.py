"""``tastemaker generate`` (one pair, batch) and ``evaluate-generation`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tastemaker.data.splits import make_split

from .test_cli import assert_user_error, run
from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_pipeline import movie_dataset, tiny_llm  # noqa: F401 - fixture

# Statistical keywords without sentence embeddings (MMR off): fast and offline.
FAST = """
[keywords]
extractor = "statistical"
[keywords.statistical]
mmr_lambda = 1.0
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The toy movies saved as a Dataset folder and as a leave-one-out Split folder."""
    root = tmp_path_factory.mktemp("generate-cli")
    ds = movie_dataset(root / "posters")
    ds.save(root / "dataset")
    make_split(ds, "loo").save(root / "split")
    (root / "fast.toml").write_text(FAST)
    return {"dataset": root / "dataset", "split": root / "split", "config": root / "fast.toml"}


def tiny_flags(saved: dict[str, Path], clip: Path | None) -> list[str | Path]:
    flags = ["--config", saved["config"], "--generator", "tiny", "--steps", "2"]
    return [*flags, "--scorer", f"clip:{clip}" if clip else "none"]


def test_generate_writes_images_and_the_page(saved, tiny_clip: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    code, output = run(
        "generate", "--data", saved["dataset"], "--user", "u1", "--item", "m3",
        *tiny_flags(saved, tiny_clip), "--weights", "1:3", "--weights", "1:1,3:1",
        "--candidates", "2", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    result = json.loads((out / "result.json").read_text())
    assert result["weights"] == [[1, 3], [1, 1], [3, 1]] and result["seeds"] == [0, 1]
    assert result["preference_keywords"]["extractor"] == "statistical"
    assert len(list((out / "candidates").glob("*.png"))) == 6 and (out / "best.png").is_file()
    best = result["candidates"][result["selection"]["best"]]
    assert best["scores"]["z"] == max(c["scores"]["z"] for c in result["candidates"])
    page = (out / "index.html").read_text()
    assert all(k in page for k in result["preference_keywords"]["keywords"])
    assert f"z {best['scores']['z']:.4f}" in page
    assert "preference keywords (statistical)" in output and f"{best['scores']['z']:.4f}" in output


def test_generate_follows_the_scenario_file_and_flags_win(saved, tmp_path: Path) -> None:
    out = tmp_path / "scenario"
    code, output = run(
        "generate", "--config", "movies", "--data", saved["split"],
        "--user", "u2", "--item", "m5", "--generator", "none", "--llm", "statistical",
        "--scorer", "none", "--weights", "2:1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    result = json.loads((out / "result.json").read_text())
    assert result["components"]["generator"] is None and result["selection"] is None
    assert result["weights"] == [[2, 1]] and len(result["candidates"]) == 1
    # From the scenario: the movies domain, 8 keywords of genres and tags at most.
    assert result["candidates"][0]["condition"]["prompt"].startswith("a movie poster, ")
    assert len(result["preference_keywords"]["keywords"]) <= 8
    # A split's history is train + valid: u2's last liked movie (m6, the test item) is left out.
    assert "m6" not in result["history"]["item_ids"]
    assert not (out / "candidates").exists()
    # Another generator draws at its own size: tiny's 32 pixels, whatever the file says.
    code, output = run(
        "generate", "--config", "movies", "--data", saved["split"],
        "--user", "u2", "--item", "m5", "--generator", "tiny", "--steps", "2", "--llm",
        "statistical", "--scorer", "none", "--weights", "1:1", "--candidates", "1",
        "--out", out,
    )  # fmt: skip
    assert code == 0, output
    # What it did shows as lines (CliRunner's output is not a terminal, as a pipe is not).
    assert "1 weight x 1 seed = 1 image, 2 denoising steps each" in output
    assert "generate: 1/1 images" in output
    assert Image.open(out / "candidates" / "00.png").size == (32, 32)
    generator = json.loads((out / "result.json").read_text())["components"]["generator"]
    assert (generator["num_inference_steps"], generator["num_images"]) == (2, 1)  # flags win
    assert generator["guidance_scale"] == 7.5 and generator["height"] is None


def test_batch_generates_every_pair(saved, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,item_id\nu1,m3\nu4,m0\n")
    out = tmp_path / "batch"
    code, output = run(
        "generate", "batch", "--data", saved["dataset"], "--pairs", pairs,
        *tiny_flags(saved, None), "--candidates", "1", "--weights", "1:1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["user_id"], r["item_id"]) for r in summary] == [("u1", "m3"), ("u4", "m0")]
    for row in summary:
        folder = out / row["folder"]
        assert (folder / "candidates" / "00.png").is_file() and (folder / "index.html").is_file()
    page = (out / "index.html").read_text()
    assert all(f"{r['folder']}/index.html" in page for r in summary)

    code, output = run(
        "generate", "batch", "--data", saved["dataset"], "--users", "u1,u2", "--item", "m7",
        *tiny_flags(saved, None), "--generator", "none", "--out", tmp_path / "users",
    )  # fmt: skip
    assert code == 0, output
    rows = json.loads((tmp_path / "users" / "summary.json").read_text())
    assert [(r["user_id"], r["item_id"]) for r in rows] == [("u1", "m7"), ("u2", "m7")]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--user", "nobody", "--item", "m1"], ["unknown user ID 'nobody'"]),
        (["--user", "u3", "--item", "m1"], ["none rated >= 4"]),
        (["--user", "u1", "--item", "m8"], ["'m8' has no title, description or attributes"]),
        (["--user", "u1", "--item", "m99"], ["m99"]),
        (["--user", "u1"], ["needs --user and --item"]),
        (["--user", "u1", "--item", "m1", "--weights", "1-3"], ["not w_p:w_t"]),
        (["--user", "u1", "--item", "m1", "--scorer", "siglip:x"], ["clip:MODEL"]),
        (
            ["--user", "u1", "--item", "m1", "--generator", "no-such-org/no-such-model"],
            ["cannot load generator 'no-such-org/no-such-model'", "--local-dir"],
        ),
    ],
)
def test_bad_inputs_one_line_exit_2_no_output(
    saved, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    from diffusers.utils import logging as diffusers_logging

    # diffusers warns "Couldn't connect to the Hub" before failing offline; keep to our line.
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    out = tmp_path / "out"
    flags = ["--config", saved["config"], "--generator", "tiny", "--scorer", "none"]
    try:
        code, output = run("generate", "--data", saved["dataset"], *flags, *args, "--out", out)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    assert_user_error(code, output, *needles)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_batch_bad_pair_writes_nothing(saved, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,item_id\nu1,m3\nu3,m0\n")
    out = tmp_path / "batch"
    code, output = run(
        "generate", "batch", "--data", saved["dataset"], "--pairs", pairs,
        *tiny_flags(saved, None), "--out", out,
    )  # fmt: skip
    assert_user_error(code, output, "user 'u3'")
    assert not out.exists()
    code, output = run("generate", "batch", "--data", saved["dataset"], "--out", out)
    assert_user_error(code, output, "--pairs FILE.csv or --users")
    (tmp_path / "bad.csv").write_text("user,item\nu1,m3\n")
    code, output = run(
        "generate", "batch", "--data", saved["dataset"], "--pairs", tmp_path / "bad.csv"
    )
    assert_user_error(code, output, "no user_id, item_id column")


def test_evaluate_generation_writes_the_table(saved, tiny_clip: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "eval"
    code, output = run(
        "evaluate-generation", "--data", saved["split"], "--n-pairs", "2",
        *tiny_flags(saved, tiny_clip), "--candidates", "1", "--weights", "1:1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    table = json.loads((out / "table.json").read_text())
    assert [row["method"] for row in table["methods"]] == ["none", "hard"]
    assert len(table["pairs"]) == 2 and len(table["records"]) == 4
    assert "methods soft and both left out" in table["notes"][0]
    markdown = (out / "table.md").read_text()
    assert markdown.count("\n| none |") == 1 and markdown.count("\n| hard |") == 1
    assert len(list((out / "images").glob("*.png"))) == 4 and (out / "index.html").is_file()
    code, output = run(
        "evaluate-generation", "--data", saved["split"], *tiny_flags(saved, None),
        "--out", tmp_path / "no-scorer",
    )  # fmt: skip
    assert_user_error(code, output, "needs a generator and a scorer")
    assert not (tmp_path / "no-scorer").exists()


def test_train_soft_then_generate_with_it(
    saved,
    tiny_llm: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    soft = tmp_path / "soft"
    code, output = run(
        "generate", "train-soft", "--data", saved["dataset"], "--users", "u1,u2",
        "--config", saved["config"], "--generator", "tiny", "--llm", tiny_llm,
        "--train-steps", "3", "--batch-size", "2", "--out", soft,
    )  # fmt: skip
    assert code == 0, output
    log = json.loads((soft / "training_log.json").read_text())
    assert [row["step"] for row in log] == [1, 2, 3] and (soft / "loss.png").is_file()
    out = tmp_path / "out"
    code, output = run(
        "generate", "--data", saved["dataset"], "--user", "u4", "--item", "m0",
        *tiny_flags(saved, None), "--llm", tiny_llm, "--soft", soft, "--weights", "1:1",
        "--candidates", "1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "both" and result["soft_tokens"]["shape"] == [4, 32]
    assert result["candidates"][0]["condition"]["token_counts"]["soft"] == 4
    code, output = run(
        "generate", "train-soft", "--data", saved["dataset"], "--users", "u3",
        "--generator", "tiny", "--llm", tiny_llm, "--out", tmp_path / "none",
    )  # fmt: skip
    assert_user_error(code, output, "none rated >= 4")
    assert not (tmp_path / "none").exists()
