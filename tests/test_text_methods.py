"""Tagging by label scoring and grounded explanations: exact likelihoods, labels always in the
set, unsupported clauses cut."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tastemaker.errors import ConfigError
from tastemaker.llm import create_llm
from tastemaker.llm.base import ChatMessage
from tastemaker.llm.likelihood import option_log_likelihoods
from tastemaker.text.explanations import ground
from tastemaker.text.runner import run_task
from tastemaker.text.tasks import build_task
from tests.test_llm import tiny_lm  # noqa: F401 (the saved tiny Llama fixture)
from tests.test_text_core import toy_data
from tests.test_text_run import Scripted


def naive_log_likelihood(folder, messages, option: str) -> float:
    """log P(option + end | prompt) from one full forward pass over prompt + option."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = tokenizer.apply_chat_template(
        [m.as_dict() for m in messages], add_generation_prompt=True, tokenize=False
    )
    head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    tail = [*tokenizer(option, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([head + tail])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[len(head) - 1 + j, t] for j, t in enumerate(tail)))


def test_option_scores_equal_a_full_forward_pass(tiny_lm):  # noqa: F811
    llm = create_llm(model=str(tiny_lm))
    chats = [[ChatMessage("user", "which tag? funny or scary")], [ChatMessage("user", "hi")]]
    options = ["funny", "dark comedy", "a"]  # different token lengths: padding must not leak
    scores = option_log_likelihoods(llm, chats, options)
    for chat, row in zip(chats, scores, strict=True):
        expected = [naive_log_likelihood(tiny_lm, chat, o) for o in options]
        assert row == pytest.approx(expected, abs=1e-4)
    assert all(s < 0 for row in scores for s in row)


def test_scoring_needs_a_local_model():
    with pytest.raises(ConfigError, match="token probabilities"):
        option_log_likelihoods(Scripted(["x"]), [[ChatMessage("user", "q")]], ["a"])


def test_llm_score_always_answers_inside_the_label_set(tiny_lm):  # noqa: F811
    llm = create_llm(model=str(tiny_lm))
    task = build_task("tagging", toy_data(), n_labels=3)
    run = run_task(task, llm, method="llm-score", retriever="recency", k=2)
    assert run.metrics["invalid"] == 0 and run.label == "llm-score recency k=2"
    for record, prediction in zip(run.records, run.predictions, strict=True):
        assert prediction in task.labels and record["attempts"][0]["how"] == "scored"
        chat = [ChatMessage("user", record["attempts"][0]["prompt"].removeprefix("user: "))]
        best = max(task.labels, key=lambda label: naive_log_likelihood(tiny_lm, chat, label))
        assert prediction == best
    with pytest.raises(ConfigError, match="label set"):
        run_task(build_task("rating", toy_data()), llm, method="llm-score")


def test_grounding_cuts_clauses_with_attributes_the_movie_lacks():
    task = build_task("explanation", toy_data())
    example = task.part("test")[0]  # u1's i6: Comedy, tagged funny by others
    assert example.item.genres == ("Comedy",)
    text, cut = ground("Because you liked comedy, it is funny, and it is scary.", example, task)
    assert (text, cut) == ("Because you liked comedy, it is funny.", 1)
    seam = "It is a dark. Comedy for you."  # "dark" and "comedy" pass alone; "dark comedy" not
    task = replace(task, vocabulary=(*task.vocabulary, "dark comedy"))
    assert ground(seam, example, task) == ("", 0)
    kept, none = ground("A light comedy for you.", example, task)
    assert (kept, none) == ("A light comedy for you.", 0)
    made_up = "Because you liked it: a scary space movie with gore."
    free = run_task(task, Scripted([made_up]), k=1)
    grounded = run_task(task, Scripted([made_up]), method="llm-grounded", k=1)
    assert free.metrics["hallucinations"] > 0
    assert grounded.metrics["hallucinations"] == 0
    assert grounded.metrics["faithfulness"]["value"] == 1.0
    assert [r["clauses_cut"] for r in grounded.records] == [1] * len(grounded.records)


def test_wide_variant_tests_the_last_records_with_one_profile_before_them():
    strict = build_task("tagging", toy_data(), n_labels=2)
    wide = build_task("tagging", toy_data(), n_labels=2, test_last=2)
    by_id = {e.id: e for e in wide.examples}
    # u1's labelled pairs in time: i1 i2 i3 i5 i6 → test i5 and i6, valid i3
    assert {i for i, e in by_id.items() if e.user_id == "u1" and e.part == "test"} == {
        "u1:i5",
        "u1:i6",
    }
    assert by_id["u1:i3"].part == "valid"
    for test in ("u1:i5", "u1:i6"):  # the same profile, before the block: no test label in it
        assert [p.item_id for p in by_id[test].profile] == ["i1", "i2", "i3", "i4"]
    assert [e.item_id for e in wide.train["u1"]] == ["i1", "i2"]
    # u2 (i2, i6 labelled) has two test examples with an empty profile; u3 (one pair) counts
    assert by_id["u2:i6"].profile == () and by_id["u3:i7"].part == "test"
    assert len(wide.part("test")) == 5 and len(strict.part("test")) == 2
    assert wide.users == 3 and strict.users == 2
    with pytest.raises(ConfigError, match="test_last"):
        build_task("tagging", toy_data(), test_last=0)


def test_cli_runs_with_a_finetuned_adapter_and_refuses_a_folder_without_one(tiny_lm, tmp_path):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from typer.testing import CliRunner

    from tastemaker.cli.app import app
    from tastemaker.text.finetune import Example, FinetuneConfig, finetune
    from tests.test_text_run import write_movielens

    data = write_movielens(tmp_path / "ml")
    model = AutoModelForCausalLM.from_pretrained(tiny_lm)
    pairs = [Example("Tag the movie.", "funny"), Example("Tag it.", "scary")]
    config = FinetuneConfig(epochs=1, max_length=64, batch_size=2)
    result = finetune(model, AutoTokenizer.from_pretrained(tiny_lm), pairs, pairs, tmp_path / "ft",
                      config)  # fmt: skip
    runner = CliRunner()
    base = ["text", "run", "--task", "tagging", "--data", str(data), "--llm", str(tiny_lm),
            "--method", "llm-score", "--k", "1"]  # fmt: skip
    ok = runner.invoke(app, [*base, "--adapter", str(result.adapter), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "accuracy" in (tmp_path / "o" / "metrics.md").read_text()
    bad = runner.invoke(app, [*base, "--adapter", str(tmp_path), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no LoRA adapter" in bad.output
    assert not (tmp_path / "x").exists()
    help_text = runner.invoke(app, ["text", "finetune", "--help"]).output
    assert "lowest" in help_text and "valid" in help_text


def test_a_shared_dense_retriever_is_used_as_it_is():
    from tastemaker.text.retrievers import DenseRetriever, create_retriever

    shared = DenseRetriever(encoder=object())
    assert create_retriever("dense", encoder=shared) is shared  # its vector cache is reused
    assert create_retriever("dense", encoder=None).name == "dense"
