"""Row-wise Adagrad: an optimiser whose step costs O(rows in the batch), not O(table).

Embedding tables (one row per user or item) get a gradient on the few rows a batch
touches. Adam keeps two moments per weight and, as a dense optimiser, moves every
row on every step, so a step costs O(users + items). Adagrad (Duchi, Hazan & Singer,
"Adaptive Subgradient Methods", JMLR 2011) with one accumulator per row, the
variant used for large embedding tables (e.g. DLRM, Naumov et al., arXiv
1906.00091), touches only the batch's rows: the accumulator of row r adds the mean
squared gradient of r, and r moves by −lr·g / √(accumulator + eps).

Gradients are sparse COO tensors whose entries may repeat a row (one entry per
occurrence, as ``nn.Embedding(sparse=True)`` gives them): each occurrence is added
as it is (Hogwild-style, Recht et al., NeurIPS 2011), which equals summing a row's
entries for the update and differs only in the accumulator, which adds each
occurrence's square. Nothing is sorted, so a step stays O(batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from tastemaker.errors import ConfigError


class RowAdagrad(torch.optim.Optimizer):
    """Adagrad with one accumulator per row of each (rows x dim) or (rows,) parameter."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, eps: float = 1e-10) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Move the rows named by each parameter's sparse gradient (dense ones: every row)."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    rows, values = sparse_rows(param.grad)
                    self.update_rows(param, rows, values.clone())
        return loss

    @torch.no_grad()
    def update_rows(self, param: torch.Tensor, rows: torch.Tensor, grads: torch.Tensor) -> None:
        """Apply ``grads`` (one per entry of ``rows``, repeats allowed) to ``param``'s rows.

        The fast path for callers that compute gradients by hand: no sparse tensor, no
        autograd. ``grads`` is overwritten (it becomes the step).
        """
        group = next((g for g in self.param_groups if any(p is param for p in g["params"])), None)
        if group is None:
            raise ConfigError(
                "RowAdagrad was asked to update a tensor it was not given",
                "pass every table it should update when creating it",
            )
        state = self.state[param]
        if not state:
            state["sum"] = torch.zeros(len(param))
        sums = state["sum"]
        flat = grads.view(len(grads), -1)
        squares = torch.linalg.vector_norm(flat, dim=1).square_().div_(flat.shape[1])
        sums.index_add_(0, rows, squares)
        scale = sums.index_select(0, rows).add_(group["eps"]).rsqrt_().mul_(-group["lr"])
        param.index_add_(0, rows, flat.mul_(scale[:, None]).view_as(grads))


def sparse_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row indices, per-row values) of a gradient: a sparse COO one as stored, repeats
    included; a dense one as every row."""
    if grad.is_sparse:
        if grad.sparse_dim() != 1:
            raise ConfigError(
                "RowAdagrad takes gradients that are sparse over rows only",
                "give it row-sparse gradients (e.g. from nn.Embedding(sparse=True))",
            )
        return grad._indices()[0], grad._values()
    return torch.arange(len(grad)), grad
