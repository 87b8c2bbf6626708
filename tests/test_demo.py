"""The main job on the embedded data, with the fast models (BPR is covered elsewhere) and a
short CLCRec run on genre vectors standing in for the text encoder (no weights loaded)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

from tastemaker import experiment
from tastemaker.config import ModelSpec
from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Split
from tastemaker.data.sources import load_bundled
from tastemaker.demo import DEMO_MODELS, run_demo
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import OutputError
from tastemaker.evaluation.cold_start import chance_recall


def genre_vectors(catalog: Catalog) -> ItemEmbeddings:
    """Each item's genres as a multi-hot "text" vector (items without genres masked)."""
    genres = catalog.frame["genres"].to_list()
    names = sorted({g for row in genres for g in row or []})
    vectors = np.array([[g in (row or []) for g in names] for row in genres], dtype=np.float32)
    mask = vectors.any(axis=1)
    return ItemEmbeddings(catalog.vocab.ids, vectors, mask, "genres", "text")


def test_demo_writes_a_consistent_report(tmp_path: Path) -> None:
    assert DEMO_MODELS == ("most_popular", "itemknn", "bpr", "vbpr")
    out = tmp_path / "demo"
    features = {"text": genre_vectors(load_bundled().catalog)}
    # A few large steps: seconds, and enough to rank cold items by genre (seeds 0-3 gave
    # cold Recall@20 0.14-0.18 against 0.056 by chance).
    clcrec = ModelSpec(
        name="clcrec", params={"epochs": 4, "batch_size": 4096, "learning_rate": 4e-3}
    )
    models = ("most_popular", "itemknn", clcrec)
    result = run_demo(out, models=models, features=features, n_users=2, k=5)

    board = json.loads((out / "leaderboard.json").read_text())
    assert [r["model"] for r in board] == ["most_popular", "itemknn", "clcrec"]
    # The leaderboard holds the same numbers as each model's own test report.
    for row in board:
        own = json.loads((out / "models" / row["model"] / "eval-test" / "metrics.json").read_text())
        assert own["metrics"] == row["metrics"]
        assert row["part"] == "test" and row["data_hash"] == result.split.content_hash
    # ItemKNN personalises, MostPopular does not: on real data it must rank better.
    knn, pop = board[1]["metrics"], board[0]["metrics"]
    assert knn["ndcg@10"] > pop["ndcg@10"] * 1.2
    assert knn["coverage@10"] > pop["coverage@10"]
    # The multimodal model got text features only: the embedded catalog has no posters.
    assert result.models["clcrec"].config.modalities == ["text"]  # type: ignore[attr-defined]

    # Cold start: the test items without a training interaction, ranked among themselves.
    cold = {r["model"]: r["metrics"] for r in json.loads((out / "cold_start.json").read_text())}
    train_items = set(result.split.train.frame["item_id"])
    n_cold = len(set(result.split.test.frame["item_id"]) - train_items)
    assert {m["cold/n_items"] for m in cold.values()} == {n_cold}
    assert n_cold > 100  # items with one or two ratings, all in test
    # ID-only models know nothing of these items (they tie, ranked by index); genres help.
    best_id_only = max(cold[m]["cold/recall@20"] for m in ("most_popular", "itemknn"))
    assert best_id_only < 2 * chance_recall(20, n_cold)
    assert cold["clcrec"]["cold/recall@20"] > max(best_id_only, 2 * chance_recall(20, n_cold))
    assert "cold/recall@20" in (out / "cold_start.md").read_text()

    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "warm and cold items" in page
    # The warm/cold numbers are a table too, not only a chart; the generation page is linked.
    assert "<h2>Warm and cold items (test)</h2>" in page and "cold/recall@20</th>" in page
    assert 'href="generation/index.html"' in page
    for user, lists in result.samples.items():
        assert f"user {user}" in page
        assert len(lists["itemknn"]) == 5 and len(lists["clcrec"]) == 5
        # Recommendations exclude what the user saw in training.
        seen = set(result.split.catalog.titles(
            result.split.train.frame.filter(user_id=user)["item_id"].to_list()))  # fmt: skip
        assert seen.isdisjoint(lists["itemknn"]) and seen.isdisjoint(lists["clcrec"])
        assert html.escape(lists["liked in training"][0]) in page

    # The saved split is the one that was evaluated.
    assert Split.load(out / "split").content_hash == result.split.content_hash

    # It ends with one user's personalized-generation inputs: keywords that come from the
    # user's liked items, and a prompt built from them and the target item's keywords.
    gen = result.generation
    assert gen["preference_keywords"] and gen["item_keywords"]
    assert all(k in gen["prompt"] for k in gen["item_keywords"][:1])
    assert gen["image"] is None and Path(gen["page"]).is_file()
    saved = json.loads((out / "generation" / "result.json").read_text())
    assert saved["user_id"] == gen["user_id"] and saved["item_id"] == gen["item_id"]


def test_demo_refuses_a_folder_with_the_users_files_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def no_work(*args: object, **kwargs: object) -> None:
        pytest.fail("the demo started working on a folder it must not replace")

    monkeypatch.setattr(experiment, "prepare", no_work)
    with pytest.raises(OutputError, match=r"notes\.txt"):
        run_demo(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
