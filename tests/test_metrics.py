"""Each metric against values worked out by hand (RecBole's definitions)."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest

from tastemaker.errors import DataError
from tastemaker.evaluation.metrics import (
    METRICS,
    average_precision,
    coverage,
    hit_rate,
    mrr,
    ndcg,
    precision,
    recall,
)

# Four users at K = 4:
#   0: ranking [0,1,0,1], |R| = 3   (hits at ranks 2 and 4)
#   1: ranking [1,1,1,0], |R| = 3   (perfect: every relevant item on top)
#   2: ranking [0,0,0,0], |R| = 2   (no hits)
#   3: ranking [0,0,1,0], |R| = 9   (|R| > K)
HITS = np.array([[0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0]], dtype=bool)
N_REL = np.array([3, 3, 2, 9])


def test_recall() -> None:
    # Σh / |R|: 2/3, 3/3, 0/2, 1/9
    np.testing.assert_allclose(recall(HITS, N_REL), [2 / 3, 1.0, 0.0, 1 / 9])


def test_precision() -> None:
    # Σh / K with K = 4: 2/4, 3/4, 0, 1/4
    np.testing.assert_allclose(precision(HITS, N_REL), [0.5, 0.75, 0.0, 0.25])


def test_hit_rate() -> None:
    np.testing.assert_allclose(hit_rate(HITS, N_REL), [1.0, 1.0, 0.0, 1.0])


def test_mrr() -> None:
    # first hit at rank 2, 1, none, 3
    np.testing.assert_allclose(mrr(HITS, N_REL), [1 / 2, 1.0, 0.0, 1 / 3])


def test_ndcg() -> None:
    # DCG = Σ h_i / log2(i+1); ideal DCG has min(|R|, K) hits on top.
    # user 0: (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3) + 1/log2(4))
    # user 1: perfect → 1
    # user 3: min(9, 4) = 4 ideal hits: (1/log2(4)) / (1 + 1/log2(3) + 1/log2(4) + 1/log2(5))
    expected = [
        (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3) + 1 / log2(4)),
        1.0,
        0.0,
        (1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4) + 1 / log2(5)),
    ]
    np.testing.assert_allclose(ndcg(HITS, N_REL), expected)


def test_average_precision() -> None:
    # Σ_i h_i · precision@i / min(|R|, K)
    # user 0: (1/2 + 2/4) / 3 = 1/3;   user 1: (1 + 1 + 1) / 3 = 1
    # user 3: (1/3) / min(9, 4) = 1/12
    np.testing.assert_allclose(average_precision(HITS, N_REL), [1 / 3, 1.0, 0.0, 1 / 12])


def test_k_equals_one() -> None:
    # K = 1: a hit gives 1 everywhere except recall (1/|R|); a miss gives 0 everywhere.
    hits = np.array([[True], [False]])
    n_rel = np.array([4, 1])
    values = {name: fn(hits, n_rel) for name, fn in METRICS.items()}
    np.testing.assert_allclose(values["recall"], [0.25, 0.0])
    for name in ("precision", "hit", "mrr", "ndcg", "map"):
        np.testing.assert_allclose(values[name], [1.0, 0.0], err_msg=name)


def test_prefix_gives_smaller_k() -> None:
    # ndcg@2 of user 0 ([0,1], |R| = 3): (1/log2(3)) / (1 + 1/log2(3)); map@2: (1/2) / 2
    np.testing.assert_allclose(ndcg(HITS[:1, :2], N_REL[:1]), [(1 / log2(3)) / (1 + 1 / log2(3))])
    np.testing.assert_allclose(average_precision(HITS[:1, :2], N_REL[:1]), [0.25])


def test_metric_names() -> None:
    assert set(METRICS) == {"recall", "precision", "hit", "mrr", "ndcg", "map"}


def test_users_without_relevant_items_are_rejected() -> None:
    with pytest.raises(DataError, match="no relevant items"):
        recall(HITS[:2], np.array([3, 0]))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(DataError, match="shape"):
        ndcg(HITS, N_REL[:3])
    with pytest.raises(DataError, match="shape"):
        ndcg(np.zeros((2, 0), dtype=bool), np.array([1, 1]))


def test_coverage() -> None:
    # items {0, 1, 2, 7} of a 10-item catalog
    assert coverage(np.array([[0, 1], [1, 2], [7, 0]]), 10) == pytest.approx(0.4)
    assert coverage(np.array([], dtype=np.int64), 5) == 0.0


def test_coverage_rejects_foreign_indices() -> None:
    with pytest.raises(DataError, match="outside"):
        coverage(np.array([0, 10]), 10)
    with pytest.raises(DataError, match="empty catalog"):
        coverage(np.array([0]), 0)
