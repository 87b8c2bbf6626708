"""UniMP on a tiny random Llama and tiny features: serialization, the item mask, zero
gates, constrained decoding, training, checkpoints, ranking metrics, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tastemaker import Dataset
from tastemaker.unimp.batching import encode
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.constrained import answer_scores, constrained_decode
from tastemaker.unimp.evaluate import rank_metrics, target_ranks
from tastemaker.unimp.examples import held_out_examples, training_pool
from tastemaker.unimp.model import UniMP, build_model
from tastemaker.unimp.pipeline import UniMPData, prepare
from tastemaker.unimp.serialize import IMAGE_TOKEN, NO_SLOT
from tastemaker.unimp.training import train
from tastemaker.unimp.visual import VisualBank

from .unimp_data import tiny_dataset

N_ITEMS = 12


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Five users with eight time-ordered ratings each over twelve movies."""
    return tiny_dataset(N_ITEMS)


def config(**changes: object) -> UniMPConfig:
    base = {"lm": "tiny", "cross_every": 1, "lora_rank": 4, "steps": 6, "batch_size": 4,
            "save_every": 2, "history": 3, "retrieval_dim": 8}  # fmt: skip
    return UniMPConfig(**{**base, **changes})


def with_bank(data: UniMPData, seed: int = 0) -> UniMPData:
    """Random 4-region, 16-wide "poster" features for every item but i1."""
    vocab = data.split.items
    rows = np.arange(len(vocab))
    rows[vocab.index(["i1"])[0]] = -1
    rows[rows > vocab.index(["i1"])[0]] -= 1
    features = np.random.default_rng(seed).normal(size=(len(vocab) - 1, 4, 16))
    data.bank = VisualBank(vocab, rows, features.astype(np.float32))
    return data


@pytest.fixture
def data(dataset: Dataset) -> UniMPData:
    return with_bank(prepare(dataset, config(fusion="none"), progress=False))


def model_for(data: UniMPData, **changes: object) -> UniMP:
    return build_model(config(**changes), data.bank, data.titles)


def test_history_binds_each_image_placeholder_to_its_item_and_leaves_the_test_item_out(
    data: UniMPData,
) -> None:
    builder = data.builder(config())
    examples = held_out_examples(builder, data.known, data.test, "recommend", everything=data.seen)
    assert len(examples) == 5
    for example in examples:
        assert example.item not in example.sentence.items  # the test item is never history
        assert list(example.sentence.items) == [i for i, _ in data.known[example.user]][-3:]
        model_tokens = encode(model_for(data).tokenizer, example, data.split.items)
        for piece in example.sentence.pieces:
            if piece.slot != NO_SLOT:
                item = example.sentence.items[piece.slot]
                assert piece.text.startswith(IMAGE_TOKEN)
                assert f"title: {data.describer.title(item)};" in piece.text
        slots = sorted(set(model_tokens.slots) - {NO_SLOT})
        assert slots == [0, 1, 2]
        assert model_tokens.items == data.split.items.index(list(example.sentence.items)).tolist()


def _run(model: UniMP, example, record: bool = False):
    enc = encode(model.tokenizer, example, model.bank.vocab, answer=False)
    for block in model.blocks:
        block.record = record
    out = model.run(torch.tensor([enc.ids]), torch.tensor([enc.slots]), torch.tensor([enc.items]))
    return enc, out.hidden[0]


def _open_gates(model: UniMP) -> None:
    with torch.no_grad():
        for block in model.blocks:
            block.attention_gate.fill_(1.0)
            block.feed_forward_gate.fill_(1.0)


def test_item_mask_keeps_a_token_blind_to_other_items_images(data: UniMPData) -> None:
    example = data.builder(config()).recommend("u0", data.known["u0"], data.test["u0"][0][0])
    vocab = data.split.items
    row = int(data.bank.rows[vocab.index([example.sentence.items[1]])[0]])
    assert row >= 0  # the second history item has a poster; it changes below
    features = data.bank.features.copy()
    features[row] += 5.0
    changed = VisualBank(vocab, data.bank.rows, features)
    hidden = {}
    for fusion in ("masked", "coarse"):
        for name, bank in (("same", data.bank), ("changed", changed)):
            model = build_model(config(fusion=fusion), bank, data.titles)
            _open_gates(model)
            enc, hidden[fusion, name] = _run(model, example, record=True)
            if fusion == "masked" and name == "same":
                weights = model.blocks[0].last_weights[0]  # heads, tokens, keys
                slots = torch.tensor(enc.slots)
                latents = model.config.latents
                for slot in range(3):
                    keys = slice(slot * latents, (slot + 1) * latents)
                    assert torch.count_nonzero(weights[:, slots != slot][..., keys]) == 0
                    assert torch.count_nonzero(weights[:, slots == slot][..., keys]) > 0
    first = [i for i, s in enumerate(enc.slots) if s == 0]
    assert torch.equal(hidden["masked", "same"][first], hidden["masked", "changed"][first])
    assert not torch.allclose(hidden["coarse", "same"][first], hidden["coarse", "changed"][first])


def test_closed_gates_reproduce_the_bare_language_model(data: UniMPData) -> None:
    from tastemaker.generation.tiny import tiny_causal_lm

    model = model_for(data, fusion="coarse", lora_rank=0)
    example = data.builder(config()).recommend("u1", data.known["u1"], "i0")
    enc, hidden = _run(model, example)
    bare, _ = tiny_causal_lm(seed=0)
    with torch.no_grad():
        expected = bare(input_ids=torch.tensor([enc.ids])).logits[0]
        got = model.logits(hidden)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    _open_gates(model)
    with torch.no_grad():
        moved = model.logits(_run(model, example)[1])
    assert not torch.allclose(moved, expected, atol=1e-3)  # the blocks do act once opened


