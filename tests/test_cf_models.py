"""LightGCN, EASE and ALS: exact maths on tiny inputs, learning on ml-100k, persistence, errors.

Quality bounds use ml-100k under RecBole's protocol (per-user random 8:1:1, full
ranking); MostPopular's validation NDCG@10 there is 0.118, and a model that
learned nothing (random scores) gets about 0.005.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import torch

from tastemaker import Dataset, Interactions, Split
from tastemaker.data.sources.recbole import load_atomic
from tastemaker.data.splits import random_ratio
from tastemaker.data.vocab import Vocab
from tastemaker.errors import ConfigError, DataError
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models import ALS, EASE, LightGCN, MostPopular, Recommender, create_model
from tastemaker.models import ease as ease_module
from tastemaker.models.als import solve_rows
from tastemaker.models.lightgcn import normalized_adjacency, propagate
from tastemaker.models.row_blocks import row_blocks

from .conftest import shared_data


@pytest.fixture(scope="module")
def ml100k() -> Split:
    return random_ratio(load_atomic(shared_data("ml-100k")), ratios=(0.8, 0.1, 0.1), seed=42)


@pytest.fixture(scope="module")
def fitted(ml100k: Split) -> dict[str, Recommender]:
    train, valid = ml100k.train, ml100k.valid
    return {
        "ease": EASE().fit(train),
        "als": ALS().fit(train, valid),
        # A higher rate than the default so that ten epochs are enough for a test.
        "lightgcn": LightGCN(learning_rate=1e-2, epochs=10).fit(train, valid),
    }


def valid_ndcg(model: Recommender, split: Split) -> float:
    return evaluate(model, split.valid, exclude=[split.train], ks=(10,))["ndcg@10"]


# ------------------------------------------------------------------- learning
def test_models_beat_most_popular_on_ml100k(ml100k: Split, fitted: dict[str, Recommender]) -> None:
    popular = valid_ndcg(MostPopular().fit(ml100k.train), ml100k)
    # Measured: MostPopular 0.118, LightGCN (10 epochs) 0.216, ALS 0.264, EASE 0.261.
    assert 0.10 < popular < 0.14
    for name, model in fitted.items():
        assert valid_ndcg(model, ml100k) > popular + 0.08, name


# ------------------------------------------------------------------- LightGCN
def test_lightgcn_propagation_equals_dense_reference() -> None:
    # 3 users x 6 items (9 nodes); item 5 has no interactions, so degree 0.
    seen = sp.csr_matrix(
        np.array([[1, 1, 0, 1, 0, 0], [1, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0]], np.float32)
    )
    dense = np.zeros((9, 9))
    dense[:3, 3:] = seen.toarray()
    dense[3:, :3] = seen.toarray().T
    degree = dense.sum(axis=1)
    scale = np.divide(1, np.sqrt(degree), out=np.zeros(9), where=degree > 0)
    norm = scale[:, None] * dense * scale[None, :]
    np.testing.assert_allclose(normalized_adjacency(seen).to_dense().numpy(), norm, rtol=1e-6)

    generator = torch.Generator().manual_seed(0)
    users = torch.randn(3, 4, generator=generator, requires_grad=True)
    items = torch.randn(6, 4, generator=generator, requires_grad=True)
    ego = torch.cat([users, items]).detach().double()
    a = torch.from_numpy(norm)
    expected = (ego + a @ ego + a @ a @ ego) / 3
    final_users, final_items = propagate(normalized_adjacency(seen), users, items, n_layers=2)
    got = torch.cat([final_users, final_items])
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(final_items[5], items[5].detach() / 3)  # isolated: only layer 0

    # The hand-written backward (Â G, as Â is symmetric) matches dense autograd.
    weights = torch.randn(9, 4, generator=generator)
    (got * weights).sum().backward()
    ego_ref = torch.cat([users, items]).detach().double().requires_grad_(True)
    ((ego_ref + a @ ego_ref + a @ a @ ego_ref) / 3 * weights.double()).sum().backward()
    assert users.grad is not None and items.grad is not None and ego_ref.grad is not None
    grads = torch.cat([users.grad, items.grad]).double()
    torch.testing.assert_close(grads, ego_ref.grad, rtol=1e-5, atol=1e-6)


def test_lightgcn_scores_follow_its_current_weights(toy: Dataset) -> None:
    model = LightGCN(epochs=2, n_layers=3).fit(toy.interactions)
    assert model.seen is not None

    def dense_scores() -> np.ndarray:
        adjacency = normalized_adjacency(model.seen).to_dense()
        layer = total = torch.cat([model.user_embedding, model.item_embedding]).detach()
        for _ in range(3):
            layer = adjacency @ layer
            total = total + layer
        final = total / 4
        return (final[:3] @ final[3:].T).numpy()

    np.testing.assert_allclose(model.score(["u1", "u2", "u3"]), dense_scores(), rtol=1e-5)
    # New weights (as when the loop restores the best epoch) replace the cached scores.
    state = {k: v.detach() * 2 for k, v in model._state().items()}
    model._load_state(state)
    np.testing.assert_allclose(model.score(["u1", "u2", "u3"]), dense_scores(), rtol=1e-5)


# ----------------------------------------------------------------------- EASE
def test_ease_weights_equal_the_closed_form(toy: Dataset) -> None:
    model = EASE(reg=2.0).fit(toy.interactions)
    x = toy.interactions.to_csr().toarray().astype(np.float64)
    precision = np.linalg.inv(x.T @ x + 2.0 * np.eye(6))
    expected = np.eye(6) - precision / np.diag(precision)[None, :]
    weights = model.weights.numpy()
    assert not weights.diagonal().any()
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.score(["u2"])[0], x[1] @ expected, rtol=1e-4, atol=1e-6)


def test_ease_memory_guard_refuses_before_allocating(
    toy: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A catalog of 300,000 items would need ~1,080 GB: refused at once, nothing allocated.
    frame = toy.interactions.frame
    ids = [f"i{k}" for k in range(300_000)]
    huge = Interactions(frame, items=Vocab(ids, kind="item"))
    with pytest.raises(DataError) as info:
        EASE(max_memory_gb=64).fit(huge)
    message = str(info.value)
    assert "300,000 items" in message and "1,080.0 GB" in message
    assert "64.0 GB limit (max_memory_gb)" in message and "k-core" in message
    # The default limit is 80% of the RAM available when fitting.
    monkeypatch.setattr(ease_module, "available_memory_gb", lambda: 0.01)
    with pytest.raises(DataError, match=r"over the 0\.0 GB limit"):
        EASE().fit(Interactions(frame, items=Vocab(ids[:1000], kind="item")))
    EASE().fit(toy.interactions)  # 6 items fit in 8 MB


# ------------------------------------------------------------------------ ALS
def test_als_sweep_solves_the_normal_equations(toy: Dataset) -> None:
    seen = toy.interactions.to_csr()
    alpha, reg = 2.0, 0.5
    generator = torch.Generator().manual_seed(0)
    items = torch.randn(6, 3, generator=generator)
    y = items.double().numpy()
    expected = []
    for row in seen.toarray():  # x_u = (Yᵀ C_u Y + λI)⁻¹ Yᵀ C_u p_u, C_u = diag(1 + α r_u)
        confidence = np.diag(1 + alpha * row)
        expected.append(
            np.linalg.solve(y.T @ confidence @ y + reg * np.eye(3), y.T @ confidence @ row)
        )
    # CG reaches the exact solution in as many steps as there are factors; more steps
    # (past convergence) must not divide 0 by 0.
    for steps in (3, 8):
        users = torch.rand(3, 3, generator=generator)  # any warm start
        solve_rows(users, items, row_blocks(seen * alpha, 4), reg, steps)
        np.testing.assert_allclose(users.numpy(), np.array(expected), rtol=1e-3, atol=1e-4)


def test_als_loss_is_the_objective_and_never_rises(toy: Dataset) -> None:
    model = ALS(factors=2, alpha=4.0, reg=0.1, epochs=6).fit(toy.interactions)
    assert model.training_log is not None
    losses = [row["loss"] for row in model.training_log]
    assert (np.diff(losses) <= 1e-6).all()
    # The last epoch's loss is Σ_ui c_ui (p_ui − s_ui)² + λ(‖X‖² + ‖Y‖²), per interaction.
    p = toy.interactions.to_csr().toarray()
    users, items = model.user_factors.double().numpy(), model.item_factors.double().numpy()
    objective = ((1 + 4.0 * p) * (p - users @ items.T) ** 2).sum()
    objective += 0.1 * ((users**2).sum() + (items**2).sum())
    assert losses[-1] == pytest.approx(objective / p.sum(), rel=1e-4)


# ---------------------------------------------------------------- persistence
@pytest.mark.parametrize("name", ["ease", "als", "lightgcn"])
def test_save_load_round_trip(
    name: str, ml100k: Split, fitted: dict[str, Recommender], tmp_path: Path
) -> None:
    model = fitted[name]
    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model) and loaded.config == model.config
    users = ml100k.valid.frame["user_id"].unique().sort().head(50).to_list()
    assert np.array_equal(loaded.score(users), model.score(users))
    assert loaded.recommend(users, k=5).equals(model.recommend(users, k=5))


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "params", "shown"),
    [
        ("lightgcn", {"n_layers": -1}, "n_layers=-1"),
        ("lightgcn", {"reg": -1e-5}, "reg=-1e-05"),
        ("ease", {"reg": 0}, "reg=0"),
        ("ease", {"max_memory_gb": -2}, "max_memory_gb=-2"),
        ("als", {"alpha": -1}, "alpha=-1"),
        ("als", {"cg_steps": 0}, "cg_steps=0"),
        ("als", {"lambda": 1}, "unknown parameter 'lambda'"),
    ],
)
def test_bad_config_values_raise_config_error(
    name: str, params: dict[str, object], shown: str
) -> None:
    with pytest.raises(ConfigError, match=f"model '{name}'") as info:
        create_model(name, **params)
    assert shown in str(info.value)


def test_recommendations_use_raw_ids(ml100k: Split, fitted: dict[str, Recommender]) -> None:
    user = ml100k.train.frame["user_id"][0]
    seen = set(ml100k.train.frame.filter(pl.col("user_id") == user)["item_id"])
    for model in fitted.values():
        recs = model.recommend([user], k=10)
        assert recs.height == 10 and not set(recs["item_id"]) & seen
        assert set(recs["item_id"]) <= set(ml100k.items.ids)
