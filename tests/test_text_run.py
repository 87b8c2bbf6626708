"""Text runs end to end: a tiny random Llama through run_task offline, budgets, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli.app import app
from tastemaker.llm import create_llm
from tastemaker.llm.base import LLM, LLMConfig, Reply
from tastemaker.text.explanations import explain
from tastemaker.text.runner import compare, run_task
from tastemaker.text.tasks import build_task
from tastemaker.text.tokens import token_counter
from tests.test_llm import tiny_lm  # noqa: F401 (the saved tiny Llama fixture)
from tests.test_text_core import GENRES, RATINGS, TAGS, toy_data


class Scripted(LLM):
    """Replies from a script, one per call, the last repeated."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(LLMConfig())
        self.script = script
        self.calls = 0

    def _generate(self, conversations, **options):
        reply = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return [Reply(reply) for _ in conversations]


def test_tiny_llm_end_to_end_respects_the_token_budget(tiny_lm, tmp_path):  # noqa: F811
    llm = create_llm(model=str(tiny_lm))
    task = build_task("tagging", toy_data(), n_labels=2)
    counter = token_counter(llm)
    assert counter.exact
    run = run_task(task, llm, retriever="recency", k=None, max_prompt_tokens=250, retries=1,
                   out=tmp_path / "run")  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert len(records) == len(task.part("test")) == 2
    for record in records:
        assert record["prompt_tokens"] <= 250
        assert record["k_used"] + record["dropped_for_budget"] == record["profile_size"]
        assert record["attempts"] and all("raw" in a for a in record["attempts"])
        assert record["prediction"] in (*task.labels, None)
    assert any(r["dropped_for_budget"] > 0 for r in records)  # the budget really bit
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["metrics"]["examples"] == 2
    assert "accuracy" in (tmp_path / "run" / "metrics.md").read_text()
    assert "retrieved profile entries" in (tmp_path / "run" / "page.html").read_text()
    assert run.metrics["invalid"] == sum(r["prediction"] is None for r in records)


def test_retries_then_recorded_fallback_never_empty():
    task = build_task("tag-generation", toy_data())
    llm = Scripted(["", "   "])
    run = run_task(task, llm, retriever="bm25", k=2, retries=1)
    assert llm.calls == 2  # one try and one firmer retry
    for record in run.records:
        assert record["fallback"] == "user-most-frequent"
        assert record["prediction"]  # the fallback's tag
        assert "Answer with the tag only" in record["attempts"][1]["prompt"]


def test_k0_prompt_has_no_profile_and_labels_outside_the_set_count_as_invalid():
    task = build_task("tagging", toy_data(), n_labels=2)
    run = run_task(task, Scripted(["romance"]), k=0, retries=0)
    assert all(r["k_used"] == 0 and "the tag for the movie" not in r["attempts"][0]["prompt"]
               for r in run.records)  # fmt: skip
    assert run.metrics["invalid"] == 2 and run.metrics["accuracy"]["value"] == 0.0
    good = run_task(task, Scripted(["funny"]), k=4, retries=0)
    diff = compare(good, run, "accuracy")
    assert diff["difference"] == good.metrics["accuracy"]["value"]


def test_baselines_rating_and_template_explanations_are_faithful():
    rating = build_task("rating", toy_data())
    user = run_task(rating, method="user-mean")
    # u1's test (i6) profile: 4, 2.5, 5, 3, 4.5 → 3.8; gold 4
    assert user.predictions[[e.id for e in user.examples].index("u1:i6")] == pytest.approx(3.8)
    task = build_task("explanation", toy_data())
    template = run_task(task, method="template")
    assert template.metrics["faithfulness"]["value"] == 1.0
    assert template.metrics["hallucinations"] == 0
    made_up = run_task(task, Scripted(["Because you liked it: a scary space movie."]), k=1)
    assert made_up.metrics["hallucinations"] > 0


def test_explain_with_the_template_states_the_movies_own_attributes():
    result = explain("u2", "i6", toy_data())
    assert result.method == "template" and result.fallback is None
    assert "comedy" in result.text.lower() and "horror" not in result.text.lower()


def write_movielens(folder: Path) -> Path:
    folder.mkdir()
    movies = ["movieId,title,genres"] + [
        f"{i[1:]},Movie {i.upper()} (2000),{'|'.join(g)}" for i, g in GENRES.items()
    ]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    ratings = ["userId,movieId,rating,timestamp"] + [
        f"{u[1:]},{i[1:]},{r},{t}" for u, i, r, t in RATINGS
    ]
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    tags = ["userId,movieId,tag,timestamp"] + [f"{u[1:]},{i[1:]},{t},{s}" for u, i, t, s in TAGS]
    (folder / "tags.csv").write_text("\n".join(tags) + "\n")
    return folder


def test_cli_runs_a_baseline_and_refuses_bad_input(tmp_path):
    data = write_movielens(tmp_path / "ml")
    runner = CliRunner()
    flags = ["--method", "user-most-frequent", "--out", str(tmp_path / "o")]
    ok = runner.invoke(app, ["text", "run", "--task", "tagging", "--data", str(data), *flags])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "page.html").is_file()
    bad = [
        ["--task", "summaries"],
        ["--task", "tagging", "--retriever", "contriever"],
        ["--task", "tagging", "--k", "-5"],
    ]
    for flags in bad:
        result = runner.invoke(app, ["text", "run", *flags, "--data", str(data), "--out", "x"])
        assert result.exit_code == 2 and "error:" in result.output
    missing = runner.invoke(app, ["text", "run", "--task", "rating", "--data",
                                  str(tmp_path / "nope"), "--out", "x"])  # fmt: skip
    assert missing.exit_code == 2 and "does not exist" in missing.output
    said = runner.invoke(app, ["explain", "--user", "2", "--item", "6", "--data", str(data)])
    assert said.exit_code == 0 and "recommended" in said.output
