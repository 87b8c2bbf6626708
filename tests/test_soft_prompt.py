"""Soft preference tokens: training by the diffusion loss, checkpoints, resuming, freezing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.conditioning import build_condition
from tastemaker.generation.generator import ImageGenerator
from tastemaker.generation.soft_prompt import SoftPreferenceModel, image_tensor
from tastemaker.generation.soft_training import SoftPreferenceTrainer, SoftPromptExample
from tastemaker.generation.tiny import tiny_causal_lm, tiny_stable_diffusion_xl

SCI_FI = "1. Alien (horror, sci-fi): space, dark\n2. Gravity (sci-fi): astronaut, space"
COMEDY = "1. Toy Story (animation, comedy): toys, family\n2. Up (animation): balloons, house"


@pytest.fixture(scope="module")
def generator() -> ImageGenerator:
    return ImageGenerator(model="tiny", num_inference_steps=3)


@pytest.fixture(scope="module")
def examples() -> list[SoftPromptExample]:
    photos = {"astronaut": skimage.data.astronaut(), "coffee cup": skimage.data.coffee()}
    photos["cat"] = skimage.data.chelsea()
    histories = [SCI_FI, COMEDY, SCI_FI]
    return [
        SoftPromptExample(history, Image.fromarray(photo), prompt)
        for history, (prompt, photo) in zip(histories, photos.items(), strict=True)
    ]


def trainer(generator: ImageGenerator, **params) -> SoftPreferenceTrainer:
    llm, tokenizer = tiny_causal_lm()
    return SoftPreferenceTrainer(llm, tokenizer, generator, **params)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def trained(generator, examples, tmp_path_factory) -> dict:
    """One 30-step run that overfits the three photos, with what it was before."""
    model = trainer(generator, steps=30, batch_size=3, learning_rate=3e-2, checkpoint_every=1000)
    pipe = generator.pipeline
    frozen = {"llm": model.llm, "unet": pipe.unet, "vae": pipe.vae, "text": pipe.text_encoder}
    before = {name: snapshot(module) for name, module in frozen.items()}
    start = snapshot(model.encoder)
    loss_before = model.evaluate(examples, seed=5)
    out = tmp_path_factory.mktemp("soft-run")
    run = model.train(examples, out, progress=False)
    return {
        "model": model,
        "run": run,
        "out": out,
        "frozen": frozen,
        "before": before,
        "start": start,
        "loss_before": loss_before,
    }


def test_image_tensor_crops_to_the_aspect_and_scales_to_unit_range() -> None:
    # 6 wide, 2 high: black, a white 2x2 centre, black. The centre square is all white.
    pixels = np.zeros((2, 6, 3), np.uint8)
    pixels[:, 2:4] = 255
    square = image_tensor([Image.fromarray(pixels)], 2, 2)
    assert square.shape == (1, 3, 2, 2) and torch.equal(square, torch.ones(1, 3, 2, 2))
    wide = image_tensor([Image.fromarray(pixels)], 2, 6)  # same aspect: untouched
    assert torch.equal(wide[0, 0], torch.from_numpy(pixels[:, :, 0] / 127.5 - 1).float())
    grey = image_tensor([Image.new("L", (5, 9), 51)], 4, 4)  # grey converts to RGB
    assert grey.shape == (1, 3, 4, 4) and torch.allclose(grey, torch.tensor(51 / 127.5 - 1))


def test_training_makes_the_diffusion_loss_fall(trained, examples) -> None:
    run, model = trained["run"], trained["model"]
    losses = np.array(run.losses)
    assert (run.first_step, run.last_step, len(losses)) == (1, 30, 30)
    assert np.isfinite(losses).all()
    assert losses[-10:].mean() < losses[:10].mean() - 0.03
    # Same noise and timesteps before and after: only the trained parts differ.
    after = model.evaluate(examples, seed=5)
    assert after < trained["loss_before"] - 0.05
    assert model.evaluate(examples, seed=5) == after  # evaluation is deterministic


def test_training_writes_log_plot_and_checkpoint(trained) -> None:
    out = trained["out"]
    log = json.loads((out / "training_log.json").read_text())
    assert [r["step"] for r in log] == list(range(1, 31))
    assert [r["loss"] for r in log] == pytest.approx(trained["run"].losses)
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    files = sorted(p.name for p in (out / "checkpoint").iterdir() if not p.name.startswith("."))
    assert files == ["optimizer.safetensors", "state.json", "trainable.safetensors"]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 30 and state["config"]["num_tokens"] == 4
    assert not list(out.glob("**/*.pt")) and not list(out.glob("**/*.bin"))


def test_only_tokens_prefix_and_projection_train(trained) -> None:
    for name, module in trained["frozen"].items():
        now = module.state_dict()
        for key, value in trained["before"][name].items():
            assert torch.equal(now[key], value), f"{name}.{key} changed"
        assert not any(p.requires_grad for p in module.parameters()), name
    trained_now = trained["model"].encoder.state_dict()
    assert set(trained_now) == {"tokens", "prefix", "proj.weight", "proj.bias"}
    for key, value in trained["start"].items():
        assert not torch.equal(trained_now[key], value), f"{key} did not train"


def test_soft_tokens_depend_on_the_history_and_reload(trained, generator) -> None:
    model = trained["model"]
    sci_fi, comedy = model.soft_tokens(SCI_FI), model.soft_tokens(COMEDY)
    assert sci_fi.shape == (4, 32)
    assert torch.equal(sci_fi, model.soft_tokens(SCI_FI))
    assert not torch.allclose(sci_fi, comedy)
    # Left padding and shifted positions: a batch gives each history its own tokens.
    ids, mask = model._llm_batch([model._history_ids(SCI_FI), model._history_ids(COMEDY)])
    with torch.no_grad():
        batch = model.encoder(model.llm, ids, mask)
    assert torch.allclose(batch, torch.stack([sci_fi, comedy]), atol=1e-5)
    llm, tokenizer = tiny_causal_lm()
    loaded = SoftPreferenceModel.from_checkpoint(trained["out"], llm, tokenizer, generator)
    assert loaded.config == model.config
    assert torch.equal(loaded.soft_tokens(SCI_FI), sci_fi)
    # The tokens join the condition and drive a generation.
    cond = build_condition(generator, ["dark"], ["astronaut"], soft_tokens=sci_fi)
    assert torch.equal(cond.embeds.embeds[0, :4], sci_fi)
    assert len(generator.generate(cond.embeds, cond.negative, progress=False).images) == 1


def test_init_and_training_draw_from_their_own_generators(
    generator, examples, tmp_path: Path
) -> None:
    """The seed alone fixes the initial parameters, and torch's global RNG is never touched."""
    state = torch.get_rng_state()
    first, again = (
        trainer(generator, steps=2, batch_size=2),
        trainer(generator, steps=2, batch_size=2),
    )
    other = trainer(generator, steps=2, batch_size=2, seed=1)
    for key, value in first.encoder.state_dict().items():
        assert torch.equal(again.encoder.state_dict()[key], value), key
        assert not torch.equal(other.encoder.state_dict()[key], value), key
    first.train(examples, tmp_path, progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_resume_continues_the_step_count_and_matches_one_run(
    generator, examples, tmp_path: Path
) -> None:
    settings = {"batch_size": 2, "learning_rate": 1e-2, "checkpoint_every": 1000}
    straight = trainer(generator, steps=6, **settings)
    whole = straight.train(examples, tmp_path / "straight", progress=False)
    first = trainer(generator, steps=3, **settings).train(
        examples, tmp_path / "split", progress=False
    )
    assert first.last_step == 3
    resumed_model = trainer(generator, steps=6, **settings)
    resumed = resumed_model.train(examples, tmp_path / "split", resume=True, progress=False)
    assert (resumed.first_step, resumed.last_step) == (4, 6)
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-6)
    for key, value in straight.encoder.state_dict().items():
        assert torch.allclose(resumed_model.encoder.state_dict()[key], value, atol=1e-6), key
    # Another configuration or other examples are another run: refused, not mixed.
    with pytest.raises(ConfigError, match="num_tokens"):
        trainer(generator, steps=6, num_tokens=2, **settings).train(
            examples, tmp_path / "split", resume=True, progress=False
        )
    with pytest.raises(DataError, match="other examples"):
        trainer(generator, steps=8, **settings).train(
            examples[:2], tmp_path / "split", resume=True, progress=False
        )


