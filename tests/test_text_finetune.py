"""LoRA fine-tuning on a tiny random Llama: the loss falls, adapters round-trip,
resuming continues exactly, the base weights stay, and the hf backend loads an adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tastemaker.errors import ConfigError
from tastemaker.generation.tiny import tiny_causal_lm
from tastemaker.text.finetune import (
    ADAPTER,
    CHECKPOINT,
    IGNORE,
    LOG_FILE,
    PLOT_FILE,
    Example,
    FinetuneConfig,
    encode,
    finetune,
)

torch.set_num_threads(1)
TRAIN = [Example(f"Tag the movie number {n}.", "comedy" if n % 2 else "drama") for n in range(8)]
VALID = [Example(f"Tag the movie number {n}.", "comedy" if n % 2 else "drama") for n in (8, 9)]
# The random tiny model's logits are near-uniform and its width small: LoRA on lm_head
# too lets three epochs show learning (q/v alone move the loss by ~0.3).
CONFIG = FinetuneConfig(
    rank=8, learning_rate=3e-2, epochs=3, batch_size=4, max_length=64,
    target_modules=("q_proj", "v_proj", "lm_head"),
)  # fmt: skip


def lora_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}


def test_labels_cover_exactly_the_target_and_end_token() -> None:
    _, tokenizer = tiny_causal_lm()
    ids, labels = encode(tokenizer, Example("a prompt", "drama"), 64)
    target = tokenizer("drama", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert len(ids) == len(labels) and ids[-len(target) :] == target
    assert labels == [IGNORE] * (len(ids) - len(target)) + target
    short, _ = encode(tokenizer, Example("a long prompt " * 30, "drama"), 20)
    assert len(short) == 20 and short[-len(target) :] == target  # the prompt's start is cut


def test_loss_falls_and_the_base_model_is_unchanged(tmp_path: Path) -> None:
    model, tokenizer = tiny_causal_lm()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    result = finetune(model, tokenizer, TRAIN, VALID, tmp_path, CONFIG)
    losses = [e["train_loss"] for e in result.log]
    assert losses[-1] < 0.7 * losses[0]
    assert result.log[result.best_epoch - 1]["valid_loss"] == min(
        e["valid_loss"] for e in result.log
    )
    assert (tmp_path / LOG_FILE).is_file() and (tmp_path / PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    base_now = model.state_dict()  # peft injected its layers into the model in place
    for key, value in base.items():  # peft renames wrapped layers' weights to base_layer
        now = base_now.get(key, base_now.get(key.replace(".weight", ".base_layer.weight")))
        assert torch.equal(now, value), key


def test_a_saved_adapter_gives_identical_logits(tmp_path: Path) -> None:
    from peft import PeftModel

    model, tokenizer = tiny_causal_lm()
    config = CONFIG.model_copy(update={"epochs": 1})
    finetune(model, tokenizer, TRAIN, VALID, tmp_path, config)
    ids = torch.tensor([encode(tokenizer, VALID[0], 64)[0]])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        loaded = PeftModel.from_pretrained(tiny_causal_lm()[0], str(tmp_path / ADAPTER))
        again = loaded(input_ids=ids).logits
        plain = tiny_causal_lm()[0](input_ids=ids).logits
    assert torch.equal(again, trained) and not torch.allclose(plain, trained)


def test_resuming_continues_exactly_and_refuses_other_settings(tmp_path: Path) -> None:
    model, tokenizer = tiny_causal_lm()
    whole = finetune(model, tokenizer, TRAIN, VALID, tmp_path / "a", CONFIG)
    first = tiny_causal_lm()[0]
    finetune(
        first, tokenizer, TRAIN, VALID, tmp_path / "b", CONFIG.model_copy(update={"epochs": 2})
    )
    second = tiny_causal_lm()[0]
    resumed = finetune(second, tokenizer, TRAIN, VALID, tmp_path / "b", CONFIG, resume=True)
    assert [e["train_loss"] for e in resumed.log] == [e["train_loss"] for e in whole.log]
    a, b = lora_weights(model), lora_weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "b" / CHECKPOINT / "optimizer.safetensors").is_file()
    with pytest.raises(ConfigError, match="other fine-tuning settings"):
        other = CONFIG.model_copy(update={"rank": 2})
        finetune(tiny_causal_lm()[0], tokenizer, TRAIN, VALID, tmp_path / "b", other, resume=True)


def test_the_hf_backend_loads_an_adapter(tmp_path: Path, monkeypatch) -> None:
    from tastemaker.llm import hf
    from tastemaker.llm.base import LLMConfig

    model, tokenizer = tiny_causal_lm()
    finetune(model, tokenizer, TRAIN, VALID, tmp_path, CONFIG.model_copy(update={"epochs": 1}))
    base_tokenizer, base = tiny_causal_lm()[::-1]  # the cached plain model stands in
    monkeypatch.setattr(hf, "load_causal_lm", lambda *a: (base_tokenizer, base))
    hf.load_adapted.cache_clear()
    chat = hf.HFChat(LLMConfig(model="tiny", adapter=str(tmp_path / ADAPTER)))
    _, merged = chat.load()
    ids = torch.tensor([encode(tokenizer, VALID[0], 64)[0]])
    plain = tiny_causal_lm()[0]
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)
        # merged into a copy: the cached base model still gives the untrained logits
        assert torch.equal(base(input_ids=ids).logits, plain(input_ids=ids).logits)
        assert not torch.allclose(merged(input_ids=ids).logits, plain(input_ids=ids).logits)
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        hf.HFChat(LLMConfig(model="tiny", adapter=str(tmp_path))).load()
    hf.load_adapted.cache_clear()


def test_training_pairs_are_the_inference_prompts_of_earlier_records() -> None:
    from tastemaker.text.finetune_data import training_pairs
    from tastemaker.text.profiles import ProfileEntry
    from tastemaker.text.retrievers import create_retriever
    from tastemaker.text.tasks import RatingScale, Task

    records = [ProfileEntry(f"i{n}", n, f"Movie {n}", str(n % 5 + 1)) for n in range(4)]
    task = Task("rating", "toy", (), {"u1": records}, scale=RatingScale(1, 5, 1))
    pairs = training_pairs(task, create_retriever("recency"), 2)
    assert [p.target for p in pairs] == ["1", "2", "3", "4"]
    last = pairs[-1].prompt  # the two newest earlier records, never the record itself
    assert "Movie 2" in last and "Movie 1" in last and "Movie 0" not in last
    assert last.count("Movie 3") == 1 and "movie: Movie 3" in last
    assert "Movie" not in pairs[0].prompt.replace("movie: Movie 0", "")
    with pytest.raises(ConfigError, match="not available for the explanation task"):
        training_pairs(Task("explanation", "toy", (), {}), create_retriever("recency"), 2)
