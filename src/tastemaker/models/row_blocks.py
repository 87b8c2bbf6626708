"""A sparse matrix cut into blocks of consecutive rows, each with its columns renumbered.

A sweep of ALS gathers, per stored cell, the factor row of the cell's column, seven
times at 3 CG steps (:func:`.als.solve_rows`). On the whole matrix those gathers hit a
table of 50-80 MB (200k-300k rows x 64 float32), out of cache and out of the TLB's
reach. A block keeps only the distinct columns of its rows (``columns``), so its
products gather from a copy of a few MB that stays in cache across all of them: the
sweep then costs one gather from the big table per distinct column instead of seven
per cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from tastemaker.models.lightgcn import csr_tensor

# Gathered factor rows per block at most, in floats: 2**20 (4 MB of float32), i.e.
# 16,384 cells at 64 factors, about half of them distinct columns on Zipf-like data.
# Measured at 5M interactions (scale.py's data): 8k-32k cells per block within 10% of
# each other, 64k ~1.5x slower; at 20M, 16k made the sweeps 2.1x faster than unblocked.
BLOCK_FLOATS = 2**20


@dataclass(frozen=True)
class RowBlock:
    """Rows ``start`` to ``stop`` (exclusive); ``cells`` is their CSR tensor over the
    block's own columns, ``columns`` the matrix's column of each (ascending)."""

    start: int
    stop: int
    columns: np.ndarray
    cells: torch.Tensor


def row_blocks(matrix: sp.csr_matrix, cells_per_block: int) -> list[RowBlock]:
    """Cut ``matrix`` into blocks of whole rows with about ``cells_per_block`` stored
    cells each (a longer row is a block of its own); every row is in one block."""
    indptr = matrix.indptr.astype(np.int64)
    n_rows = matrix.shape[0]
    # The first row of each block: where the running count of cells passes a multiple.
    marks = np.arange(cells_per_block, matrix.nnz, cells_per_block)
    starts = np.unique(np.r_[0, np.searchsorted(indptr, marks, side="right") - 1])
    stops = np.r_[starts[1:], n_rows]
    blocks = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        first, last = indptr[start], indptr[stop]
        columns, local = np.unique(matrix.indices[first:last], return_inverse=True)
        block = sp.csr_matrix(
            (matrix.data[first:last], local.ravel(), indptr[start : stop + 1] - first),
            shape=(stop - start, len(columns)),
        )
        blocks.append(RowBlock(start, stop, columns.astype(np.int64), csr_tensor(block)))
    return blocks
