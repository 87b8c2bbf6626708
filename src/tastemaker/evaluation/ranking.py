"""Batched full-ranking evaluation: every catalog item is a candidate.

For each chunk of users the scorer returns a dense ``(users, items)`` block; items
the user already interacted with (the ``exclude`` parts, e.g. train) are set to
``-inf``; one ``torch.topk`` at the largest K ranks them; the top-K indices are
looked up in the sparse truth matrix to get a boolean hits matrix, and every
metric at every K is computed from it at once. There is no per-user Python loop,
so evaluating thousands of users costs a few matrix operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp

from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.metrics import METRICS
from tastemaker.reporting.values import plural

if TYPE_CHECKING:
    import torch

PARTS_EXCLUDED: dict[str, tuple[str, ...]] = {"valid": ("train",), "test": ("train", "valid")}


class Scorer(Protocol):
    """Anything that scores all items for a batch of user indices."""

    def score_indices(
        self, user_idx: np.ndarray, context: Interactions | None = None
    ) -> torch.Tensor:
        """``(len(user_idx), n_items)`` float scores; higher ranks first.

        ``context`` holds the interactions known at scoring time (the excluded
        parts), from which a sequential scorer reads each user's history.
        """
        ...


def _check_options(
    ks: Sequence[int], metrics: Sequence[str], batch_size: int, n_items: int
) -> tuple[list[int], list[str]]:
    """Validate options before any scoring, so a typo costs nothing."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(
            f"unknown metric(s): {', '.join(map(repr, unknown)) or 'none given'}",
            f"choose from {', '.join(METRICS)}",
        )
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(
            f"cut-offs K must be >= 1 (got {list(ks)})",
            "pass e.g. -k 10 -k 20 (ks=[10, 20] in Python)",
        )
    if ks[-1] > n_items:
        raise ConfigError(
            f"K={ks[-1]} is larger than the catalog ({plural(n_items, 'item')})",
            f"use cut-offs K between 1 and {n_items} (-k, or ks in Python)",
        )
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1 (got {batch_size})", "use e.g. 1024")
    return ks, list(dict.fromkeys(metrics))


def _exclusion_matrix(truth: Interactions, exclude: Sequence[Interactions]) -> sp.csr_matrix:
    """Union of the excluded parts as one users x items matrix (values are not used)."""
    matrix = sp.csr_matrix((len(truth.users), len(truth.items)), dtype=np.float32)
    for part in exclude:
        if part.users != truth.users or part.items != truth.items:
            raise DataError(
                "the excluded interactions and the truth use different user or item "
                "vocabularies, so their indices do not match",
                "take truth and exclude from the same Split (or share its Vocabs)",
            )
        matrix = matrix + part.to_csr()
    return matrix.tocsr()