def test_bad_examples_are_refused(generator, examples) -> None:
    model = trainer(generator, steps=1)
    with pytest.raises(DataError, match="no training examples"):
        model.evaluate([])
    with pytest.raises(DataError, match=r"PIL\.Image\.open"):
        model.evaluate([SoftPromptExample(SCI_FI, "poster.jpg")])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="empty history"):
        model.evaluate([SoftPromptExample("  ", examples[0].image)])
    with pytest.raises(DataError, match="tokens, over the 71"):
        model.evaluate([SoftPromptExample(SCI_FI, examples[0].image, "robot " * 80)])
    with pytest.raises(ConfigError, match="template"):
        trainer(generator, template="no history here")


def test_no_prefix_and_sdxl_also_train(examples, tmp_path: Path) -> None:
    plain = trainer(ImageGenerator(model="tiny"), prefix_length=0, steps=2, batch_size=2)
    assert plain.encoder.prefix.numel() == 0
    assert np.isfinite(plain.train(examples, tmp_path / "plain", progress=False).losses).all()
    xl = ImageGenerator(pipeline=tiny_stable_diffusion_xl(), num_inference_steps=2)
    model = trainer(xl, num_tokens=2, steps=2, batch_size=2)
    assert np.isfinite(model.train(examples, tmp_path / "xl", progress=False).losses).all()
    soft = model.soft_tokens(SCI_FI)
    assert soft.shape == (2, 64)  # both text encoders' widths
    cond = build_condition(xl, ["dark"], ["astronaut"], soft_tokens=soft)
    assert len(xl.generate(cond.embeds, cond.negative, progress=False).images) == 1
