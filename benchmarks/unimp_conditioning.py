"""UniMP's user state as soft conditioning for PMG's generator, measured offline.

    nice -n 5 .venv/bin/python benchmarks/unimp_conditioning.py --data-root $TASTEMAKER_DATA

No Stable Diffusion weights exist offline, so the generator is the tiny random one
(:mod:`tastemaker.generation.tiny`): the code paths are the real ones, the pictures
are not. Two measurements on ml-latest-small users with posters, a seeded third of
them held out of every training (UniMP's, the token maps', the probes'):

1. **Diffusion loss of held-out users' next posters** (the leak-free next-item
   examples of :func:`~tastemaker.generation.soft_examples.soft_examples`) with no
   soft tokens, PMG's soft tokens, UniMP's state in their place (``replace``) and
   after them (``join``): the same training steps, seeds, examples and evaluation
   draws for each. With a random UNet this shows the machinery learns on people it
   never saw; it says nothing of image quality.
2. **Does the conditioning identify the next poster?** A ridge probe (λ by 5-fold
   cross-validation on the training users) maps each conditioning (the K soft tokens,
   flattened) to the next poster's EfficientNet-Lite0 feature vector (UniMP's poster
   features, mean over regions); on the held-out users it ranks the true next poster
   among 1 + 9 posters the user never rated by cosine. References without a probe:
   the mean of the history's posters, and UniMP's own retrieval head.

Backbones: UniMP and PMG's soft-token LLM are the same SmolLM2 trunk cut to its
first layers (UniMP's quick recipe: ``lm_layers`` 2), so neither reads more model.
Writes ``benchmarks/results/unimp_conditioning.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

import data_root
from tastemaker.atomic import write_text
from tastemaker.generation.soft_training import DiffusionTokenTrainer

RESULTS = data_root.REPO / "benchmarks" / "results"
SEED = 0
SETTINGS: dict[str, Any] = {
    "users": 90, "heldout": 1 / 3, "per_user": 4, "lm_layers": 2, "unimp_steps": 40,
    "unimp_batch": 4, "history": 3, "token_steps": 150, "learning_rate": 1e-3,
    "batch_size": 4, "num_tokens": 4, "candidates": 10, "max_history_tokens": 256,
}  # fmt: skip
LAMBDAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def cpu() -> float:
    return time.process_time()


def pick_users(parts: Any, dataset: Any, n: int) -> dict[str, list[Any]]:
    """A seeded sample of ``n`` users with at least two leak-free next-poster examples."""
    from tastemaker.errors import DataError
    from tastemaker.generation.soft_examples import soft_examples

    users = sorted({str(u) for u in dataset.interactions.frame["user_id"].to_list()})
    out: dict[str, list[Any]] = {}
    for user in np.random.default_rng(SEED).permutation(users).tolist():
        try:
            examples = soft_examples(parts, dataset, [user], per_user=SETTINGS["per_user"])
        except DataError:
            continue
        if len(examples) >= 2:
            out[user] = examples
        if len(out) == n:
            break
    return out


class Unconditioned(DiffusionTokenTrainer):
    """No soft tokens: the prompt alone conditions the UNet (PMG's loss with K = 0)."""

    def __init__(self, generator: Any, batch_size: int) -> None:
        self.generator, self.encoder = generator, torch.nn.Identity()
        self.config = SimpleNamespace(num_tokens=0, batch_size=batch_size, seed=SEED)
        self.width = int(generator.encode_prompt([""]).shape[-1])

    def _example_input(self, example: Any) -> None:
        return None

    def _soft_batch(self, inputs: list[Any]) -> torch.Tensor:
        return torch.zeros(len(inputs), 0, self.width)


def other_users_histories(pairs: list[tuple[str, Any]]) -> list[Any]:
    """Each (user, example) with the history of the next example of another user: the
    same images and noise, conditioned on someone else (target ID dropped: no leak check
    applies to a history that is not the user's)."""
    out = []
    for j, (user, example) in enumerate(pairs):
        k = next(
            k % len(pairs) for k in range(j + 1, j + len(pairs)) if pairs[k % len(pairs)][0] != user
        )
        other = pairs[k][1]
        out.append(replace(example, history=other.history, history_ids=other.history_ids,
                           item_id=None))  # fmt: skip
    return out


def ridge_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Ridge regression from standardized inputs (λ by 5-fold CV on the training rows)."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6

    def fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        xs = (x - mean) / std
        w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ (y - y.mean(0)))
        return w, y.mean(0)

    def predict(x: np.ndarray, model: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return ((x - mean) / std) @ model[0] + model[1]

    if x_train.shape[1] == 0:  # a constant conditioning: the training targets' mean
        return np.repeat(y_train.mean(0, keepdims=True), len(x_test), axis=0)
    folds = np.random.default_rng(SEED).permutation(len(x_train)) % 5
    errors = []
    for lam in LAMBDAS:
        err = 0.0
        for f in range(5):
            held = folds == f
            model = fit(x_train[~held], y_train[~held], lam)
            err += float(((predict(x_train[held], model) - y_train[held]) ** 2).sum())
        errors.append(err)
    return predict(x_test, fit(x_train, y_train, LAMBDAS[int(np.argmin(errors))]))


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


def rank_summary(scores: np.ndarray) -> dict[str, Any]:
    """Accuracy@1 (95% bootstrap interval) and MRR of column 0 (ties count against it)."""
    from tastemaker.text.metrics import bootstrap
    from tastemaker.unimp.evaluate import target_ranks

    ranks = target_ranks(scores)
    hits = (ranks == 0).astype(float)
    low, high = bootstrap(lambda idx: float(hits[idx].mean()), len(hits), seed=SEED)
    return {"accuracy": float(hits.mean()), "low": low, "high": high,
            "MRR": float((1.0 / (ranks + 1)).mean()), "n": len(ranks)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data_root.add_argument(parser)
    parser.add_argument("--lm", default=None, help="UniMP/PMG backbone (default SmolLM2-135M)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="rewrite the page from the JSON")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.out / "unimp_conditioning.json").read_text())
        write_text(args.out / "unimp_conditioning.md", markdown(saved))
        return
    root = data_root.data_root(args.data_root, "ml-latest-small", "ml-latest-small-posters")
    torch.set_num_threads(1)
    started, load = time.time(), os.getloadavg()
    result = run(root, args.lm)
    result["meta"] = {
        "command": data_root.command_line(sys.argv if argv is None else argv, root),
        "seed": SEED, "settings": SETTINGS, "wall_seconds": time.time() - started,
        "cpu_seconds": time.process_time(),
        "load_average": [load, os.getloadavg()], "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "unimp_conditioning.json", json.dumps(result, indent=1) + "\n")
    page = markdown(result)
    write_text(args.out / "unimp_conditioning.md", page)
    print(page)


def run(root: Path, lm: str | None) -> dict[str, Any]:
    from tastemaker.data.sources.movielens import load_movielens
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
    from tastemaker.generation.scenario import PipelineConfig
    from tastemaker.generation.soft_examples import split_users
    from tastemaker.generation.soft_prompt import SoftPromptConfig
    from tastemaker.generation.soft_training import SoftPreferenceTrainer
    from tastemaker.unimp.backbone import load_backbone, truncate
    from tastemaker.unimp.config import DEFAULT_LM, UniMPConfig
    from tastemaker.unimp.image_conditioning import UniMPImageConditioner
    from tastemaker.unimp.pipeline import prepare, train_unimp

    s, out, timing = SETTINGS, {}, {}
    folder = root / "ml-latest-small"
    dataset = load_movielens(folder, root / "ml-latest-small-posters")
    config = UniMPConfig(
        lm=lm or DEFAULT_LM, lm_layers=s["lm_layers"], steps=s["unimp_steps"],
        batch_size=s["unimp_batch"], history=s["history"], save_every=s["unimp_steps"], seed=SEED,
    )  # fmt: skip
    t = cpu()
    data = prepare(dataset, config, tags_folder=folder, progress=False)
    parts = PersonalizedGenerationPipeline(
        PipelineConfig.model_validate({
            "keywords": {"extractor": "statistical"}, "scorer": {"kind": "none"},
            "generator": {"model": "tiny", "num_inference_steps": 2, "num_images": 1},
        })
    )  # fmt: skip
    by_user = pick_users(parts, dataset, s["users"])
    train_users, held_users = split_users(list(by_user), s["heldout"], SEED)
    pairs = {"train": [(u, e) for u in train_users for e in by_user[u]],
             "held": [(u, e) for u in held_users for e in by_user[u]]}  # fmt: skip
    train, held = ([e for _, e in pairs[k]] for k in ("train", "held"))
    swapped = other_users_histories(pairs["held"])
    out["data"] = {"train_users": len(train_users), "heldout_users": len(held_users),
                   "train_examples": len(train), "heldout_examples": len(held)}  # fmt: skip
    timing["prepare"] = cpu() - t
    work = Path(tempfile.mkdtemp(prefix="unimp-conditioning-"))
    t = cpu()  # UniMP never sees the held-out users
    unimp_data = replace(data, train={u: h for u, h in data.train.items() if u not in held_users})
    unimp, trained = train_unimp(unimp_data, config, work / "unimp", per_user=s["per_user"],
                                 progress=False)  # fmt: skip
    unimp.eval()
    timing["unimp_train"] = cpu() - t
    out["unimp_train_log_last"] = trained.log[-1] if trained.log else None
    generator = parts.require_generator("soft tokens")
    tokenizer, llm = load_backbone(config, "cpu", "float32")
    truncate(llm, s["lm_layers"])
    common = {"num_tokens": s["num_tokens"], "steps": s["token_steps"], "seed": SEED,
              "learning_rate": s["learning_rate"], "batch_size": s["batch_size"],
              "checkpoint_every": s["token_steps"]}  # fmt: skip
    pmg_config = SoftPromptConfig(**common, max_history_tokens=s["max_history_tokens"])
    sources: dict[str, Any] = {"none": Unconditioned(generator, s["batch_size"])}
    sources["PMG soft tokens"] = SoftPreferenceTrainer(llm, tokenizer, generator, pmg_config)
    describer = data.describer
    sources["UniMP state (replace)"] = UniMPImageConditioner(unimp, describer, generator, **common)
    losses: dict[str, Any] = {}
    for name in ("none", "PMG soft tokens", "UniMP state (replace)", "join"):
        if name == "join":  # after PMG's trained (now frozen) tokens
            pmg = sources["PMG soft tokens"]
            sources[name] = UniMPImageConditioner(
                unimp, describer, generator, mode="join", pmg=pmg, **common
            )
        source, t = sources[name], cpu()
        row = {"heldout_untrained": source.evaluate(held, seed=SEED)}
        if name != "none":
            run_ = source.train(train, work / name.split()[0], progress=True)
            row |= {"heldout_trained": source.evaluate(held, seed=SEED),
                    "heldout_other_user": source.evaluate(swapped, seed=SEED),
                    "train_first_10": float(np.mean(run_.losses[:10])),
                    "train_last_10": float(np.mean(run_.losses[-10:]))}  # fmt: skip
        row["cpu_seconds"] = cpu() - t
        losses[name] = row
        print(name, row, flush=True)
    out["diffusion_loss"], out["cpu_seconds"] = losses, timing
    t = cpu()
    out["identification"] = identify(sources, unimp, data, pairs)
    timing["identification"] = cpu() - t
    return out


@torch.no_grad()
def identify(sources: dict[str, Any], unimp: Any, data: Any, pairs: dict[str, list]) -> dict:
    """Ranks of each held-out next poster among 1 + 9 unrated posters (section 2)."""
    from tastemaker.unimp.evaluate import retrieval_scores

    vocab, known = unimp.bank.vocab, set(unimp.bank.vocab.ids)
    feats = unit(unimp.poster_means.float().numpy())
    has = np.flatnonzero(np.abs(feats).sum(1) > 0)

    def row(item: str) -> int:
        return int(vocab.index([item])[0])

    usable = {k: [(u, e) for u, e in v if e.item_id in known and row(e.item_id) in set(has)]
              for k, v in pairs.items()}  # fmt: skip
    train, held = ([e for _, e in usable[k]] for k in ("train", "held"))
    rng, cand = np.random.default_rng(SEED), []
    for user, e in usable["held"]:
        seen = data.seen.get(user, set()) | {e.item_id}
        pool = [int(i) for i in rng.permutation(has)[:100] if vocab.ids[int(i)] not in seen]
        cand.append([row(e.item_id), *pool[: SETTINGS["candidates"] - 1]])
    cand_feats = feats[np.array(cand)]
    y_train = feats[[row(e.item_id) for e in train]]

    def tokens(name: str, examples: list) -> np.ndarray:
        source = sources[name]
        if name == "none":
            return np.zeros((len(examples), 0))
        rows = [source._soft_batch([source._example_input(e)])[0].flatten() for e in examples]
        return torch.stack(rows).float().numpy()

    unimp_source = sources["UniMP state (replace)"]
    states = [unimp_source.states([e.history_ids for e in ex]).numpy() for ex in (train, held)]
    probes = {name: (tokens(name, train), tokens(name, held)) for name in sources}
    probes["UniMP state before the map"] = (states[0], states[1])
    out: dict[str, Any] = {}
    for name, (x_train, x_held) in probes.items():
        pred = unit(ridge_probe(x_train, y_train, x_held))
        out[f"probe: {name}"] = rank_summary(np.einsum("nd,ncd->nc", pred, cand_feats))
    history = np.stack([
        unit(feats[[row(i) for i in e.history_ids if i in known]].mean(0)) for e in held
    ])  # fmt: skip
    out["no probe: mean of the history's posters"] = rank_summary(
        np.einsum("nd,ncd->nc", history, cand_feats)
    )
    builder = data.builder(unimp.config)  # the recommendation prompt over the same history
    asked = [builder.recommend(u, [(i, None) for i in reversed(e.history_ids) if i in known],
                               e.item_id) for u, e in usable["held"]]  # fmt: skip
    scores = retrieval_scores(unimp, asked)
    out["no probe: UniMP retrieval head"] = rank_summary(
        np.take_along_axis(scores, np.array(cand), 1)
    )
    out["chance"] = 1.0 / SETTINGS["candidates"]
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results page."""
    meta, data = result["meta"], result["data"]
    lines = [
        "# UniMP's user state as soft conditioning for PMG's generator",
        "",
        f"`{meta['command']}` · {meta['date']} · seed {meta['seed']} · "
        f"{meta['cpu_seconds'] / 60:.1f} CPU-min (one thread), {meta['wall_seconds'] / 60:.1f} "
        "min wall · load average "
        f"{meta['load_average'][0][0]:.1f} at start, {meta['load_average'][1][0]:.1f} at end",
        "",
        f"ml-latest-small with posters: {data['train_users']} training users "
        f"({data['train_examples']} next-poster examples) and {data['heldout_users']} held-out "
        f"users ({data['heldout_examples']}), held out of every training below. Settings: "
        + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in meta["settings"].items()),
        "",
        "## 1. Diffusion loss of held-out users' next posters (tiny random generator)",
        "",
        "| conditioning | untrained | trained | trained, another user's history "
        "| train loss, first → last 10 steps | CPU-s |",
        "|---|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for name, r in result["diffusion_loss"].items():
        trained = f"{r['heldout_trained']:.4f}" if "heldout_trained" in r else "–"
        steps = (f"{r['train_first_10']:.4f} → {r['train_last_10']:.4f}"
                 if "train_first_10" in r else "–")  # fmt: skip
        other = f"{r['heldout_other_user']:.4f}" if "heldout_other_user" in r else "–"
        lines.append(
            f"| {name} | {r['heldout_untrained']:.4f} | {trained} | {other} | {steps} "
            f"| {r['cpu_seconds']:.0f} |"
        )
    gaps = [f"{n} {r['heldout_trained'] - r['heldout_other_user']:+.4f}"
            for n, r in result["diffusion_loss"].items() if "heldout_other_user" in r]  # fmt: skip
    lines += ["", "Trained, own history − another user's: " + ", ".join(gaps) + "."]
    ident = result["identification"]
    lines += [
        "",
        f"## 2. Which of 10 posters comes next? (held-out users; chance {ident['chance']:.2f})",
        "",
        "| conditioning | accuracy@1 [95% interval] | MRR | n |",
        "|---|---|---:|---:|",
    ]
    for name, r in ident.items():
        if name != "chance":
            lines.append(
                f"| {name} | {r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}] "
                f"| {r['MRR']:.3f} | {r['n']} |"
            )
    lines += ["", NOTES]
    return "\n".join(lines) + "\n"


NOTES = """## What this can and cannot show

- **No Stable Diffusion weights exist offline.** The generator is the tiny random one;
  section 1 shows that each token source trains by PMG's diffusion loss and how the
  loss of users it never saw moves, with the same steps, seeds, examples and noise.
  A random UNet's loss says nothing of how the pictures would look.
- **Section 2 asks what the conditioning carries about the user's next poster.** A
  ridge probe (λ by 5-fold cross-validation on the training users only) maps each
  conditioning to the next poster's EfficientNet-Lite0 features (UniMP's poster
  features); on held-out users the true next poster is ranked among it and 9 posters
  the user never rated, by cosine; ties count against it. ``none`` is a constant
  conditioning: its probe predicts the training targets' mean poster. The two rows
  without a probe are references: the history's mean poster, and UniMP's retrieval
  head (ID, title and poster vectors) over the same 10 candidates.
- "trained, another user's history": the same held-out images, noise and timesteps,
  each conditioned on another held-out user's history. A drop that stays with the
  wrong user is not about the user (a better average condition for this UNet).
- The maps were trained against a random UNet: what they keep of the user is what
  that loss needed; "UniMP state before the map" shows what the state carries.
- Every source trains at learning rate 1e-3, the default of PMG's soft-token config and
  of UniMP's conditioning config. A first run at 1e-2 (the rate of the unit tests) gave
  held-out losses PMG 1.0871, UniMP replace 1.1055, and join 1.0872 → 1.1330, worse
  after training than before: too large a step for a dense map from a 576-wide state.
- Small: one seed, tens of held-out users; the intervals are wide.
- UniMP is the quick recipe (2 of SmolLM2's 30 layers, 40 steps × 4 examples), not
  tuned; PMG's soft-token LLM is the same 2-layer trunk.
"""


if __name__ == "__main__":
    main()
