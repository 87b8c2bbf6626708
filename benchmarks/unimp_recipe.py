"""The UniMP recipe chosen on validation users (``benchmarks/unimp.py --part recipe``).

Every candidate trains on the same pool (the benchmark's training users, train
part) within the same budget of training examples at two decoder layers, and is
measured on the *valid* item of validation users drawn from the training users
and disjoint from the reported test users (history: their train part). The
winner is the highest validation retrieval HR@5 (ties: NDCG@5) among candidates
whose rating MAE is at most ``MAE_SLACK`` above the previous recipe's, so the
recommendation gain may not cost the rating task. The best single change is then
tried together with the best one that touches other settings. Nothing here reads
a test item.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

VALIDATION_USERS = 40
MAE_SLACK = 0.05
NEGATIVES = 100
#: The recipe the candidates change: the previous session's (before this comparison
#: chose the BPR item table and history pooling as the defaults).
BASE: dict[str, Any] = {"item_init": "random", "pool_history": False}
PREVIOUS = "previous recipe"


def candidates(steps: int, batch: int) -> dict[str, dict[str, Any]]:
    """One change each from :data:`BASE`, all at about the same training CPU."""
    return {
        PREVIOUS: {},
        "λ_recommend 4, retrieval weight 4": {"weights": {"recommend": 4.0},
                                              "retrieval_weight": 4.0},
        "4 layers, half the steps": {"lm_layers": 4, "steps": max(1, steps // 2)},
        "batch 2, twice the steps": {"batch_size": max(1, batch // 2), "steps": 2 * steps},
        f"sampled softmax (in-batch + {NEGATIVES} uniform)": {"retrieval_negatives": NEGATIVES},
        "item table from BPR": {"item_init": "id"},
        "item table from BPR + history pooling": {"item_init": "id", "pool_history": True},
        "titles cut to 4 words": {"title_words": 4},
    }  # fmt: skip


def validation_data(s: Any) -> Any:
    """The training data with each validation user's valid item as the item to predict."""
    from tastemaker.unimp.serialize import user_histories

    valid = user_histories(s.data.split.part("valid"))
    reported = set(s.plan.users) | set(s.held)
    pool = sorted(u for u in s.train_data.train if u in valid and u not in reported)
    rng = np.random.default_rng(1)  # another seed than the test users' draw
    users = sorted(rng.choice(pool, size=min(VALIDATION_USERS, len(pool)), replace=False))
    return replace(s.train_data, known=s.train_data.train,
                   test={u: valid[u] for u in users})  # fmt: skip


def pick(measured: dict[str, dict[str, Any]]) -> str:
    """The winner under the rule in the module docstring."""
    limit = measured[PREVIOUS]["rating MAE"] + MAE_SLACK
    allowed = [n for n, m in measured.items() if m["rating MAE"] <= limit]
    return max(allowed, key=lambda n: (measured[n]["HR@5"], measured[n]["NDCG@5"]))


def merged(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """Several candidates' changes together (later ones win a clash)."""
    out: dict[str, Any] = {}
    for change in changes:
        out.update(change)
    return out


def second_change(ranked: list[str], changes: dict[str, dict[str, Any]]) -> str:
    """The best candidate after ``ranked[0]`` that changes none of its settings."""
    first = set(changes[ranked[0]])
    return next(n for n in ranked[1:] if not first & set(changes[n]))


def run_recipe(s: Any, rec: Any, earlier: dict[str, Any] | None = None) -> None:
    """Train and validate every candidate, then the best two together; record each row.

    ``earlier``: candidates measured by an earlier run of this part, reused when their
    change is the same.
    """
    from tastemaker.unimp.pipeline import train_unimp
    from tastemaker.unimp.report import evaluate_all
    from tastemaker.unimp.serialize import ItemDescriber

    val = validation_data(s)
    changes = candidates(s.config.steps, s.config.batch_size)
    measured: dict[str, dict[str, Any]] = {}
    catalog = s.dataset.catalog.subset(s.data.split.items.ids)

    def measure(name: str, change: dict[str, Any]) -> None:
        old = (earlier or {}).get(name)
        if old is not None and old["change"] == change:
            measured[name] = old
            return
        cpu = time.process_time()
        variant = s.config.model_copy(update={**BASE, **change})
        run = s.out_dir.with_name(s.out_dir.name + "-recipe")
        train, check = s.train_data, val
        if variant.title_words != s.config.title_words:  # titles are cut when data are read
            describer = ItemDescriber(catalog, variant.title_words)
            train, check = (replace(d, describer=describer) for d in (train, val))
        model, _ = train_unimp(train, variant, run, per_user=s.size["per_user"])
        trained = time.process_time()
        got = evaluate_all(model, check, users=None, seed=0, generative=False)
        del model
        measured[name] = {
            **{k: got["retrieval@100"][k] for k in ("HR@5", "NDCG@5", "HR@10")},
            "full HR@10": got["retrieval@full"]["HR@10"],
            "rating MAE": got["rating"]["MAE"],
            "select acc.": got["select"]["accuracy"] if got["select"] else None,
            "users": got["users"], "change": change,
            "train CPU-s": round(trained - cpu, 1),
            "eval CPU-s": round(time.process_time() - trained, 1),
        }  # fmt: skip
        rec.row("recipe", {"candidates": measured, "validation_users": len(val.test),
                           "budget": {"steps": s.config.steps, "batch_size": s.config.batch_size,
                                      "lm_layers": s.config.lm_layers}})  # fmt: skip

    for name, change in changes.items():
        measure(name, change)
    singles = sorted((n for n in changes if n != PREVIOUS),
                     key=lambda n: (-measured[n]["HR@5"], -measured[n]["NDCG@5"]))  # fmt: skip
    best_two = [singles[0], second_change(singles, changes)]
    measure(" + ".join(best_two), merged([changes[n] for n in best_two]))
    winner = pick(measured)
    rec.row("recipe", {"candidates": measured, "validation_users": len(val.test),
                       "budget": {"steps": s.config.steps, "batch_size": s.config.batch_size,
                                  "lm_layers": s.config.lm_layers},
                       "winner": winner, "winner_change": measured[winner]["change"]})  # fmt: skip
