"""Hugging Face ``transformers`` checkpoints, and CLIP-like joint image-text models.

A joint checkpoint (``CLIPModel``, or any model with ``get_text_features`` and
``get_image_features``) puts texts and images in one space: the text encoder
uses its text tower and the image encoder its vision tower, sharing one loaded
copy. Checkpoints load by local folder or hub id; tests use a folder, so they
run with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tastemaker.encoders.base import load_error, log, model_load_errors, quiet_pil_fallback
from tastemaker.hub import check_hub_model

if TYPE_CHECKING:  # text and image import this module: importing them back is a cycle
    from tastemaker.encoders.image import ImageEncoder
    from tastemaker.encoders.text import TextEncoder

PREPROCESSOR_FILE = "preprocessor_config.json"
TRANSFORMERS_PACKAGES = ("transformers", "torch")  # what computes a checkpoint's vectors


@lru_cache(maxsize=2)
def load_transformers_model(source: str, device: str) -> Any:
    """``AutoModel`` of ``source`` in eval mode, loaded once per process (text and image share).

    A failure raises out of the cache, so it is not remembered: the next call tries again.
    """
    from transformers import AutoModel

    quiet_pil_fallback()
    try:
        check_hub_model(source)  # unreachable or unknown: fails now, not after retries
        model = AutoModel.from_pretrained(source)
    except model_load_errors() as exc:  # the user's model choice: say how to fix it
        raise load_error(source, exc) from exc
    return model.eval().to(device)


@lru_cache(maxsize=8)
def _has_two_towers(source: str) -> bool:
    """Whether the transformers config of ``source`` has a text and a vision tower.

    Raises what ``AutoConfig`` raises; only answers are cached, never a failure.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    return hasattr(config, "text_config") and hasattr(config, "vision_config")


def is_joint_model(source: str) -> bool:
    """Whether ``source`` is a joint image-text checkpoint; False, with a warning, when unreadable.

    An unreadable config (no config.json, an unknown model type, an unreachable hub)
    is not a transformers checkpoint here: the caller's other loader reports the
    problem if there is one.
    """
    try:
        return _has_two_towers(source)
    except (OSError, ValueError) as exc:
        log.warning(
            "model %s: no readable transformers config (%s: %s); not used as a joint "
            "image-text model",
            source,
            type(exc).__name__,
            exc,
        )
        return False


def preprocessor_config(source: str) -> dict[str, Any]:
    """The checkpoint's image preprocessing settings (mean, std, sizes); {} when it has none.

    Without them the image encoder falls back to ImageNet's mean and std and the
    model's input size, so that fallback is logged as a warning.
    """
    path = Path(source) / PREPROCESSOR_FILE
    reason = f"no {PREPROCESSOR_FILE}"
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, PREPROCESSOR_FILE))
        except (OSError, ValueError) as exc:  # offline, absent, or not a hub id
            reason = f"{PREPROCESSOR_FILE} not found ({type(exc).__name__}: {exc})"
    if not path.is_file():
        log.warning(
            "model %s: %s; using the default preprocessing (ImageNet mean and std, "
            "the model's input size)",
            source,
            reason,
        )
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise load_error(source, exc) from exc


def pooled(output: Any) -> Any:
    """Features from ``get_*_features``: a tensor before transformers 5, an output after."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipText:
    """The text tower of a joint checkpoint, as a text encoder backend."""

    def __init__(self, source: str, device: str) -> None:
        from transformers import AutoTokenizer

        self.model = load_transformers_model(source, device)
        self.device = device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
        except model_load_errors() as exc:
            raise load_error(source, exc) from exc
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.dim = int(self(["a"]).shape[1])

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        return pooled(output).float().cpu().numpy()


def clip_encoders(model: str, **shared: Any) -> tuple[TextEncoder, ImageEncoder]:
    """A text and an image encoder over one joint checkpoint, so their vectors are comparable.

    ``shared`` holds fields both configs take (``batch_size``, ``device``).
    """
    from tastemaker.encoders.image import ImageEncoder
    from tastemaker.encoders.text import TextEncoder

    return TextEncoder(model=model, **shared), ImageEncoder(model=model, **shared)
