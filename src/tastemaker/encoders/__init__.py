"""Item encoders (text, image, CLIP) and the on-disk embedding store.

Importing this package is cheap: sentence-transformers, transformers and the
EfficientNet weights load only when an encoder first embeds something.
"""

from tastemaker.encoders.base import (
    NO_CONTENT,
    Encoder,
    EncoderConfig,
    EncodeStats,
    ItemEmbeddings,
    create_encoder,
    register_encoder,
)
from tastemaker.encoders.clip import clip_encoders
from tastemaker.encoders.image import ImageEncoder, ImageEncoderConfig, ImageRef
from tastemaker.encoders.store import EmbeddingStore, encode_catalog
from tastemaker.encoders.text import TextEncoder, TextEncoderConfig, TextTemplate

__all__ = [
    "NO_CONTENT",
    "EmbeddingStore",
    "EncodeStats",
    "Encoder",
    "EncoderConfig",
    "ImageEncoder",
    "ImageEncoderConfig",
    "ImageRef",
    "ItemEmbeddings",
    "TextEncoder",
    "TextEncoderConfig",
    "TextTemplate",
    "clip_encoders",
    "create_encoder",
    "encode_catalog",
    "register_encoder",
]
