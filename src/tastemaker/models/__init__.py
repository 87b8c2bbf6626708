"""Recommenders: the common contract, the registry and the built-in models.

Each built-in model module is imported here (explicitly, no plugin scanning),
which registers its name with the registry.
"""

from tastemaker.models.base import ModelConfig, Recommender, TrainableConfig
from tastemaker.models.bpr import BPR, BPRConfig
from tastemaker.models.itemknn import ItemKNN, ItemKNNConfig
from tastemaker.models.most_popular import MostPopular
from tastemaker.models.registry import available_models, create_model, get_model_class, register
from tastemaker.models.training import IterativeRecommender

__all__ = [
    "BPR",
    "BPRConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "IterativeRecommender",
    "ModelConfig",
    "MostPopular",
    "Recommender",
    "TrainableConfig",
    "available_models",
    "create_model",
    "get_model_class",
    "register",
]
