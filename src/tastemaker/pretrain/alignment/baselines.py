"""The non-contrastive baseline an aligned space is measured against: a ridge map.

Raw features of different widths cannot be compared at all, so the usual
alternative to contrastive heads is a linear least-squares map from one
modality's features to the other's.
"""

from __future__ import annotations

import numpy as np

from tastemaker.pretrain.alignment.retrieval import KS, Retrieval, retrieval_metrics

RIDGE_PENALTIES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
DEFAULT_PENALTY = 100.0  # without valid items to choose one


def ridge_retrieval(
    x_image: np.ndarray,
    x_text: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
) -> Retrieval:
    """Test retrieval of a ridge map from standardised image features to text features.

    Predicted and actual text features are compared by cosine, both centred on the
    train texts' mean (so the shared direction of all texts does not dominate).
    The penalty is the one of :data:`RIDGE_PENALTIES` with the best mean valid
    Recall@10 (:data:`DEFAULT_PENALTY` without valid items).
    """
    x = x_image.astype(np.float64)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x = (x - mean) / np.where(std > 1e-6, std, 1.0)
    y = x_text.astype(np.float64) - x_text[train].mean(axis=0)
    gram, target = x[train].T @ x[train], x[train].T @ y[train]

    def retrieval(penalty: float, rows: np.ndarray) -> Retrieval:
        weights = np.linalg.solve(gram + penalty * np.eye(len(gram)), target)
        return retrieval_metrics(unit_rows(x[rows] @ weights), unit_rows(y[rows]))

    def valid_score(penalty: float) -> float:
        recall = retrieval(penalty, valid)
        return recall.image_to_text[KS[-1]] + recall.text_to_image[KS[-1]]

    penalty = max(RIDGE_PENALTIES, key=valid_score) if len(valid) >= 2 else DEFAULT_PENALTY
    return retrieval(penalty, test)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (all-zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
