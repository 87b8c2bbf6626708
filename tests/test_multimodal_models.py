"""VBPR, BM3 and FREEDOM: learning, cold items from content, masks, persistence, graphs.

The data are synthetic and small (fast, offline): 80 users in 4 taste clusters of
20, 160 items in 4 clusters of 40; a user takes each item of their cluster with
probability 0.5 and any other item with probability 0.02. Item features encode the
cluster plus noise (text for every item, an image for about 70%), so content
predicts taste, and an item absent from training can be placed by its content
alone. ID-only BPR cannot: on such items it is at chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tastemaker import Dataset, Split
from tastemaker.data.splits import cold_start, random_ratio
from tastemaker.encoders.base import ItemEmbeddings
from tastemaker.errors import ConfigError
from tastemaker.evaluation.ranking import evaluate
from tastemaker.models import BM3, BPR, FREEDOM, VBPR, MostPopular, Recommender, create_model
from tastemaker.models.freedom import prune_edges
from tastemaker.models.item_graph import knn_graph, mixed_knn_graph
from tastemaker.models.multimodal import ContentRecommender, WarmPairSampler
from tastemaker.models.training import cold_candidates

from .conftest import make_dataset

CLUSTERS, ITEMS_PER, USERS_PER = 4, 40, 20
N_ITEMS = CLUSTERS * ITEMS_PER
MODELS: dict[str, type[ContentRecommender]] = {"vbpr": VBPR, "bm3": BM3, "freedom": FREEDOM}
FAST = {"learning_rate": 1e-2, "epochs": 40, "patience": 10}  # converges in < 1 s here
# On a cold_start split every valid item is cold, and the loop's early-stopping metric
# (valid items ranked among all items) then measures how cold items rank against warm
# ones rather than what content tells: models of cold items train a fixed 40 epochs.
FIXED = {"learning_rate": 1e-2, "epochs": 40}


# ----------------------------------------------------------------------- data
def item_cluster() -> np.ndarray:
    return np.repeat(np.arange(CLUSTERS), ITEMS_PER)


@pytest.fixture(scope="module")
def clustered() -> Dataset:
    rng = np.random.default_rng(0)
    cluster, rows = item_cluster(), []
    for user in range(CLUSTERS * USERS_PER):
        like = np.where(cluster == user // USERS_PER, 0.5, 0.02)
        for item in np.flatnonzero(rng.random(N_ITEMS) < like):
            rows.append((f"u{user}", f"i{item}", 1.0, int(rng.integers(1000))))
    return make_dataset(rows, n_items=N_ITEMS)


def cluster_features(seed: int, dim: int, missing: float, modality: str) -> ItemEmbeddings:
    """Cluster centre + noise; a share ``missing`` of the items lack the modality."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, dim))
    vectors = (centres[item_cluster()] + 0.7 * rng.normal(size=(N_ITEMS, dim))).astype(np.float32)
    mask = rng.random(N_ITEMS) >= missing
    vectors[~mask] = 0
    ids = [f"i{k}" for k in range(N_ITEMS)]
    return ItemEmbeddings(ids, vectors, mask, f"synthetic-{modality}", modality)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def features() -> dict[str, ItemEmbeddings]:
    return {
        "text": cluster_features(1, 16, 0.0, "text"),
        "image": cluster_features(2, 8, 0.3, "image"),
    }


@pytest.fixture(scope="module")
def ratio_split(clustered: Dataset) -> Split:
    return random_ratio(clustered, seed=1)


@pytest.fixture(scope="module")
def cold_split(clustered: Dataset) -> Split:
    """Items split 8:1:1: valid and test items never occur in training."""
    return cold_start(clustered, seed=1)


@pytest.fixture(scope="module")
def warm_fitted(
    ratio_split: Split, features: dict[str, ItemEmbeddings]
) -> dict[str, ContentRecommender]:
    return {
        name: cls(**FAST).fit(ratio_split.train, ratio_split.valid, features=features)
        for name, cls in MODELS.items()
    }


