"""BPR-MF: matrix factorisation trained to rank a user's items above the others.

Loss −log σ(s(u, i) − s(u, j)) over (user, positive item, sampled negative)
triples, with s(u, i) = <p_u, q_i> (Rendle et al., "BPR: Bayesian Personalized
Ranking from Implicit Feedback", UAI 2009). Negatives are drawn uniformly from
the items the user has not interacted with; with ``negative_candidates`` k > 1 a
triple keeps the highest-scored of k such draws (dynamic negative sampling, Zhang et
al., "Optimizing Top-N Collaborative Filtering via Dynamic Negative Item Sampling",
SIGIR 2013): in a large catalog a uniform draw is nearly always an item the model
already ranks far down, whose triple has almost no gradient left (Rendle &
Freudenthaler, WSDM 2014) but still pays the full L2 pull on its three rows.

A step reads and writes only the rows of its batch: gradients are written by hand
(:func:`bpr_gradients`, no autograd graph) and applied by row-wise Adagrad, so an
epoch costs O(interactions) whatever the number of users and items (a dense Adam
step over both tables cost O(users + items) per batch).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError
from tastemaker.models.config import TrainableConfig
from tastemaker.models.fold_in import SolvesUserVector, UserSystem
from tastemaker.models.key_set import KeySet
from tastemaker.models.registry import register
from tastemaker.models.row_adagrad import RowAdagrad
from tastemaker.models.training import IterativeRecommender


class BPRConfig(TrainableConfig):
    """Defaults measured on ml-100k (per-user random 8:1:1, full ranking).

    Trained with row-wise Adagrad (:mod:`.row_adagrad`): ``learning_rate`` 0.1 and L2
    ``reg`` 1e-2 (on the batch's three embeddings, per triple) gave the best mean
    validation NDCG@10 over split seeds 1 and 2 among lr 0.05-0.2 and reg 5e-3-2e-2
    (the test part and seed 42 were not used to choose). ``reg`` slows the climb to
    a noisy plateau, which is why patience is longer than the loop's default. A step
    costs O(batch) at any catalog size; 8192 triples per batch was the fastest epoch
    at 5M interactions on one core (2048: ~15% slower, 32768: ~10%), and with
    per-triple steps the batch size barely changes what is learned.

    ``reg`` 1e-2 also beat 4e-3 and 1.7e-3 on ml-latest-small validation (9.7k items,
    seeds 1 and 2: 0.176 vs 0.174 and 0.158, two negative candidates). The synthetic
    sets of ``benchmarks/scale.py`` have no user-item structure (ranking by popularity
    is the best possible) and favour a far weaker L2: 3e-4 reached 0.121 validation
    NDCG@10 after 3 epochs at 50k items where 1e-2 fell to 0.071 (implicit: 0.124,
    popularity 0.126). That is a property of those data, so the default stays.

    ``negative_candidates`` 1 is Rendle's uniform sampling. 2 (the second draw is
    another triple's negative of the same batch, so no extra row is read from the
    table) raised mean validation NDCG@10 (seeds 1 and 2) from 0.253 to 0.260 on
    ml-100k and from 0.163 to 0.176 on ml-latest-small, in about as many CPU seconds
    to the best epoch, and after 3 epochs on the 50k-item synthetic set of
    ``benchmarks/scale.py`` (its validation users) from 0.071 to ~0.10; but an epoch
    costs ~30% more CPU, so it is not the default (an epoch is meant to cost no more
    than implicit's).
    """

    factors: PositiveInt = 64
    reg: NonNegativeFloat = 1e-2
    epochs: PositiveInt = 200
    patience: PositiveInt = 20
    learning_rate: PositiveFloat = 0.1
    batch_size: PositiveInt = 8192
    negative_candidates: PositiveInt = 1


class PairSampler:
    """The (user, positive item) pairs of a training matrix and uniform negatives for them.

    Shared by the models trained on BPR triples. Users who have seen every item
    are left out: they have no negative to rank below a positive.
    """

    def __init__(self, seen: sp.csr_matrix, model: str) -> None:
        coo = seen.tocoo()
        self.n_items = seen.shape[1]
        trainable = np.diff(seen.indptr)[coo.row] < self.n_items
        if not trainable.any():
            raise DataError(
                f"no user has an unseen item, so {model} has no negatives to sample",
                "train on data where users interacted with only part of the catalog",
            )
        self.users = torch.from_numpy(coo.row[trainable].astype(np.int64))
        self.items = torch.from_numpy(coo.col[trainable].astype(np.int64))
        self._seen = KeySet((self.users * self.n_items + self.items).numpy())

    def seen(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Which (user, item) pairs are training interactions."""
        return self._seen.contains(users * self.n_items + items)

    def negatives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Uniform items per user, redrawn (vectorised) where they hit a positive."""
        n_items = self.n_items
        negatives = torch.randint(n_items, users.shape, generator=generator)
        redo = torch.nonzero(self.seen(users, negatives)).view(-1)
        while len(redo):
            negatives[redo] = torch.randint(n_items, redo.shape, generator=generator)
            redo = redo[self.seen(users[redo], negatives[redo])]
        return negatives

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """All pairs in a random order with fresh negatives: (users, positives, negatives)."""
        order = torch.randperm(len(self.users), generator=generator)
        users = self.users.index_select(0, order)  # several times faster than users[order]
        return users, self.items.index_select(0, order), self.negatives(users, generator)


def triple_epoch(
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float],
    triples: tuple[torch.Tensor, ...],
    batch_size: int,
) -> float:
    """One pass of ``step`` (which returns its batch's summed loss) over (users,
    positives, negatives) in batches; the mean loss per triple."""
    users, positives, negatives = triples
    total = 0.0
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        total += step(users[batch], positives[batch], negatives[batch])
    return total / len(users)


def bpr_gradients(
    user: torch.Tensor, items: torch.Tensor, reg: float
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Summed −log σ(x) of a batch and its gradients, written by hand.

    ``user`` holds the batch's p_u rows, ``items`` its q_i rows then its q_j rows.
    Per triple, loss = −log σ(x) + reg·(‖p_u‖² + ‖q_i‖² + ‖q_j‖²), x = <p_u, q_i − q_j>;
    with d = σ(−x): ∂/∂p_u = −d(q_i − q_j) + 2reg·p_u, ∂/∂q_i = −d·p_u + 2reg·q_i,
    ∂/∂q_j = d·p_u + 2reg·q_j. ``user`` and ``items`` are overwritten (they become the
    gradients: no copies of the batch).
    """
    n = len(user)
    diff = items[:n] - items[n:]
    x = torch.linalg.vecdot(user, diff)
    loss = float(torch.nn.functional.softplus(-x).sum())
    d = torch.sigmoid(-x)[:, None]
    push = d * user
    grad_user = torch.addcmul(user.mul_(2 * reg), d, diff, value=-1)
    grad_items = items.mul_(2 * reg)
    grad_items[:n] -= push
    grad_items[n:] += push
    return loss, grad_user, grad_items


@register
class BPR(SolvesUserVector, IterativeRecommender):
    """Bayesian Personalized Ranking over user and item embeddings; a step moves only
    the batch's rows (:class:`.RowAdagrad`), so it costs O(batch) at any catalog size.
    A new user folds in by a ridge vector against the item embeddings (:mod:`.fold_in`)."""

    name = "bpr"
    config_class = BPRConfig
    config: BPRConfig
    state_keys = ("user_embedding", "item_embedding")

    def _prepare(self, train: Interactions) -> None:
        if self.seen is None:
            raise self.not_fitted_error()
        self._pairs = PairSampler(self.seen, self.name)
        n_users, n_items = self.seen.shape
        factors = self.config.factors
        self.user_embedding = torch.nn.Parameter(torch.empty(n_users, factors))
        self.item_embedding = torch.nn.Parameter(torch.empty(n_items, factors))
        for weight in (self.user_embedding, self.item_embedding):
            torch.nn.init.xavier_normal_(weight, generator=self.generator)
        self._optimizer = self._make_optimizer()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return RowAdagrad([self.user_embedding, self.item_embedding], self.config.learning_rate)

    def _sample_negatives(self, users: torch.Tensor) -> torch.Tensor:
        return self._pairs.negatives(users, self.generator)

    def _train_epoch(self) -> float:
        return triple_epoch(self._step, self._pairs.epoch(self.generator), self.config.batch_size)

    def _step(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> float:
        """One batch of triples; the batch's summed −log σ(x) (the L2 term is in the
        gradients, not in the reported loss: summing it would cost another pass)."""
        optimizer = self._optimizer
        if not isinstance(optimizer, RowAdagrad):
            raise self.not_fitted_error()
        items = torch.cat([i, j])
        user = self.user_embedding.detach().index_select(0, u)  # ~4x faster than [u] on CPU
        item = self.item_embedding.detach().index_select(0, items)
        if self.config.negative_candidates > 1:
            self._hardest_negatives(u, user, items, item)
        loss, grad_user, grad_item = bpr_gradients(user, item, self.config.reg)
        optimizer.update_rows(self.user_embedding, u, grad_user)
        optimizer.update_rows(self.item_embedding, items, grad_item)
        return loss

    def _hardest_negatives(
        self, u: torch.Tensor, user: torch.Tensor, items: torch.Tensor, item: torch.Tensor
    ) -> None:
        """Give each triple the highest-scored of its own negative and those of the
        ``negative_candidates`` − 1 triples before it in the batch (uniform draws too),
        skipping the user's own positives: ``items``' and ``item``'s second halves (the
        negatives' indices and rows) are overwritten in place."""
        n = len(u)
        negatives, rows = items[n:], item[n:]
        best = torch.linalg.vecdot(user, rows)
        source = torch.arange(n)
        for shift in range(1, min(self.config.negative_candidates, n)):
            score = torch.linalg.vecdot(user[shift:], rows[:-shift])  # views: no copies
            better = torch.nonzero(score > best[shift:]).view(-1)
            better = better[~self._pairs.seen(u[shift:][better], negatives[better])]
            best[shift:][better] = score[better]
            source[shift:][better] = better
        moved = torch.nonzero(source != torch.arange(n)).view(-1)
        taken = source.index_select(0, moved)
        negatives.index_copy_(0, moved, negatives.index_select(0, taken))
        rows.index_copy_(0, moved, rows.index_select(0, taken))

    @torch.no_grad()
    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        return self.user_embedding[torch.from_numpy(user_idx)] @ self.item_embedding.T

    def user_system(self) -> UserSystem:
        return UserSystem(self.item_embedding)

    def _state(self) -> dict[str, torch.Tensor]:
        return {"user_embedding": self.user_embedding, "item_embedding": self.item_embedding}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.user_embedding = tensors["user_embedding"]
        self.item_embedding = tensors["item_embedding"]
