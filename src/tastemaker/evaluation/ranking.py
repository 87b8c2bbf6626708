"""Batched full-ranking evaluation: every catalog item is a candidate.

For each chunk of users the scorer returns a dense ``(users, items)`` block; items
the user already interacted with (the ``exclude`` parts, e.g. train) are set to
``-inf`` in place, at flat positions read straight from the CSR arrays; one fused
top-K per block (:mod:`tastemaker.evaluation.topk`, ties to the lower item index)
ranks them; the top-K indices are looked up in the sparse truth matrix to get a
boolean hits matrix, and every metric at every K is computed from it at once.

What keeps it near the speed of the scorer's matrix product: a scorer that promises
new tensors (``scores_are_new``, as every :class:`~tastemaker.models.base.Recommender`
does) is masked in place, any other is copied into one score buffer reused by every
chunk; chunks hold at most :data:`CHUNK_CELLS` scores, so the allocator reuses their
memory instead of faulting in fresh pages every time; the context (train + valid
when testing) is joined as integer indices, its string rows only if a scorer reads
them. There is no per-user Python loop.
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
from tastemaker.evaluation.topk import top_k
from tastemaker.reporting.values import plural

if TYPE_CHECKING:
    import torch

PARTS_EXCLUDED: dict[str, tuple[str, ...]] = {"valid": ("train",), "test": ("train", "valid")}
#: Scores per chunk at most (32 MB of float32), at least :data:`MIN_CHUNK_ROWS` users:
#: blocks under glibc's 32 MiB ceiling of its mmap threshold are recycled by malloc
#: instead of mapped afresh (measured: a fresh 200 MB block per chunk nearly doubled the
#: product's time), and as many rows as fit, since each chunk's product reads all the
#: item factors again (at 200k items, 40-row chunks instead of 20: 48% → 57% of the
#: GEMM's GFLOP/s in ``benchmarks/evaluation_throughput.py``).
CHUNK_CELLS = 8_000_000
MIN_CHUNK_ROWS = 16


class Scorer(Protocol):
    """Anything that scores all items for a batch of user indices.

    A scorer may also set ``scores_are_new = True`` to promise that every tensor it
    returns is its own new one, which the evaluator then masks in place; without it the
    scores are copied into the evaluator's buffer first.
    """

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


def row_positions(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, column) of every stored entry of ``matrix``'s ``rows``,
    read from its ``indptr``/``indices`` arrays without slicing a copy of the rows."""
    starts = matrix.indptr[rows].astype(np.int64)
    lengths = matrix.indptr[rows + 1].astype(np.int64) - starts
    total = int(lengths.sum())
    local = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths
    entries = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return local, matrix.indices[entries].astype(np.int64)


def _lookup_hits(truth: sp.csr_matrix, rows: np.ndarray, top_idx: np.ndarray) -> np.ndarray:
    """hits[u, j] = whether item top_idx[u, j] is in row ``rows[u]`` of ``truth``.

    Entries are encoded as ``position * n_items + item``; a canonical CSR matrix gives
    them in ascending order, so one ``searchsorted`` answers every lookup.
    """
    n_items = truth.shape[1]
    local, cols = row_positions(truth, rows)
    keys = local * n_items + cols
    query = np.arange(top_idx.shape[0], dtype=np.int64)[:, None] * n_items + top_idx
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


class ScoreBuffer:
    """One score block reused by every chunk, made on first use with the scorer's dtype
    and device (so copying never rounds a score), for scorers that keep their tensors."""

    def __init__(self, rows: int, n_items: int) -> None:
        self.shape = (rows, n_items)
        self.block: torch.Tensor | None = None

    def holding(self, scores: torch.Tensor) -> torch.Tensor:
        """A copy of ``scores`` in the buffer's first rows."""
        import torch

        if self.block is None or (self.block.dtype, self.block.device) != (
            scores.dtype,
            scores.device,
        ):
            self.block = torch.empty(self.shape, dtype=scores.dtype, device=scores.device)
        return self.block[: scores.shape[0]].copy_(scores)


def _score_block(
    scorer: Scorer,
    users: np.ndarray,
    n_items: int,
    excluded: sp.csr_matrix,
    context: Interactions | None,
    buffer: ScoreBuffer,
    blocked: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores of one user chunk with excluded (and ``blocked``) items at -inf: in place
    when the scorer promises new tensors, else in ``buffer`` (its tensor untouched)."""
    import torch

    scores = torch.as_tensor(scorer.score_indices(users, context=context))
    if tuple(scores.shape) != (len(users), n_items):
        raise DataError(
            f"the scorer returned scores of shape {tuple(scores.shape)} for "
            f"{plural(len(users), 'user')} and a catalog of {plural(n_items, 'item')}",
            "evaluate a model trained on this data set's split (same item vocabulary)",
        )
    if not (getattr(scorer, "scores_are_new", False) and scores.is_contiguous()):
        scores = buffer.holding(scores)  # filling a flat view needs contiguity
    local, cols = row_positions(excluded, users)
    if local.size:
        flat = torch.from_numpy(local * n_items + cols).to(scores.device)
        scores.view(-1).index_fill_(0, flat, float("-inf"))
    if blocked is not None:
        scores.index_fill_(1, blocked.to(scores.device), float("-inf"))
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
    # Built once, so a scorer may cache what it derives from it (by identity) across chunks;
    # joined lazily (indices now, string rows only if the scorer reads them).
    context = Interactions.concat(exclude) if len(exclude) > 1 else next(iter(exclude), None)
    truth_matrix = truth.to_csr()
    truth_matrix.sort_indices()
    blocked = _blocked_items(candidates, truth_matrix, n_items)
    n_relevant = np.diff(truth_matrix.indptr).astype(np.int64)
    users = np.flatnonzero(n_relevant)
    rows = min(batch_size, max(MIN_CHUNK_ROWS, CHUNK_CELLS // n_items), len(users))
    buffer = ScoreBuffer(rows, n_items)
    blocked_items = None if blocked is None else torch.from_numpy(blocked)

    totals = {f"{name}@{k}": 0.0 for name in names for k in ks}
    seen = {k: np.zeros(n_items, dtype=bool) for k in ks}
    bar = tqdm(total=len(users), unit="user", desc="evaluate", disable=not progress)
    with bar, torch.no_grad():  # no autograd graph for models that score with gradients on
        for start in range(0, len(users), rows):
            chunk = users[start : start + rows]
            scores = _score_block(scorer, chunk, n_items, excluded, context, buffer, blocked_items)
            top_scores, top_idx = top_k(scores, ks[-1])
            del scores  # the scorer's block is freed before the next one is made
            if torch.isnan(top_scores).any():  # NaN ranks above every number
                raise DataError(
                    "the scorer returned NaN scores, so its ranking is undefined",
                    "check the model for divergence (e.g. lower the learning rate) and retrain",
                )
            top_idx = top_idx.cpu().numpy()
            recommended = (top_scores != float("-inf")).cpu().numpy()
            hits = _lookup_hits(truth_matrix, chunk, top_idx) & recommended
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
