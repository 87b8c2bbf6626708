"""The evaluator's fused top-K: equal to a stable descending sort of each whole row (ties
to the lower item index), whatever the ties, -inf, NaN or catalog size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tastemaker.evaluation.topk import GROUP, best_positions, top_k


def sorted_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: NumPy's stable argsort of each row, best first."""
    array = scores.numpy()
    order = np.argsort(-array, axis=1, kind="stable")[:, :k]
    return torch.from_numpy(np.take_along_axis(array, order, axis=1)), torch.from_numpy(order)


@pytest.mark.parametrize("n_items", [5, GROUP * 3, GROUP * 50, GROUP * 50 + 7])
@pytest.mark.parametrize("levels", [2, 7, None])  # few distinct values: ties everywhere
def test_top_k_equals_a_stable_sort(n_items: int, levels: int | None) -> None:
    generator = torch.Generator().manual_seed(n_items)
    shape = (40, n_items)
    if levels is None:
        scores = torch.randn(shape, generator=generator)
    else:
        scores = torch.randint(0, levels, shape, generator=generator).float()
    scores[:, ::5] = float("-inf")  # masked items
    scores[3] = float("-inf")  # a user with nothing left to rank
    for k in sorted({1, 3, min(20, n_items)}):
        values, indices = top_k(scores, k)
        expected_values, expected_indices = sorted_top(scores, k)
        assert torch.equal(indices, expected_indices), (k, levels)
        assert torch.equal(values, expected_values)


def test_ties_pick_the_lowest_items_however_grouped() -> None:
    # Every score equal: the first K items, in order, not K arbitrary ones.
    scores = torch.zeros(2, GROUP * 40)
    assert top_k(scores, 5)[1].tolist() == [[0, 1, 2, 3, 4]] * 2
    # The K-th best value shared by items in different groups: the lower ones win.
    scores[:, [7, GROUP * 9 + 1, GROUP * 30]] = 1.0
    assert top_k(scores, 2)[1].tolist() == [[7, GROUP * 9 + 1]] * 2


def test_nan_is_ranked_first_so_the_evaluator_sees_it() -> None:
    scores = torch.randn(3, GROUP * 40)
    scores[1, 1000] = float("nan")
    values, indices = top_k(scores, 10)
    assert torch.isnan(values[1, 0]) and indices[1, 0] == 1000
    assert not torch.isnan(values[[0, 2]]).any()


def test_best_positions_counts_ties_from_the_left() -> None:
    values = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 5.0]])
    assert best_positions(values, 2).tolist() == [[1, 2], [0, 4]]


@pytest.mark.parametrize("layout", ["row slice", "column slice", "transposed"])
def test_top_k_reads_blocks_of_any_layout(layout: str) -> None:
    # The group maxima read the rows through a strided view: a block whose rows are
    # longer than the catalog (a buffer's), or whose columns are not contiguous, too.
    generator = torch.Generator().manual_seed(3)
    n_items = GROUP * 60 + 5
    wide = torch.randn(50, n_items + 40, generator=generator)
    scores = {
        "row slice": wide[10:30, :n_items],
        "column slice": wide[:, 17 : 17 + n_items],
        "transposed": wide[:, :n_items].T.contiguous().T,
    }[layout]
    assert scores.stride(0) != n_items or scores.stride(1) != 1
    values, indices = top_k(scores, 20)
    expected_values, expected_indices = sorted_top(scores.contiguous(), 20)
    assert torch.equal(indices, expected_indices) and torch.equal(values, expected_values)