@pytest.fixture(scope="module")
def cold_fitted(
    cold_split: Split, features: dict[str, ItemEmbeddings]
) -> dict[str, ContentRecommender]:
    return {
        name: cls(**FIXED).fit(cold_split.train, features=features) for name, cls in MODELS.items()
    }


def test_early_stopping_on_a_cold_split_ranks_among_cold_items(
    cold_split: Split, features: dict[str, ItemEmbeddings]
) -> None:
    """Every validation item is cold: validation ranks them among cold items only, so the
    logged value of the kept epoch is the cold-among-cold NDCG of the final model."""
    model = VBPR(**{**FAST, "epochs": 6}).fit(cold_split.train, cold_split.valid, features=features)
    cold = cold_candidates(cold_split.train, cold_split.valid)
    assert cold is not None and not np.isin(cold, cold_split.train.indices()[1]).any()
    assert cold_candidates(cold_split.train, cold_split.train) is None  # warm validation
    logged = next(r["ndcg@10"] for r in model.training_log or [] if r["epoch"] == model.best_epoch)
    among_cold = evaluate(
        model, cold_split.valid, exclude=[cold_split.train], ks=(10,), candidates=cold
    )["ndcg@10"]
    assert logged == pytest.approx(among_cold)
    assert logged != pytest.approx(valid_ndcg(model, cold_split))


def valid_ndcg(model: Recommender, split: Split) -> float:
    return evaluate(model, split.valid, exclude=[split.train], ks=(10,))["ndcg@10"]


def cold_auc(model: Recommender, split: Split) -> float:
    """Mean over test users of P(a test item of theirs outscores another test item).

    Every test item is cold (cold_start split), so this ranks cold items only;
    chance is 0.5 (ties count half).
    """
    truth = split.test.to_csr()
    cold = np.flatnonzero(truth.getnnz(axis=0))
    users = np.flatnonzero(truth.getnnz(axis=1))
    scores = model.score_indices(users).numpy()[:, cold]
    relevant = truth[users][:, cold].toarray() > 0
    aucs = []
    for row, rel in zip(scores, relevant, strict=True):
        if rel.all():
            continue
        diff = row[rel][:, None] - row[~rel][None, :]
        aucs.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
    return float(np.mean(aucs))


# ------------------------------------------------------------------- learning
def test_models_learn_beyond_most_popular(
    ratio_split: Split, warm_fitted: dict[str, ContentRecommender]
) -> None:
    popular = valid_ndcg(MostPopular().fit(ratio_split.train), ratio_split)
    # Measured: MostPopular 0.027, BPR 0.22; VBPR 0.21, BM3 0.23, FREEDOM 0.20.
    assert popular < 0.06
    for name, model in warm_fitted.items():
        assert valid_ndcg(model, ratio_split) > popular + 0.12, name


def test_cold_items_are_ranked_by_content(
    cold_split: Split, cold_fitted: dict[str, ContentRecommender]
) -> None:
    warm = cold_split.train.to_csr().getnnz(axis=0) > 0
    test_items = cold_split.test.to_csr().getnnz(axis=0) > 0
    assert not (warm & test_items).any()  # the test items really are cold
    bpr = BPR(**FIXED).fit(cold_split.train)
    # Measured (seeds 42, 1, 2): VBPR 0.86-0.87, BM3 0.86-0.88, FREEDOM 0.87-0.88.
    assert 0.35 < cold_auc(bpr, cold_split) < 0.65  # chance: 0.5
    for name, model in cold_fitted.items():
        assert cold_auc(model, cold_split) > 0.78, name


def test_negatives_are_only_warm_items(cold_split: Split) -> None:
    seen = cold_split.train.to_csr()
    sampler = WarmPairSampler(seen, "test")
    drawn = sampler.epoch(torch.Generator().manual_seed(0))
    users, positives, negatives = (part.numpy().copy() for part in drawn)
    warm = seen.getnnz(axis=0) > 0
    assert warm[positives].all() and warm[negatives].all()
    assert len(positives) == seen.nnz
    assert not seen[users, negatives].any()  # negatives are unseen
    assert seen[users, positives].all() and len(set(zip(users, positives, strict=True))) == seen.nnz


