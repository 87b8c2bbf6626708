"""tastemaker: multimodal recommendation and personalized multimodal generation.

The data classes of the public API are imported on first use (PEP 562), so that
``import tastemaker`` (and with it every ``tastemaker`` command's start) does not
pay for polars and NumPy; ``from tastemaker import Dataset`` works as before.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tastemaker.errors import TastemakerError

if TYPE_CHECKING:
    from tastemaker.data.catalog import Catalog
    from tastemaker.data.dataset import Dataset, Split
    from tastemaker.data.interactions import Interactions

__all__ = ["Catalog", "Dataset", "Interactions", "Split", "TastemakerError"]
__version__ = "0.1.0"

# Public name -> the module that defines it.
_LAZY = {
    "Catalog": "tastemaker.data.catalog",
    "Dataset": "tastemaker.data.dataset",
    "Interactions": "tastemaker.data.interactions",
    "Split": "tastemaker.data.dataset",
}


def __getattr__(name: str) -> Any:
    """Import a public data class on first access and keep it as a module attribute."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tastemaker' has no attribute '{name}'")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
