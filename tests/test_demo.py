"""The main job on the embedded data, with the fast models (BPR is covered elsewhere)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from tastemaker.data.dataset import Split
from tastemaker.demo import run_demo


def test_demo_writes_a_consistent_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run_demo(out, models=("most_popular", "itemknn"), n_users=2, k=5)

    board = json.loads((out / "leaderboard.json").read_text())
    assert [r["model"] for r in board] == ["most_popular", "itemknn"]
    # The leaderboard holds the same numbers as each model's own test report.
    for row in board:
        own = json.loads((out / "models" / row["model"] / "eval-test" / "metrics.json").read_text())
        assert own["metrics"] == row["metrics"]
        assert row["part"] == "test" and row["data_hash"] == result.split.content_hash
    # ItemKNN personalises, MostPopular does not: on real data it must rank better.
    knn, pop = board[1]["metrics"], board[0]["metrics"]
    assert knn["ndcg@10"] > pop["ndcg@10"] * 1.2
    assert knn["coverage@10"] > pop["coverage@10"]

    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page
    for user, lists in result.samples.items():
        assert f"user {user}" in page
        assert len(lists["itemknn"]) == 5
        # Recommendations exclude what the user saw in training.
        seen = set(result.split.catalog.titles(
            result.split.train.frame.filter(user_id=user)["item_id"].to_list()))  # fmt: skip
        assert seen.isdisjoint(lists["itemknn"])
        assert html.escape(lists["liked in training"][0]) in page

    # The saved split is the one that was evaluated.
    assert Split.load(out / "split").content_hash == result.split.content_hash
