"""``--preset`` and ``--judge`` on the command line: laid under the flags, bad values refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tastemaker.cli.generate import build_config

from .test_cli import assert_user_error, run
from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_generate_cli import saved, tiny_flags  # noqa: F401 - fixture


def test_the_preset_lies_under_the_flags() -> None:
    paper, _ = build_config(None, preset="pmg-paper")
    assert (paper.history.max_items, paper.weights) == (3, [(1.0, 1.0), (2.0, 1.0)])
    flagged, _ = build_config(None, preset="pmg-paper", weights=["1:3"], scorer="clip:some/id")
    assert flagged.weights == [(1.0, 3.0)]  # the flag wins over the preset
    assert (flagged.scorer.kind, flagged.scorer.similarity) == ("clip", "logit")  # kept
    assert flagged.scorer.alpha == pytest.approx(2 / 3) and flagged.condition.repeat
    plain, _ = build_config(None, scorer="clip:some/id")
    assert (plain.scorer.similarity, plain.history.max_items) == ("unit", 20)


def test_generate_with_the_paper_preset_repeats_the_preferences(saved, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    code, output = run(
        "generate", "--data", saved["dataset"], "--user", "u1", "--item", "m3",
        *tiny_flags(saved, None), "--preset", "pmg-paper", "--candidates", "1", "--out", out,
    )  # fmt: skip
    assert code == 0, output
    result = json.loads((out / "result.json").read_text())
    assert result["weights"] == [[1, 1], [2, 1]]
    assert len(result["history"]["item_ids"]) == 3  # the release's three movies
    second = result["candidates"][1]["condition"]
    preference = ", ".join(second["keywords"]["preference"])
    assert second["prompt"].endswith(f"{preference}, {preference}") and second["order"][0] == "item"


def test_bad_preset_and_a_judge_that_is_the_selector_exit_2(
    saved,  # noqa: F811
    tiny_clip: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    code, output = run(
        "generate", "--data", saved["dataset"], "--user", "u1", "--item", "m3",
        *tiny_flags(saved, None), "--preset", "paper", "--out", tmp_path / "bad",
    )  # fmt: skip
    assert_user_error(code, output, "unknown preset 'paper'")
    assert not (tmp_path / "bad").exists()
    code, output = run(
        "evaluate-generation", "--data", saved["split"], *tiny_flags(saved, tiny_clip),
        "--judge", f"clip:{tiny_clip}", "--out", tmp_path / "same",
    )  # fmt: skip
    assert_user_error(code, output, "is the selector itself")
    assert not (tmp_path / "same").exists()