# ------------------------------------------------------------------ modalities
@pytest.mark.parametrize("name", list(MODELS))
def test_text_only_ignores_images(
    name: str, cold_split: Split, features: dict[str, ItemEmbeddings]
) -> None:
    cls = MODELS[name]
    other_images = {**features, "image": cluster_features(99, 8, 0.5, "image")}
    a = cls(modalities=["text"], **FIXED).fit(cold_split.train, features=features)
    b = cls(modalities=["text"], **FIXED).fit(cold_split.train, features=other_images)
    assert set(a.content) == {"text"}
    np.testing.assert_array_equal(a.score(["u0", "u50"]), b.score(["u0", "u50"]))
    assert cold_auc(a, cold_split) > 0.78  # text alone still places cold items (0.86-0.88)


@pytest.mark.parametrize("name", list(MODELS))
def test_masked_rows_give_no_signal(
    name: str, cold_fitted: dict[str, ContentRecommender], cold_split: Split
) -> None:
    model = cold_fitted[name]
    before = model.score(cold_split.users.ids)
    no_image = ~model.content_mask["image"]
    assert no_image.any()
    saved = model.content["image"].clone()
    try:
        model.content["image"][no_image] = 50 * torch.randn(int(no_image.sum()), 8)
        model._represented = None  # score again from the (now noisy) features
        np.testing.assert_array_equal(model.score(cold_split.users.ids), before)
    finally:
        model.content["image"][:] = saved
        model._represented = None


def test_vbpr_scores_follow_eq2(cold_fitted: dict[str, ContentRecommender]) -> None:
    """x_ui = β_i + <γ_u, γ_i> + <θ_u, Σ_m c_im> + bias part, with γ_i = β_i = 0 when cold."""
    model = cold_fitted["vbpr"]
    net = model.net
    assert isinstance(model, VBPR) and net is not None
    warm = model.warm
    no_image = ~model.content_mask["image"]
    item_w = int(torch.nonzero(warm & ~no_image)[0])  # warm, has an image
    item_c = int(torch.nonzero(~warm & no_image)[0])  # cold, lacks an image
    user = 3
    with torch.no_grad():
        for item, is_warm in ((item_w, True), (item_c, False)):
            content = torch.zeros(model.config.content_factors + 1)
            for modality in ("text", "image"):
                if model.content_mask[modality][item]:
                    weight = net.project.weight[modality]
                    f = model.content[modality][item]
                    content += (f @ weight) * net.project.scale[modality]
                else:
                    content += net.missing[modality]
            expected = content[-1] + net.user_content[user] @ content[:-1]
            if is_warm:
                expected += net.item_bias[item] + net.user_factors[user] @ net.item_factors[item]
            got = model.score_indices(np.array([user]))[0, item]
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_bm3_loss_is_the_authors_formula() -> None:
    """BM3's batch loss on tiny tensors, computed by hand as the authors' code does
    (MMRec ``bm3.py``): LightGCN output + the item's own embedding, the L2 term
    0.1 × (‖H_u‖_F + ‖H_i‖_F) / n_items over every row (not the batch's squared norms)."""
    rows = [("u0", "i0", 1.0, 1), ("u0", "i1", 1.0, 2), ("u1", "i1", 1.0, 3), ("u1", "i2", 1.0, 4)]
    data = make_dataset(rows, n_items=3)
    rng = np.random.default_rng(3)
    text = ItemEmbeddings(
        ["i0", "i1", "i2"], rng.normal(size=(3, 5)).astype(np.float32), np.ones(3, bool),
        "synthetic-text", "text",
    )  # fmt: skip
    model = BM3(factors=4, dropout=0.0, epochs=1, modalities=["text"], batch_size=4)
    model.fit(data.interactions, features={"text": text})
    net = model.net
    assert isinstance(net, torch.nn.Module)
    users, items = data.interactions.indices()
    users_t, items_t = torch.tensor(users), torch.tensor(items)
    with torch.no_grad():
        got = float(model._loss(users_t, items_t, torch.zeros(0, dtype=torch.int64)))
        e_u, e_i = net.user_embedding.numpy(), net.item_embedding.numpy()
        w, b = net.predictor_weight.numpy(), net.predictor_bias.numpy()
        f = text.vectors / np.linalg.norm(text.vectors, axis=1).mean()
        h_t = f @ net.project.weight["text"].numpy() + net.project.bias["text"].numpy()
    seen = np.zeros((2, 3))
    seen[users, items] = 1
    degree_u, degree_i = seen.sum(1), seen.sum(0)
    norm = seen / np.sqrt(degree_u[:, None] * degree_i[None, :])
    h_u = (e_u + norm @ e_i) / 2  # mean of layers 0 and 1
    h_i = (e_i + norm.T @ e_u) / 2 + e_i  # + the item residual

    def distance(a: np.ndarray, c: np.ndarray) -> float:
        cos = (a * c).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(c, axis=1)
        return float(np.mean(1 - cos))

    u, i, t = h_u[users], h_i[items], h_t[items]
    expected = (
        distance(u @ w + b, i)
        + distance(i @ w + b, u)
        + 2.0 * (distance(t @ w + b, i) + distance(t @ w + b, t))
        + 0.1 * (np.linalg.norm(h_u) + np.linalg.norm(h_i)) / 3
    )
    assert got == pytest.approx(expected, rel=1e-5)


