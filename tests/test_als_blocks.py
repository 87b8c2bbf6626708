"""ALS solved block by block: the blocks cover the matrix exactly, and the solve and its
objective do not depend on how the rows are cut."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastemaker.models.als import solve_rows
from tastemaker.models.row_blocks import row_blocks


@pytest.fixture
def matrix() -> sp.csr_matrix:
    """7 rows x 9 columns of weights 2.0; row 2 is empty and row 5 holds 6 cells."""
    rng = np.random.default_rng(3)
    dense = (rng.random((7, 9)) < 0.3).astype(np.float32)
    dense[2] = 0
    dense[5, :6] = 1
    return sp.csr_matrix(dense * 2.0)


@pytest.mark.parametrize("cells_per_block", [1, 3, 4, 100])
def test_blocks_rebuild_the_matrix(matrix: sp.csr_matrix, cells_per_block: int) -> None:
    blocks = row_blocks(matrix, cells_per_block)
    assert [b.start for b in blocks] == [0] + [b.stop for b in blocks[:-1]]
    assert blocks[-1].stop == matrix.shape[0]
    rebuilt = np.zeros(matrix.shape, np.float32)
    for block in blocks:
        columns = block.columns
        assert (np.diff(columns) > 0).all()  # distinct, ascending
        rebuilt[block.start : block.stop, columns] = block.cells.to_dense().numpy()
        # A block ends at the first row that passes its share of cells.
        longest = int(np.diff(matrix.indptr)[block.start : block.stop].max())
        assert block.cells.values().numel() < cells_per_block + longest
    np.testing.assert_array_equal(rebuilt, matrix.toarray())


def test_blocks_cut_rows_by_their_cells(matrix: sp.csr_matrix) -> None:
    # Cells per row 4, 2, 0, 3, 2, 8, 3: a block starts at the row holding cell 4, 8, 12, ...
    # so the empty row 2 rides with row 1 and the long row 5 is a block of its own.
    spans = [(b.start, b.stop) for b in row_blocks(matrix, 4)]
    assert spans == [(0, 1), (1, 3), (3, 5), (5, 6), (6, 7)]
    assert [(b.start, b.stop) for b in row_blocks(matrix, 100)] == [(0, 7)]


def _objective(x: np.ndarray, y: np.ndarray, weights: np.ndarray, reg: float) -> float:
    """Σ_ui c_ui (p_ui − x_u·y_i)² + λ(‖X‖² + ‖Y‖²), c = 1 + w, p = 1 where w is stored."""
    p = (weights > 0).astype(np.float64)
    return float(((1 + weights) * (p - x @ y.T) ** 2).sum() + reg * ((x**2).sum() + (y**2).sum()))


@pytest.mark.parametrize("cells_per_block", [1, 4, 100])
def test_blocked_solve_is_exact_and_its_objective_true(
    matrix: sp.csr_matrix, cells_per_block: int
) -> None:
    reg, k = 0.7, 4
    generator = torch.Generator().manual_seed(1)
    other = torch.randn(9, k, generator=generator)
    y, weights = other.double().numpy(), matrix.toarray().astype(np.float64)
    exact = np.stack([
        np.linalg.solve(y.T @ np.diag(1 + w) @ y + reg * np.eye(k), y.T @ ((1 + w) * (w > 0)))
        for w in weights
    ])  # fmt: skip
    blocks = row_blocks(matrix, cells_per_block)
    # As many CG steps as factors reach the exact solution (the empty row's is 0).
    factors = torch.rand(7, k, generator=generator)
    objective = solve_rows(factors, other, blocks, reg, steps=k)
    np.testing.assert_allclose(factors.numpy(), exact, rtol=1e-3, atol=1e-4)
    assert objective == pytest.approx(_objective(factors.double().numpy(), y, weights, reg), 1e-4)
    # After one step the rows are not solved yet, and the objective still tracks them.
    factors = torch.rand(7, k, generator=generator)
    objective = solve_rows(factors, other, blocks, reg, steps=1)
    assert np.abs(factors.numpy() - exact).max() > 1e-2
    assert objective == pytest.approx(_objective(factors.double().numpy(), y, weights, reg), 1e-4)
