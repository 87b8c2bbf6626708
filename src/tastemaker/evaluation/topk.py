"""The K best items of every row of a score block, ties broken by the lower item index.

``torch.topk`` over a whole row costs several times a pass over it and breaks ties
arbitrarily. Here a row is cut into groups of :data:`GROUP` columns; only the K
groups with the largest maxima can hold the row's top K (each of K better groups
holds an element at least as good, earlier on a tie), so one vectorised max per
group and a selection among K·GROUP candidates replace the full one. The result is
the same as a stable descending sort of the whole row cut at K (what the per-user
reference in ``benchmarks/evaluation_throughput.py`` does), for any chunking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

GROUP = 32  # columns per group: 1/32 of the row is ranked, K·32 candidates sorted


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, item indices) of each row's ``k`` highest scores, best first; among equal
    scores the lower index first. NaN ranks above every number (as in ``torch.sort``)."""
    import torch

    n_rows, n_cols = scores.shape
    groups = n_cols // GROUP
    body = groups * GROUP
    maxima = _group_maxima(scores, groups) if groups else None
    if groups <= 2 * k or bool(torch.isnan(maxima).any()):
        # A small catalog (sorting whole rows is cheap), or NaN scores (the caller refuses
        # them; sorting puts them first so it can see them).
        values, order = torch.sort(scores, dim=1, descending=True, stable=True)
        return values[:, :k], order[:, :k]
    columns = (best_positions(maxima, k)[:, :, None] * GROUP + torch.arange(GROUP)).reshape(
        n_rows, -1
    )
    if body < n_cols:  # the last, partial group is always a candidate
        tail = torch.arange(body, n_cols).expand(n_rows, -1)
        columns = torch.cat([columns, tail], dim=1)
    candidates = torch.gather(scores, 1, columns)
    chosen = best_positions(candidates, k)  # ascending columns: ties stay in item order
    values = torch.gather(candidates, 1, chosen)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    return values, torch.gather(torch.gather(columns, 1, chosen), 1, order)


def _group_maxima(scores: torch.Tensor, groups: int) -> torch.Tensor:
    """Per row, the maximum of each of the first ``groups`` runs of GROUP columns: read
    through a strided view of the rows, so a catalog that is not a multiple of GROUP
    costs no copy of the block (a third of the time at 200k items)."""
    if scores.stride(1) != 1:
        return scores[:, : groups * GROUP].reshape(scores.shape[0], groups, GROUP).amax(dim=2)
    view = scores.as_strided((scores.shape[0], groups, GROUP), (scores.stride(0), GROUP, 1))
    return view.amax(dim=2)


def best_positions(values: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the positions (ascending) of the ``k`` entries first by (value descending,
    position ascending): every entry above the k-th largest value, then the first ones
    equal to it. One ``topk`` finds that value; no row is sorted. No NaN allowed."""
    import torch

    threshold = torch.topk(values, k, dim=1).values[:, -1:]
    above = values > threshold
    equal = values == threshold
    room = k - above.sum(dim=1, keepdim=True)
    chosen = above | (equal & (equal.cumsum(dim=1) <= room))
    return chosen.nonzero()[:, 1].reshape(values.shape[0], k)
