"""The peers UniMP is compared with in ``benchmarks/unimp.py``, each on the same rows.

Recommenders (SASRec, mm_sasrec, UniSRec, VBPR) are trained on the train part
(early-stopped on valid) and score every item for the measured users with
train + valid as context; biased MF predicts the test ratings. Two
non-personalized peers: poster selection by PMG's d_p (the option poster's
similarity to the user's history posters, (1 + cos) / 2 as PMG's scorer maps a
cosine, here in the pooled EfficientNet-Lite0 space: no text-image model is
installed offline), and search by the query's MiniLM embedding against each
candidate's text embedding (text -> item retrieval; no text -> poster model is
installed offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Content features each multimodal peer reads (its own default modalities).
PEERS = {"sasrec": (), "mm_sasrec": ("text", "image"), "unisrec": ("text",),
         "vbpr": ("text", "image")}  # fmt: skip


def _unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def item_features(catalog: Any, modalities: Sequence[str]) -> dict[str, Any]:
    """Cached text / image vectors of the catalog (the store the other benchmarks fill)."""
    from tastemaker.experiment import item_features as compute

    return compute(catalog, modalities, progress=False) if modalities else {}


def peer_scores(
    name: str, split: Any, users: list[str], features: dict[str, Any], seed: int,
    epochs: int | None,
) -> np.ndarray:  # fmt: skip
    """(users, items) scores of recommender ``name`` trained on train, early-stopped on valid."""
    from tastemaker.data.interactions import Interactions
    from tastemaker.models import create_model

    params: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        params["epochs"] = epochs
    train, valid = split.part("train"), split.part("valid")
    model = create_model(name, **params)
    model.fit(train, valid, features={m: features[m] for m in PEERS[name]} or None)
    context = Interactions.concat([train, valid])
    return model.score_indices(split.users.index(users), context).numpy()


def biased_mf_predictions(split: Any, users: list[str], items: list[str], seed: int) -> Any:
    """Biased MF's rating for each (user, item), clipped to MovieLens' 0.5 .. 5."""
    from tastemaker.models import BiasedMF

    model = BiasedMF(seed=seed).fit(split.part("train"), split.part("valid"))
    return model.predict_ratings(users, items).clip(0.5, 5.0)


def dp_selection(
    examples: Sequence[Any], known: dict[str, list[tuple[str, Any]]], images: Any, vocab: Any
) -> dict[str, float]:
    """Accuracy of picking the option poster with the highest d_p to the user's history."""
    from tastemaker.generation.scoring import unit_interval

    aligned = images.align(vocab)
    unit = _unit(aligned.vectors)
    right = []
    for example in examples:
        history = vocab.index([i for i, _ in known[example.user]])
        history = history[aligned.mask[history]]
        options = vocab.index(list(example.sentence.items[-len(example.options) :]))
        if not len(history):
            right.append(False)
            continue
        preference = unit[history].mean(0)
        d_p = unit_interval(unit[options] @ preference / max(np.linalg.norm(preference), 1e-12))
        picked = example.options[int(np.argmax(d_p))]
        right.append(picked == example.target)
    return {"accuracy": float(np.mean(right)) if right else 0.0, "n": len(right)}


def text_search_ranks(
    queries: Sequence[str], candidates: np.ndarray, text: Any, vocab: Any
) -> np.ndarray:
    """0-based rank of the wanted item (column 0) by query-to-item text cosine."""
    from tastemaker.encoders.base import create_encoder
    from tastemaker.unimp.evaluate import target_ranks

    aligned = text.align(vocab)
    items = _unit(aligned.vectors)
    encoder = create_encoder("text")
    asked = encoder.embed(list(queries))[0]
    asked = _unit(asked)
    scores = np.einsum("qd,qcd->qc", asked, items[candidates])
    return target_ranks(scores)
