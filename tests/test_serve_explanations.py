"""Explanation methods of the service: statistical, the text package's template, and
llm-grounded with a tiny random Llama; the answer says which method wrote it and checks it."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from tastemaker.text.dataset_explainer import DatasetExplainer
from tastemaker.text.sources import TextData
from tastemaker.text.tasks import Example
from tests.test_llm import tiny_lm  # noqa: F401 (the saved tiny Llama fixture)

from .serve_data import ServeFolders, build_dataset
from .test_serve_api import assert_problem, running, settings_for

USER, ITEM = "u1_0", "i13"  # a group-1 user and a group-1 item (genre G1)


def history_of(client, user: str) -> set[str]:
    return {i["item_id"] for i in client.get(f"/users/{user}").json()["items"]}


def test_template_reads_the_served_history_with_feedback_and_checks_itself(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    with running(settings_for(serve_folders, tmp_path)) as client:
        statistical = client.get(f"/users/{USER}/explanations/{ITEM}").json()
        assert statistical["method"] == "statistical" and statistical["faithfulness"] is None
        liked = next(
            f"i{i}" for i in range(12, 24) if f"i{i}" not in history_of(client, USER) | {ITEM}
        )
        event = {"event_id": "e1", "user_id": USER, "item_id": liked, "rating": 5.0,
                 "timestamp": 10**9}  # fmt: skip
        assert client.post("/feedback", json={"events": [event]}).status_code == 200
        why = client.get(f"/users/{USER}/explanations/{ITEM}?method=template").json()
        history = history_of(client, USER)
    assert why["method"] == "template" and why["model"] is None and why["fallback"] is None
    # The template names the newest liked items that share the item's genre: the event's
    # item is the newest of the user's history, so it comes first.
    assert why["because"][0]["item_id"] == liked
    assert liked in history and {b["item_id"] for b in why["because"]} <= history
    assert "share G1" in why["text"] and "The river story 13" in why["text"]
    assert why["faithfulness"] == {
        "asserted": ["g1", "river", "tag1"],
        "unsupported": [],
        "faithful": True,
    }


def test_bad_or_unavailable_methods_are_4xx_that_say_what_to_do(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    with running(settings_for(serve_folders, tmp_path)) as client:
        bad = client.get(f"/users/{USER}/explanations/{ITEM}?method=poem")
        assert_problem(bad, 422, "method")
        assert "template" in bad.json()["error"] and "llm-grounded" in bad.json()["error"]
        none = client.get(f"/users/{USER}/explanations/{ITEM}?method=llm-grounded")
        assert_problem(none, 409, "language model")
        assert "--explain-llm" in none.json()["fix"]
        assert_problem(client.get(f"/users/nobody/explanations/{ITEM}?method=template"), 404)
        assert_problem(client.get(f"/users/{USER}/explanations/zzz?method=template"), 404)
    with pytest.raises(ValidationError, match="explain_llm"):
        settings_for(serve_folders, tmp_path, explain_method="llm-grounded")


def test_llm_grounded_with_a_tiny_llm_names_it_and_asserts_nothing_unsupported(
    serve_folders: ServeFolders,
    tmp_path: Path,
    tiny_lm: Path,  # noqa: F811
) -> None:
    settings = settings_for(
        serve_folders, tmp_path, explain_llm=str(tiny_lm), explain_method="llm-grounded"
    )
    with running(settings) as client:
        for _ in range(300):  # the model loads in a thread after start-up
            answer = client.get(f"/users/{USER}/explanations/{ITEM}")
            if answer.status_code != 503:
                break
            time.sleep(0.05)
        why = answer.json()
        assert answer.status_code == 200, why
        statistical = client.get(f"/users/{USER}/explanations/{ITEM}?method=statistical")
    assert why["method"] == "llm-grounded" and why["model"] == f"hf:{tiny_lm}"
    # A random model's words are cut to what the item has, or replaced by the template
    # (recorded): either way nothing unsupported is left.
    assert why["faithfulness"]["faithful"] and why["faithfulness"]["unsupported"] == []
    assert why["fallback"] is None or why["fallback"].startswith("template")
    assert statistical.json()["method"] == "statistical"


def test_a_language_model_that_fails_to_load_is_a_503_that_says_why(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    settings = settings_for(serve_folders, tmp_path, explain_llm=str(tmp_path / "no-model"))
    with running(settings) as client:
        client.app.state.explain_loader.join(60)
        failed = client.get(f"/users/{USER}/explanations/{ITEM}?method=llm-grounded")
        assert_problem(failed, 503, "failed to load", "no-model")
        assert client.get(f"/users/{USER}/explanations/{ITEM}").json()["method"] == "statistical"


def test_the_dataset_explainer_uses_catalog_tags_and_hides_the_users_own(tmp_path: Path) -> None:
    dataset = build_dataset(tmp_path / "posters")
    rows = dataset.interactions.frame.filter(pl.col("user_id") == USER)
    history = rows.select("item_id", "rating", "timestamp")
    catalog = dataset.catalog.frame
    plain = DatasetExplainer("toy", catalog).explain(USER, ITEM, history)
    assert plain.explanation.text.endswith("it is tagged river, tag1.")  # the catalog's tags
    own = pl.DataFrame({"user_id": [USER, "u9"], "item_id": [ITEM, ITEM], "tag": ["river", "tag1"]})
    hidden = DatasetExplainer("toy", catalog, user_tags=own).explain(USER, ITEM, history)
    assert hidden.explanation.text.endswith("it is tagged tag1.")  # the user's own is hidden
    # An unrated interaction (implicit data) still counts as liked.
    unrated = history.with_columns(pl.lit(None, dtype=pl.Float64).alias("rating"))
    implicit = DatasetExplainer("toy", catalog).explain(USER, ITEM, unrated)
    assert implicit.explanation.profile == plain.explanation.profile != ()
    assert implicit.faithfulness.faithful


def test_the_dataset_explainer_builds_the_pairs_example_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The explanation and its faithfulness check share one example (a request
    filtered the user's ratings and the item's tags twice)."""
    from tastemaker.text import dataset_explainer, explanations

    calls: list[tuple[str, str]] = []
    build = explanations.explanation_example

    def counted(data: TextData, user_id: str, item_id: str) -> Example:
        calls.append((user_id, item_id))
        return build(data, user_id, item_id)

    monkeypatch.setattr(dataset_explainer, "explanation_example", counted)
    monkeypatch.setattr(explanations, "explanation_example", counted)
    dataset = build_dataset(tmp_path / "posters")
    history = dataset.interactions.frame.filter(pl.col("user_id") == USER)
    DatasetExplainer("toy", dataset.catalog.frame).explain(USER, ITEM, history)
    assert calls == [(USER, ITEM)]


def test_statistical_sentence_names_a_value_shared_by_two_fields_once() -> None:
    from tastemaker.serve.explanations import sentence

    attributes = [
        {"field": "genres", "value": "Drama", "count": 5},
        {"field": "tags", "value": "drama", "count": 4},
        {"field": "tags", "value": "robot", "count": 3},
        {"field": "genres", "value": "Comedy", "count": 2},
        {"field": "tags", "value": "DRAMA", "count": 1},
    ]
    text = sentence("Love Cat", [], attributes, 13)
    assert text == "It is Drama, robot and Comedy, like 5 of the 13 items in your history."
