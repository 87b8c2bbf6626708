"""Training whose step costs O(batch): BPR's and VBPR's hand-written gradients, row-wise
Adagrad, the negative sampler's hash set, and what they must keep (seeded, learning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastemaker import Dataset
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.models import BPR, VBPR, Recommender
from tastemaker.models.base import TrainingInterrupted
from tastemaker.models.bpr import PairSampler, bpr_gradients
from tastemaker.models.key_set import KeySet
from tastemaker.models.row_adagrad import RowAdagrad
from tastemaker.models.training import EpochReport
from tastemaker.models.vbpr import vbpr_gradients

from .test_train_progress import tiny_split


def test_bpr_gradients_equal_autograd() -> None:
    generator = torch.Generator().manual_seed(0)
    user = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    items = torch.randn(10, 4, generator=generator, dtype=torch.float64)
    reg = 0.3
    u, q = user.clone().requires_grad_(True), items.clone().requires_grad_(True)
    x = (u * (q[:5] - q[5:])).sum(dim=1)
    bpr = -torch.nn.functional.logsigmoid(x).sum()
    (bpr + reg * (u.square().sum() + q.square().sum())).backward()
    loss, grad_user, grad_items = bpr_gradients(user.clone(), items.clone(), reg)
    assert loss == pytest.approx(bpr.item(), rel=1e-12)
    assert u.grad is not None and q.grad is not None
    torch.testing.assert_close(grad_user, u.grad)
    torch.testing.assert_close(grad_items, q.grad)


def _toy_features(toy: Dataset) -> dict[str, ItemEmbeddings]:
    """Text for every item, an image for half of them (the others take the missing vector)."""
    ids = toy.interactions.items.ids
    rng = np.random.default_rng(0)
    image_mask = np.arange(len(ids)) % 2 == 0
    images = rng.normal(size=(len(ids), 3)).astype(np.float32) * image_mask[:, None]
    text = rng.normal(size=(len(ids), 5)).astype(np.float32)
    return {
        "text": ItemEmbeddings(ids, text, np.ones(len(ids), bool), "toy-text", "text"),
        "image": ItemEmbeddings(ids, images, image_mask, "toy-image", "image"),
    }


def test_vbpr_gradients_equal_autograd(toy: Dataset) -> None:
    model = VBPR(factors=3, content_factors=2, epochs=2, reg=0.2)
    model.fit(toy.interactions, features=_toy_features(toy))  # trained: biases are not zero
    net = model._network()
    users, positives, negatives = (
        torch.tensor([0, 1, 0]),
        torch.tensor([1, 2, 3]),
        torch.tensor([5, 4, 1]),
    )
    net.zero_grad()
    model._loss(users, positives, negatives).backward()
    items = torch.cat([positives, negatives])
    loss, grads, content, grad_content = vbpr_gradients(net, users, items, 0.2)
    for name, rows in [("user_factors", users), ("user_content", users),
                       ("item_factors", items), ("item_bias", items)]:  # fmt: skip
        table = getattr(net, name)
        expected = table.grad
        assert expected is not None
        summed = torch.zeros_like(table).index_add_(0, rows, grads[name])  # repeats add up
        torch.testing.assert_close(summed, expected, rtol=1e-5, atol=1e-6)
    projection = {
        n: p.grad.clone() for n, p in net.named_parameters() if "project" in n or "missing" in n
    }
    net.zero_grad()
    content.backward(grad_content)
    for name, param in net.named_parameters():
        if name in projection:
            torch.testing.assert_close(param.grad, projection[name], rtol=1e-5, atol=1e-6)
    scores = model.score_indices(users.numpy())  # every toy item is warm: eq. 2 in full
    rows = torch.arange(3)
    x = scores[rows, positives] - scores[rows, negatives]
    assert loss == pytest.approx(torch.nn.functional.softplus(-x).sum().item(), rel=1e-5)


def test_a_vbpr_step_moves_only_the_table_rows_of_its_batch(toy: Dataset) -> None:
    model = VBPR(factors=3, content_factors=2, epochs=1)
    model.fit(toy.interactions, features=_toy_features(toy))
    net = model._network()
    before = {
        name: getattr(net, name).detach().clone() for name in ("user_factors", "item_factors")
    }
    model._step(torch.tensor([0]), torch.tensor([1]), torch.tensor([5]))
    moved_users = (net.user_factors != before["user_factors"]).any(dim=1)
    moved_items = (net.item_factors != before["item_factors"]).any(dim=1)
    assert moved_users.tolist() == [True, False, False]
    assert moved_items.tolist() == [False, True, False, False, False, True]


def test_row_adagrad_follows_its_formula_with_repeated_rows() -> None:
    # Row 1 appears twice: its accumulator adds both squares, and both entries move it
    # with the accumulator after the batch; rows 0 and 3 are untouched.
    param = torch.zeros(4, 2)
    optimizer = RowAdagrad([param], lr=0.5, eps=0.0)
    rows = torch.tensor([1, 2, 1])
    grads = torch.tensor([[3.0, 4.0], [1.0, 1.0], [0.0, 2.0]])
    optimizer.update_rows(param, rows, grads.clone())
    acc1 = (9 + 16) / 2 + (0 + 4) / 2  # mean squares of both entries of row 1
    expected = torch.zeros(4, 2)
    expected[1] = -0.5 * (torch.tensor([3.0, 4.0]) + torch.tensor([0.0, 2.0])) / acc1**0.5
    expected[2] = -0.5 * torch.tensor([1.0, 1.0]) / 1.0
    torch.testing.assert_close(param, expected)
    torch.testing.assert_close(optimizer.state[param]["sum"], torch.tensor([0, acc1, 1.0, 0]))
    with pytest.raises(ConfigError, match="not given"):
        optimizer.update_rows(torch.zeros(2, 2), torch.tensor([0]), torch.ones(1, 2))


def test_row_adagrad_reads_sparse_embedding_gradients() -> None:
    # The same update through autograd: nn.Embedding(sparse=True) and step().
    embedding = torch.nn.Embedding(4, 2, sparse=True)
    torch.nn.init.zeros_(embedding.weight)
    optimizer = RowAdagrad(embedding.parameters(), lr=0.5, eps=0.0)
    (
        embedding(torch.tensor([1, 2, 1])) * torch.tensor([[3.0, 4.0], [1, 1], [0, 2]])
    ).sum().backward()
    optimizer.step()
    reference = torch.zeros(4, 2)
    RowAdagrad([reference], lr=0.5, eps=0.0).update_rows(
        reference, torch.tensor([1, 2, 1]), torch.tensor([[3.0, 4.0], [1, 1], [0, 2]])
    )
    torch.testing.assert_close(embedding.weight.detach(), reference)
    two_dims = torch.sparse_coo_tensor(
        torch.zeros(2, 1, dtype=torch.long), [1.0], (4, 2), check_invariants=True
    )
    embedding.weight.grad = two_dims
    with pytest.raises(ConfigError, match="sparse over rows"):
        optimizer.step()


def test_a_step_moves_only_the_rows_of_its_batch(toy: Dataset) -> None:
    model = BPR(factors=4, epochs=1).fit(toy.interactions)
    model._prepare(toy.interactions)  # fresh weights and optimiser, as a new fit
    users_before, items_before = (
        model.user_embedding.detach().clone(),
        model.item_embedding.detach().clone(),
    )
    model._step(torch.tensor([0]), torch.tensor([1]), torch.tensor([5]))
    moved_users = (model.user_embedding != users_before).any(dim=1)
    moved_items = (model.item_embedding != items_before).any(dim=1)
    assert moved_users.tolist() == [True, False, False]
    assert moved_items.tolist() == [False, True, False, False, False, True]


def test_same_seed_same_weights_and_the_loss_falls() -> None:
    split = tiny_split()
    params = {"factors": 8, "batch_size": 64, "epochs": 8}
    first = BPR(**params).fit(split.train)
    again = BPR(**params).fit(split.train)
    other = BPR(**params, seed=7).fit(split.train)
    assert torch.equal(first.user_embedding, again.user_embedding)
    assert torch.equal(first.item_embedding, again.item_embedding)
    assert not torch.equal(first.item_embedding, other.item_embedding)
    assert first.training_log is not None
    losses = [row["loss"] for row in first.training_log]
    assert losses[-1] < 0.8 * losses[0]  # from log 2 ≈ 0.693 at random weights


def test_key_set_answers_exactly_as_a_python_set() -> None:
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 50_000, 20_000))  # dense: buckets overflow often
    stored = KeySet(keys)
    queries = rng.integers(0, 60_000, 100_000)
    expected = np.isin(queries, keys)
    assert np.array_equal(stored.contains(torch.from_numpy(queries)).numpy(), expected)
    assert stored.contains(torch.from_numpy(keys)).all()
    assert not KeySet(np.zeros(0, np.int64)).contains(torch.tensor([0, 3])).any()


def test_negatives_are_never_a_users_positive() -> None:
    # Users who have seen most of the catalog: nearly every first draw is a positive.
    rng = np.random.default_rng(1)
    dense = rng.random((30, 12)) < 0.85
    dense[np.arange(30), rng.integers(0, 12, 30)] = False  # every user has an unseen item
    sampler = PairSampler(sp.csr_matrix(dense.astype(np.float32)), "bpr")
    users, positives, negatives = sampler.epoch(torch.Generator().manual_seed(0))
    assert dense[users.numpy(), positives.numpy()].all()
    assert not dense[users.numpy(), negatives.numpy()].any()


def test_vbpr_resumes_exactly_with_its_row_wise_optimiser(toy: Dataset, tmp_path: Path) -> None:
    """The row accumulators are saved with the run, so a resumed run equals a whole one."""
    features = _toy_features(toy)
    whole = VBPR(factors=3, content_factors=2, epochs=4).fit(toy.interactions, features=features)

    def stop(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    model = VBPR(factors=3, content_factors=2, epochs=4)
    model.on_epoch = stop
    with pytest.raises(TrainingInterrupted):
        model.fit(toy.interactions, features=features)
    resumed = Recommender.load(model.save(tmp_path / "vbpr")).resume(toy.interactions)
    torch.testing.assert_close(
        resumed.score_indices(np.arange(3)), whole.score_indices(np.arange(3))
    )
