"""Recommenders: the common contract, the registry and the built-in models.

Each built-in model module is imported here (explicitly, no plugin scanning),
which registers its name with the registry.
"""

from tastemaker.models.als import ALS, ALSConfig
from tastemaker.models.base import Recommender
from tastemaker.models.biased_mf import BiasedMF, BiasedMFConfig
from tastemaker.models.bm3 import BM3, BM3Config
from tastemaker.models.bpr import BPR, BPRConfig
from tastemaker.models.clcrec import CLCRec, CLCRecConfig
from tastemaker.models.config import ModelConfig, TrainableConfig
from tastemaker.models.ease import EASE, EASEConfig
from tastemaker.models.freedom import FREEDOM, FREEDOMConfig
from tastemaker.models.gru4rec import GRU4Rec, GRU4RecConfig
from tastemaker.models.itemknn import ItemKNN, ItemKNNConfig
from tastemaker.models.lightgcn import LightGCN, LightGCNConfig
from tastemaker.models.mm_sasrec import MMSASRec, MMSASRecConfig
from tastemaker.models.most_popular import MostPopular
from tastemaker.models.registry import available_models, create_model, get_model_class, register
from tastemaker.models.sasrec import SASRec, SASRecConfig
from tastemaker.models.training import IterativeRecommender
from tastemaker.models.unisrec import UniSRec, UniSRecConfig
from tastemaker.models.vbpr import VBPR, VBPRConfig

__all__ = [
    "ALS",
    "BM3",
    "BPR",
    "EASE",
    "FREEDOM",
    "VBPR",
    "ALSConfig",
    "BM3Config",
    "BPRConfig",
    "BiasedMF",
    "BiasedMFConfig",
    "CLCRec",
    "CLCRecConfig",
    "EASEConfig",
    "FREEDOMConfig",
    "GRU4Rec",
    "GRU4RecConfig",
    "ItemKNN",
    "ItemKNNConfig",
    "IterativeRecommender",
    "LightGCN",
    "LightGCNConfig",
    "MMSASRec",
    "MMSASRecConfig",
    "ModelConfig",
    "MostPopular",
    "Recommender",
    "SASRec",
    "SASRecConfig",
    "TrainableConfig",
    "UniSRec",
    "UniSRecConfig",
    "VBPRConfig",
    "available_models",
    "create_model",
    "get_model_class",
    "register",
]
