"""UniMP's user state as soft tokens for PMG's generator: shapes and modes, training by
the diffusion loss, dependence on the history, no leak of the target, resuming, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tastemaker import Dataset
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
from tastemaker.generation.soft_prompt import SoftPreferenceModel
from tastemaker.generation.soft_training import soft_examples
from tastemaker.generation.tiny import tiny_causal_lm
from tastemaker.unimp import image_conditioning as ic
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.image_conditioning import UniMPImageConditioner, train_unimp_conditioning
from tastemaker.unimp.model import UniMP, build_model
from tastemaker.unimp.serialize import ItemDescriber
from tastemaker.unimp.visual import VisualBank

from .test_pipeline import movie_dataset, tiny_config

TRAIN = {"steps": 30, "batch_size": 4, "learning_rate": 3e-2, "checkpoint_every": 1000}


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return movie_dataset(tmp_path_factory.mktemp("cond-posters"))


@pytest.fixture(scope="module")
def pipe() -> PersonalizedGenerationPipeline:
    torch.set_num_threads(1)
    return PersonalizedGenerationPipeline(tiny_config(None, None))


def tiny_unimp(movies: Dataset, seed: int = 0) -> tuple[UniMP, ItemDescriber]:
    """A random two-layer UniMP over the movies, with random 4-region poster features."""
    ids = [str(i) for i in movies.catalog.frame["item_id"]]
    describer = ItemDescriber(movies.catalog)
    features = np.random.default_rng(seed).normal(size=(len(ids), 4, 16)).astype(np.float32)
    bank = VisualBank(Vocab(ids), np.arange(len(ids)), features)
    config = UniMPConfig(lm="tiny", cross_every=1, lora_rank=4, history=3, retrieval_dim=8,
                         seed=seed)  # fmt: skip
    return build_model(config, bank, [describer.title(i) for i in ids]), describer


@pytest.fixture(scope="module")
def unimp(movies) -> tuple[UniMP, ItemDescriber]:
    return tiny_unimp(movies)


def pmg_model(pipe: PersonalizedGenerationPipeline) -> SoftPreferenceModel:
    llm, tokenizer = tiny_causal_lm()
    return SoftPreferenceModel(llm, tokenizer, pipe.generator, num_tokens=2)


def conditioner(pipe, unimp, **params) -> UniMPImageConditioner:
    model, describer = unimp
    pmg = params.pop("pmg", None)
    return UniMPImageConditioner(model, describer, pipe.generator, pmg=pmg, **params)


@pytest.fixture(scope="module")
def trained(pipe, movies, unimp, tmp_path_factory) -> dict:
    """A 30-step run on u1's and u2's next liked posters, and the model before it."""
    model = unimp[0]
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    unet = {k: v.detach().clone() for k, v in pipe.generator.pipeline.unet.state_dict().items()}
    examples = soft_examples(pipe, movies, ["u1", "u2"])
    untrained = conditioner(pipe, unimp, **TRAIN)
    before = untrained.evaluate(examples, seed=3)
    out = tmp_path_factory.mktemp("cond")
    fitted, run = train_unimp_conditioning(
        pipe, movies, ["u1", "u2"], *unimp, out, TRAIN, progress=False
    )
    return {"examples": examples, "before": before, "model": fitted, "run": run, "out": out,
            "weights": weights, "unet": unet}  # fmt: skip


def test_replace_and_join_give_tokens_in_the_text_encoder_width(pipe, unimp) -> None:
    width = int(pipe.generator.encode_prompt([""]).shape[-1])
    history = ["m1", "m0"]
    replace = conditioner(pipe, unimp, num_tokens=3).soft_tokens(history)
    assert replace.shape == (3, width)
    pmg = pmg_model(pipe)
    joined = conditioner(pipe, unimp, num_tokens=3, mode="join", pmg=pmg)
    text = "1. Moon Base\n2. Space Odyssey"
    tokens = joined.soft_tokens(history, text)
    assert tokens.shape == (5, width) and joined.soft_token_count == 5
    assert torch.equal(tokens[:2], pmg.soft_tokens(text))  # PMG's first, unchanged
    # The UniMP part of the join has the same shape as replace's, from its own map.
    assert torch.equal(tokens[2:], joined.encoder(joined.states([history]))[0])
    # The state is standardized before the map: its scale (the backbone's) does not matter.
    states = joined.states([history])
    with torch.no_grad():
        assert torch.allclose(joined.encoder(states * 40.0), joined.encoder(states), atol=1e-4)
    with pytest.raises(ConfigError, match="join mode needs"):
        conditioner(pipe, unimp, mode="join")
    with pytest.raises(ConfigError, match="mode"):
        conditioner(pipe, unimp, mode="swap")


def test_the_pipeline_renders_with_unimp_tokens_in_either_mode(pipe, movies, unimp) -> None:
    prepared = pipe.prepare(movies, "u1", "m7")
    replace = conditioner(pipe, unimp).condition(prepared)
    assert replace.soft_tokens.shape[0] == 4 and "UniMP" in replace.notes[-1]
    result = pipe.render(replace, weights=["1:1"], n_candidates=1, method="soft")
    assert result.candidates[0].condition["token_counts"]["soft"] == 4
    pmg = pmg_model(pipe)
    with_pmg = prepared.__class__(**{**prepared.__dict__, "soft_tokens": pmg.soft_tokens("x")})
    joined = conditioner(pipe, unimp, mode="join", pmg=pmg).condition(with_pmg)
    assert torch.equal(joined.soft_tokens[:2], with_pmg.soft_tokens)
    assert pipe.render(joined, weights=["1:1"], n_candidates=1, method="both").candidates
    with pytest.raises(ConfigError, match="PMG soft tokens"):
        conditioner(pipe, unimp, mode="join", pmg=pmg).condition(prepared)


def test_training_lowers_the_diffusion_loss_and_only_the_map_trains(trained, pipe, unimp) -> None:
    run, model = trained["run"], trained["model"]
    losses = np.array(run.losses)
    assert (run.first_step, run.last_step) == (1, 30) and np.isfinite(losses).all()
    after = model.evaluate(trained["examples"], seed=3)
    assert after < trained["before"] - 0.05, (trained["before"], after)
    for key, value in unimp[0].state_dict().items():  # UniMP and the UNet stay frozen
        assert torch.equal(value, trained["weights"][key]), key
    for key, value in pipe.generator.pipeline.unet.state_dict().items():
        assert torch.equal(value, trained["unet"][key]), key
    assert set(model.encoder.state_dict()) == {"proj.weight", "proj.bias"}
    files = sorted(p.name for p in (trained["out"] / "checkpoint").glob("[!.]*"))
    assert files == ["optimizer.safetensors", "state.json", "trainable.safetensors"]


def test_tokens_depend_on_the_history_and_reload_from_the_checkpoint(
    trained, pipe, unimp, movies
) -> None:
    model = trained["model"]
    space, comedy = model.soft_tokens(["m1", "m0"]), model.soft_tokens(["m7", "m3", "m2"])
    assert not torch.allclose(space, comedy, atol=1e-3)
    assert torch.equal(space, model.soft_tokens(["m1", "m0"]))
    loaded = UniMPImageConditioner.from_checkpoint(trained["out"], *unimp, pipe.generator)
    assert loaded.config == model.config
    assert torch.equal(loaded.soft_tokens(["m1", "m0"]), space)
    other = tiny_unimp(movies, seed=1)  # another UniMP model: refused, not silently used
    with pytest.raises(ConfigError, match="another UniMP model"):
        UniMPImageConditioner.from_checkpoint(trained["out"], *other, pipe.generator)
    with pytest.raises(DataError, match="UniMP model's items"):
        model.soft_tokens(["not-an-item"])


def test_the_target_item_never_reaches_the_unimp_input(pipe, movies, unimp, monkeypatch) -> None:
    seen: list[list[str]] = []
    real = ic.user_states

    def spy(model, describer, histories, batch=16):
        seen.extend(list(h) for h in histories)
        return real(model, describer, histories, batch)

    monkeypatch.setattr(ic, "user_states", spy)
    examples = soft_examples(pipe, movies, ["u1", "u2"])
    model = conditioner(pipe, unimp)
    for example in examples:
        seen.clear()
        model._example_input(example)
        assert seen == [list(reversed(example.history_ids))]  # the history, oldest first
        assert example.item_id not in seen[0]
    leaky = examples[1].__class__(
        examples[1].history, examples[1].image, "", "m1", ("m1", "m0")
    )  # the target inside its own history
    with pytest.raises(DataError, match="has it in its history"):
        model._example_input(leaky)


def test_resume_equals_one_uninterrupted_run(pipe, movies, unimp, tmp_path: Path) -> None:
    settings = {"batch_size": 2, "learning_rate": 1e-2, "checkpoint_every": 1000}
    examples = soft_examples(pipe, movies, ["u1", "u2"])
    straight = conditioner(pipe, unimp, steps=6, **settings)
    whole = straight.train(examples, tmp_path / "straight", progress=False)
    first = conditioner(pipe, unimp, steps=3, **settings)
    first.train(examples, tmp_path / "split", progress=False)
    resumed_model = conditioner(pipe, unimp, steps=6, **settings)
    resumed = resumed_model.train(examples, tmp_path / "split", resume=True, progress=False)
    assert (resumed.first_step, resumed.last_step) == (4, 6)
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-6)
    for key, value in straight.encoder.state_dict().items():
        assert torch.allclose(resumed_model.encoder.state_dict()[key], value, atol=1e-6), key
    with pytest.raises(ConfigError, match="num_tokens"):
        conditioner(pipe, unimp, steps=6, num_tokens=2, **settings).train(
            examples, tmp_path / "split", resume=True, progress=False
        )


def test_join_trains_after_pmg_tokens_it_leaves_frozen(pipe, movies, unimp, tmp_path) -> None:
    pmg = pmg_model(pipe)
    frozen = {k: v.detach().clone() for k, v in pmg.encoder.state_dict().items()}
    model = conditioner(pipe, unimp, mode="join", pmg=pmg, steps=4, batch_size=2)
    examples = soft_examples(pipe, movies, ["u1"])
    _, pmg_tokens = model._example_input(examples[0])
    assert torch.equal(pmg_tokens, pmg.soft_tokens(examples[0].history).float().cpu())
    run = model.train(examples, tmp_path, progress=False)
    assert len(run.losses) == 4 and np.isfinite(run.losses).all()
    for key, value in pmg.encoder.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    llm, tokenizer = tiny_causal_lm()
    other = SoftPreferenceModel(llm, tokenizer, pipe.generator, num_tokens=2, seed=1)
    with pytest.raises(ConfigError, match="or PMG checkpoint"):
        UniMPImageConditioner.from_checkpoint(tmp_path, *unimp, pipe.generator, pmg=other)
    loaded = UniMPImageConditioner.from_checkpoint(tmp_path, *unimp, pipe.generator, pmg=pmg)
    assert loaded.soft_tokens(["m0"], "1. Space Odyssey").shape[0] == 6


def test_the_map_draws_from_its_own_seeded_generator(pipe, unimp) -> None:
    state = torch.get_rng_state()
    first, again = conditioner(pipe, unimp), conditioner(pipe, unimp)
    other = conditioner(pipe, unimp, seed=1)
    for key, value in first.encoder.state_dict().items():
        assert torch.equal(again.encoder.state_dict()[key], value)
        assert not torch.equal(other.encoder.state_dict()[key], value)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["condition-train", "--model-dir", "nowhere", "--out", "o", "--users", "1"],
         "holds no UniMP model"),
        (["condition-train", "--model-dir", "m", "--out", "o", "--users", "1", "--mode", "swap"],
         "unknown mode 'swap'"),
        (["condition-train", "--model-dir", "m", "--out", "o", "--users", "1", "--mode", "join"],
         "pass --soft"),
        (["condition-train", "--model-dir", "m", "--out", "o", "--users", "1",
          "--num-tokens", "0"], "num_tokens"),
        (["generate", "--model-dir", "m", "--condition", "nowhere", "--user", "1", "--item", "2"],
         "holds no UniMP conditioning"),
        (["generate", "--model-dir", "m", "--condition", "c", "--user", "1", "--item", "2",
          "--method", "hard"], "unknown method 'hard'"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_code_2(
    args: list[str], fragment: str, tmp_path: Path, monkeypatch
) -> None:
    from tastemaker.cli.app import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["unimp", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.output
    assert not (tmp_path / "o").exists()


def test_cli_trains_the_map_and_generates_with_it(movies, tmp_path: Path) -> None:
    from tastemaker.cli.app import app
    from tastemaker.unimp.pipeline import prepare
    from tastemaker.unimp.saved import save_model

    movies.save(tmp_path / "data")
    config = UniMPConfig(lm="tiny", fusion="none", lora_rank=4, history=3, retrieval_dim=8)
    data = prepare(movies, config, progress=False)
    save_model(build_model(config, data.bank, data.titles), tmp_path / "unimp")
    scenario = ["--data", str(tmp_path / "data"), "--generator", "tiny", "--llm", "statistical"]
    common = ["--model-dir", str(tmp_path / "unimp"), *scenario]
    train = [
        "unimp",
        "condition-train",
        *common,
        "--out",
        str(tmp_path / "cond"),
        "--users",
        "u1,u2",
        "--train-steps",
        "3",
        "--batch-size",
        "2",
        "--heldout",
        "0",
    ]
    result = CliRunner().invoke(app, train)  # fmt: skip
    assert result.exit_code == 0, result.output
    state = (tmp_path / "cond" / "checkpoint" / "state.json").read_text()
    assert '"step": 3' in state and '"mode": "replace"' in state
    out = tmp_path / "images"
    generate = [
        "unimp",
        "generate",
        *common,
        "--condition",
        str(tmp_path / "cond"),
        "--user",
        "u1",
        "--item",
        "m7",
        "--out",
        str(out),
        "--steps",
        "2",
        "--candidates",
        "1",
        "--weights",
        "1:1",
        "--scorer",
        "none",
        "--method",
        "soft",
    ]
    result = CliRunner().invoke(app, generate)  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = (out / "result.json").read_text()
    assert "UniMP user state, replace (4) from" in saved  # names the checkpoint used