def test_freedom_cold_item_is_its_neighbours_mean(
    cold_fitted: dict[str, ContentRecommender],
) -> None:
    model = cold_fitted["freedom"]
    assert isinstance(model, FREEDOM) and model.net is not None and model.item_graph is not None
    warm = model.warm
    cold = int(torch.nonzero(~warm)[0])
    row = model.item_graph[cold]
    assert model.config.knn_k <= row.nnz <= 2 * model.config.knn_k  # text and image
    assert warm[row.indices].all()  # neighbours are warm items only
    np.testing.assert_allclose(row.sum(), 1.0, rtol=1e-6)
    with torch.no_grad():
        _, items = model._represent()
        expected = torch.from_numpy(row.toarray()[0]) @ items
    torch.testing.assert_close(items[cold], expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- persistence
@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_gives_identical_scores(
    name: str, cold_fitted: dict[str, ContentRecommender], cold_split: Split, tmp_path: Path
) -> None:
    model = cold_fitted[name]
    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model) and loaded.config == model.config
    users = cold_split.users.ids
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    for modality in model.content:
        assert torch.equal(loaded.content_mask[modality], model.content_mask[modality])


# ---------------------------------------------------------------- item graphs
def dense_top_k(vectors: np.ndarray, k: int, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Brute force: the full cosine matrix, the top k key columns of each query row."""
    norms = np.linalg.norm(vectors, axis=1)
    usable = norms > 0
    unit = np.divide(vectors, norms[:, None], out=np.zeros_like(vectors), where=usable[:, None])
    sims = unit @ unit.T
    sims[:, ~(keys & usable)] = -np.inf
    out = np.zeros_like(sims)
    for row in np.flatnonzero(queries & usable):
        top = np.argsort(-sims[row])[:k]
        out[row, top] = sims[row, top]
    return out


@pytest.mark.parametrize("chunk_size", [1, 3, 17, 40, 1000])
def test_chunked_knn_graph_equals_dense_top_k(chunk_size: int) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(40, 6)).astype(np.float32)
    vectors[[4, 9]] = 0  # items lacking the modality: nobody's neighbour, no neighbours
    queries = rng.random(40) < 0.8
    keys = rng.random(40) < 0.7
    expected = dense_top_k(vectors, 5, queries, keys)
    graph = knn_graph(
        torch.from_numpy(vectors),
        5,
        queries=torch.from_numpy(queries),
        keys=torch.from_numpy(keys),
        chunk_size=chunk_size,
    )
    assert isinstance(graph, sp.csr_matrix) and graph.has_sorted_indices
    rows = np.flatnonzero(queries & (np.linalg.norm(vectors, axis=1) > 0))
    assert np.array_equal(np.flatnonzero(graph.getnnz(axis=1)), rows)
    assert (graph.getnnz(axis=1)[rows] == 5).all()
    np.testing.assert_array_equal(graph.toarray() != 0, expected != 0)
    np.testing.assert_allclose(graph.toarray(), expected, rtol=1e-5, atol=1e-6)


def test_knn_graph_keeps_all_keys_when_fewer_than_k() -> None:
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    graph = knn_graph(vectors, 10, keys=torch.tensor([True, False, True]))
    assert graph.getnnz(axis=1).tolist() == [2, 2, 2]
    np.testing.assert_allclose(graph[1].toarray(), [[0.0, 0.0, np.sqrt(0.5)]], atol=1e-7)


def test_mixed_graph_renormalises_missing_modalities() -> None:
    # Items 0-3; text on a line, images on another; item 3 has no image.
    text = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    image = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.1, 1.0], [0.0, 0.0]])
    masks = {"text": torch.ones(4, dtype=torch.bool), "image": torch.tensor([1, 1, 1, 0]).bool()}
    graph = mixed_knn_graph(
        {"text": text, "image": image}, masks, {"text": 0.9, "image": 0.1}, k=2
    ).toarray()
    # Item 0: text neighbours {0, 1} at 0.9/2, image neighbours {0, 2} at 0.1/2.
    np.testing.assert_allclose(graph[0], [0.45 + 0.05, 0.45, 0.05, 0.0], rtol=1e-6)
    # Item 3 lacks an image: text alone, with weight 1, over its neighbours {2, 3}.
    np.testing.assert_allclose(graph[3], [0.0, 0.0, 0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(graph[:, 3], [0.0, 0.0, 0.45, 0.5], rtol=1e-6)  # no image edge
    np.testing.assert_allclose(graph.sum(axis=1), 1.0, rtol=1e-6)


def test_degree_sensitive_pruning() -> None:
    # User 0 has 3 items, user 1 has 1 item (item 3, also seen by user 0): edge weights
    # 1/sqrt(d_u d_i) = 1/sqrt(3), 1/sqrt(3), 1/sqrt(6), 1/sqrt(2).
    seen = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 0, 0, 1]], dtype=np.float32))
    generator = torch.Generator().manual_seed(0)
    pruned = prune_edges(seen, 0.5, generator)
    assert pruned.nnz == 2 and not (pruned - pruned.multiply(seen)).nnz  # a subset of seen
    weights = np.array([3, 3, 6, 2], dtype=float) ** -0.5
    counts = np.zeros(4)
    edges = list(zip(*seen.nonzero(), strict=True))
    for _ in range(4000):
        kept = prune_edges(seen, 0.75, generator)  # one edge, drawn ∝ its weight
        counts[edges.index(tuple(np.argwhere(kept.toarray())[0]))] += 1
    np.testing.assert_allclose(counts / 4000, weights / weights.sum(), atol=0.025)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("vbpr", {"factors": 0}),
        ("vbpr", {"modalities": []}),
        ("vbpr", {"modalities": ["audio"]}),
        ("bm3", {"dropout": 1.0}),
        ("bm3", {"cl_weight": -1}),
        ("freedom", {"knn_k": 0}),
        ("freedom", {"image_weight": 0.0}),
        ("freedom", {"dropout": -0.1}),
        ("freedom", {"typo": 1}),
    ],
)
def test_bad_config_is_a_config_error(name: str, params: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        create_model(name, **params)


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_without_features_is_a_config_error(name: str, cold_split: Split) -> None:
    with pytest.raises(ConfigError, match="no features"):
        MODELS[name]().fit(cold_split.train)
    text_only = {"text": cluster_features(1, 16, 0.0, "text")}
    with pytest.raises(ConfigError, match="no image"):
        MODELS[name]().fit(cold_split.train, features=text_only)
