"""Multimodal pretraining: heads and encoders trained on a catalog's own content.

Importing this package is cheap: torch loads when a model is built or trained.
"""

from tastemaker.pretrain.alignment import (
    AlignedSpace,
    AlignmentConfig,
    Retrieval,
    info_nce,
    retrieval_metrics,
    train_alignment,
)

__all__ = [
    "AlignedSpace",
    "AlignmentConfig",
    "Retrieval",
    "info_nce",
    "retrieval_metrics",
    "train_alignment",
]