def _row_coords(block: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every stored entry of a CSR block, rows ascending."""
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int64), np.diff(block.indptr))
    return rows, block.indices.astype(np.int64)


def _lookup_hits(truth_block: sp.csr_matrix, top_idx: np.ndarray) -> np.ndarray:
    """hits[u, j] = whether item top_idx[u, j] is in row u of the truth block.

    Entries are encoded as ``row * n_items + item``; a canonical CSR block gives
    them in ascending order, so one ``searchsorted`` answers every lookup.
    """
    n_items = truth_block.shape[1]
    rows, cols = _row_coords(truth_block)
    keys = rows * n_items + cols
    query = np.arange(top_idx.shape[0], dtype=np.int64)[:, None] * n_items + top_idx
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


def _score_block(
    scorer: Scorer,
    users: np.ndarray,
    n_items: int,
    excluded: sp.csr_matrix,
    context: Interactions | None,
    blocked: np.ndarray | None = None,
) -> torch.Tensor:
    """Scores of one user chunk with excluded (and ``blocked``) items at -inf (the
    scorer's tensor untouched)."""
    import torch

    scores = torch.as_tensor(scorer.score_indices(users, context=context))
    if tuple(scores.shape) != (len(users), n_items):
        raise DataError(
            f"the scorer returned scores of shape {tuple(scores.shape)} for "
            f"{plural(len(users), 'user')} and a catalog of {plural(n_items, 'item')}",
            "evaluate a model trained on this data set's split (same item vocabulary)",
        )
    rows, cols = _row_coords(excluded[users])
    if rows.size or blocked is not None:
        # A contiguous copy, so a view of the scorer's own state is never written into;
        # filling a flat view is several times faster than 2-D index_put.
        scores = scores.clone(memory_format=torch.contiguous_format)
    if rows.size:
        flat = torch.from_numpy(rows * n_items + cols).to(scores.device)
        scores.view(-1).index_fill_(0, flat, float("-inf"))
    if blocked is not None:
        scores.index_fill_(1, torch.from_numpy(blocked).to(scores.device), float("-inf"))
    return scores


def _blocked_items(
    candidates: np.ndarray | None, truth: sp.csr_matrix, n_items: int
) -> np.ndarray | None:
    """The items outside ``candidates`` (None: every item is a candidate)."""
    if candidates is None:
        return None
    allowed = np.zeros(n_items, dtype=bool)
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.size == 0 or candidates.min() < 0 or candidates.max() >= n_items:
        raise ConfigError(
            f"candidates must be item indices in 0..{n_items - 1} (got {candidates.size})",
            "pass the indices of at least one catalog item",
        )
    allowed[candidates] = True
    if not allowed[truth.indices].all():
        raise DataError(
            "some truth interactions are on items outside the candidates, so they could "
            "never be found",
            "keep only the truth interactions on candidate items",
        )
    return np.flatnonzero(~allowed)


def evaluate(
    scorer: Scorer,
    truth: Interactions,
    exclude: Sequence[Interactions] = (),
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = tuple(METRICS),
    batch_size: int = 1024,
    progress: bool = False,
    candidates: np.ndarray | None = None,
) -> dict[str, float]:
    """Full-ranking metrics of ``scorer`` against ``truth``, averaged over users.

    Users with at least one ``truth`` interaction are evaluated; items in any of the
    ``exclude`` parts are never recommended to the user who has them, and their
    union is the context passed to every ``score_indices`` call (what is known
    about the users, e.g. train + valid when testing). Returns
    ``"<metric>@<k>"`` for every metric and K, ``"coverage@<k>"`` (share of the
    catalog in at least one evaluated user's top K) and ``"n_users"``. An item scored
    ``-inf`` (excluded, or by the scorer) is treated as not recommended.
    ``candidates`` (item indices) restricts the ranking, and coverage, to those items
    (e.g. cold items only); every truth interaction must be on one of them.
    """
    import torch
    from tqdm.auto import tqdm

    n_items = len(truth.items)
    ks, names = _check_options(ks, metrics, batch_size, n_items)
    if len(truth) == 0:
        raise DataError(
            "the interactions to evaluate against are empty",
            "evaluate on a non-empty validation or test part",
        )
    excluded = _exclusion_matrix(truth, exclude)
    # Built once, so a scorer may cache what it derives from it (by identity) across chunks.
    context = Interactions.concat(exclude) if len(exclude) > 1 else next(iter(exclude), None)
    truth_matrix = truth.to_csr()
    truth_matrix.sort_indices()
    blocked = _blocked_items(candidates, truth_matrix, n_items)
    n_relevant = np.diff(truth_matrix.indptr).astype(np.int64)
    users = np.flatnonzero(n_relevant)

    totals = {f"{name}@{k}": 0.0 for name in names for k in ks}
    seen = {k: np.zeros(n_items, dtype=bool) for k in ks}
    bar = tqdm(total=len(users), unit="user", desc="evaluate", disable=not progress)
    with bar, torch.no_grad():  # no autograd graph for models that score with gradients on
        for start in range(0, len(users), batch_size):
            chunk = users[start : start + batch_size]
            scores = _score_block(scorer, chunk, n_items, excluded, context, blocked)
            top_scores, top_idx = torch.topk(scores, ks[-1], dim=1)
            if torch.isnan(top_scores).any():  # topk ranks NaN above every number
                raise DataError(
                    "the scorer returned NaN scores, so its ranking is undefined",
                    "check the model for divergence (e.g. lower the learning rate) and retrain",
                )
            top_idx = top_idx.cpu().numpy()
            recommended = (top_scores != float("-inf")).cpu().numpy()
            hits = _lookup_hits(truth_matrix[chunk], top_idx) & recommended
            for k in ks:
                for name in names:
                    values = METRICS[name](hits[:, :k], n_relevant[chunk])
                    totals[f"{name}@{k}"] += float(values.sum())
                seen[k][top_idx[:, :k][recommended[:, :k]]] = True
            bar.update(len(chunk))

    result = {key: total / len(users) for key, total in totals.items()}
    n_ranked = n_items if blocked is None else n_items - len(blocked)
    result.update({f"coverage@{k}": int(np.count_nonzero(seen[k])) / n_ranked for k in ks})
    result["n_users"] = float(len(users))
    return result


def evaluate_split(
    scorer: Scorer, split: Split, part: Literal["valid", "test"] = "valid", **kw: Any
) -> dict[str, float]:
    """:func:`evaluate` on a split part, masking train (and valid when testing)."""
    if part not in PARTS_EXCLUDED:
        raise ConfigError(
            f"cannot evaluate on split part '{part}'", f"use one of {', '.join(PARTS_EXCLUDED)}"
        )
    exclude = [split.part(name) for name in PARTS_EXCLUDED[part]]
    return evaluate(scorer, split.part(part), exclude=exclude, **kw)