def test_constrained_decoding_only_yields_candidates_and_scores_sum_to_one(
    data: UniMPData,
) -> None:
    model = model_for(data)
    builder = data.builder(config())
    candidates = ["movie 1", "movie 10", "movie 11", "the end", "movie 1 part 2"]
    for user in ("u0", "u2", "u4"):
        prompt = encode(model.tokenizer, builder.recommend(user, data.known[user], "i0"),
                        data.split.items, answer=False)  # fmt: skip
        assert constrained_decode(model, prompt, candidates) in candidates
        scores = answer_scores(model, prompt, candidates)
        assert np.exp(scores).sum() == pytest.approx(1.0, abs=1e-5)
        assert len(set(np.round(scores, 6))) == len(candidates)  # distinct answers, distinct scores


def test_joint_training_lowers_the_loss(data: UniMPData, tmp_path: Path) -> None:
    cfg = config(steps=30, save_every=30, learning_rate=1e-2, tasks=("recommend", "rating"))
    model = build_model(cfg, data.bank, data.titles)
    pool = training_pool(data.builder(cfg), data.train, cfg.tasks, seed=0)
    pool = {task: examples[:2] for task, examples in pool.items()}  # a task it can learn
    result = train(model, pool, tmp_path / "run", progress=False)
    first, last = result.log[0], result.log[-1]
    # the tiny LM's frozen head (embeddings of std 0.02, width 32) caps how peaked its
    # next-token distribution can get, so its token loss can only fall by a fraction of a nat
    assert last["tokens"] < first["tokens"] - 0.2, result.log
    assert last["retrieval"] < 0.7 * first["retrieval"], result.log
    assert (tmp_path / "run" / "loss.png").is_file()


def test_resumed_training_matches_an_uninterrupted_run(data: UniMPData, tmp_path: Path) -> None:
    cfg = config(steps=4, save_every=2)
    pool = training_pool(data.builder(cfg), data.train, cfg.tasks, seed=0)
    straight = build_model(cfg, data.bank, data.titles)
    train(straight, pool, tmp_path / "a", progress=False)
    half = build_model(config(steps=2, save_every=2), data.bank, data.titles)
    train(half, pool, tmp_path / "b", progress=False)
    resumed = build_model(cfg, data.bank, data.titles)
    train(resumed, pool, tmp_path / "b", resume=True, progress=False)
    a, b = straight.trainable(), resumed.trainable()
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    changed = [n for n in a if not torch.equal(a[n], half.trainable()[n])]
    assert changed  # the last two steps did move the weights


def test_saved_model_round_trips_and_refuses_an_edited_config(
    data: UniMPData, tmp_path: Path
) -> None:
    import json

    from tastemaker.errors import DataError
    from tastemaker.unimp.pipeline import load_unimp

    cfg = config(steps=2)
    model = build_model(cfg, data.bank, data.titles)
    pool = training_pool(data.builder(cfg), data.train, ("recommend",), seed=0)
    train(model, pool, tmp_path / "run", progress=False)
    loaded = load_unimp(tmp_path / "run" / "model", data)
    for name, param in model.trainable().items():
        assert torch.equal(param, loaded.trainable()[name])
    path = tmp_path / "run" / "model" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "latents": 2}))
    with pytest.raises(DataError, match="latents"):
        load_unimp(tmp_path / "run" / "model", data)


def test_rank_metrics_match_hand_computed_values() -> None:
    scores = np.array([[0.5, 0.9, 0.1, 0.2], [0.3, 0.3, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0]])
    ranks = target_ranks(scores)
    assert ranks.tolist() == [1, 1, 0]  # a tie counts against the target
    metrics = rank_metrics(ranks, ks=(1, 3))
    assert metrics["HR@1"] == pytest.approx(1 / 3)
    assert metrics["HR@3"] == pytest.approx(1.0)
    assert metrics["MRR@3"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert metrics["NDCG@3"] == pytest.approx((2 / np.log2(3) + 1.0) / 3)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--data", "x", "--out", "o", "--dtype", "float8"], "unknown dtype"),
        (["train", "--data", "x", "--out", "o", "--task", "dance"], "unknown UniMP task"),
        (["train", "--data", "x", "--out", "o", "--item-init", "warm"], "bad value for item_init"),
        (
            ["ask", "--data", "x", "--model-dir", "nowhere", "--task", "sing", "--user", "1"],
            "unknown task",
        ),
        (["evaluate", "--data", "x", "--model-dir", "nowhere"], "holds no UniMP model"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(args: list[str], fragment: str) -> None:
    from tastemaker.cli.app import app

    result = CliRunner().invoke(app, ["unimp", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.output


def test_ask_recommends_unseen_items_and_rates_on_the_rating_scale(data: UniMPData) -> None:
    from tastemaker.unimp.pipeline import ask
    from tastemaker.unimp.tasks import RATINGS

    model = model_for(data)
    answers = ask(model, data, "recommend", "u0", k=4)
    history = {item for item, _ in data.known["u0"]}
    assert len(answers) == 4 and not history & {item for item, _ in answers}
    scores = [score for _, score in answers]
    assert scores == sorted(scores, reverse=True)
    ratings = ask(model, data, "rating", "u0", item="i9")
    assert sorted(r for r, _ in ratings) == sorted(RATINGS)
    assert sum(p for _, p in ratings) == pytest.approx(1.0, abs=1e-5)
