"""tastemaker: multimodal recommendation and personalized multimodal generation."""

from tastemaker.data.catalog import Catalog
from tastemaker.data.dataset import Dataset, Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import TastemakerError

__all__ = ["Catalog", "Dataset", "Interactions", "Split", "TastemakerError"]
__version__ = "0.1.0"
