"""The result files of ``multimodal.py``: JSON, the bar chart and the Markdown page.

Kept apart from the runner so that ``multimodal.py --render`` and the tests can
rewrite the page from a saved JSON without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tastemaker.atomic import write_bytes, write_text
from tastemaker.config import EvalConfig
from tastemaker.evaluation import html
from tastemaker.evaluation.cold_start import GROUPS, SEPARATOR

NAME = "multimodal"
ALIGNMENT = Path(__file__).resolve().parent / "results" / "alignment.md"


def read_json(path: Path) -> dict[str, Any] | None:
    """A saved result, or None when it is not written yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_results(result: dict[str, Any], out: Path, with_json: bool = True) -> None:
    """``multimodal.json`` (with ``with_json``), ``.png`` and ``.md`` under ``out``."""
    from mmrec_bm3_report import CURVES, bm3_curves, bm3_section, read_peers  # beside it

    if with_json:
        write_text(out / f"{NAME}.json", json.dumps(result, indent=2) + "\n")
    columns = metric_columns(EvalConfig.model_validate(result["experiment"]["eval"]))
    done = [r for r in result["runs"] if "report" in r]
    if done:
        write_bytes(out / f"{NAME}.png", chart(done, columns, result["protocol"]))
    peers = read_peers()
    curves = bm3_curves(done, peers)
    if curves is not None:
        write_bytes(out / CURVES, curves)
    split_hash = result["protocol"]["split"]["content_hash"]
    section = bm3_section(done, peers, split_hash, curves is not None)
    markdown = to_markdown(result, columns, chart=bool(done), extra=section)
    write_text(out / f"{NAME}.md", markdown)
    print(markdown)


def chart(records: list[dict[str, Any]], columns: list[str], proto: dict[str, Any]) -> bytes:
    """One panel per column, one horizontal bar per run; chance as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["run"] for r in records][::-1]
    fig, axes = plt.subplots(
        1, len(columns), figsize=(3 * len(columns), 1 + 0.3 * len(names)), sharey=True
    )
    for ax, column in zip(list(getattr(axes, "flat", [axes])), columns, strict=True):
        values = [r["report"]["metrics"].get(column, 0.0) for r in records][::-1]
        group, metric = column.split(SEPARATOR)
        ax.barh(names, values, color="tab:blue" if group == "warm" else "tab:orange")
        chance = proto["chance_recall"][group].get(metric)
        if chance is not None:
            ax.axvline(chance, color="k", linestyle="--", linewidth=1, label="chance")
            ax.legend(frameon=False, loc="lower right")
        ax.set_title(column)
        ax.grid(axis="x", alpha=0.3)
    return html.png_bytes(fig)


def metric_columns(cfg: EvalConfig) -> list[str]:
    """The table's metric columns: each group (warm, cold) × cut-off × metric."""
    return [f"{g}{SEPARATOR}{m}@{k}" for g in GROUPS for k in cfg.ks for m in cfg.metrics]


def to_markdown(
    result: dict[str, Any], columns: list[str], chart: bool, extra: list[str] | None = None
) -> str:
    """The results page: protocol, one row per run (best per column in bold), notes,
    then ``extra`` lines and the alignment results."""
    proto, machine = result["protocol"], result["machine"]
    done = [r for r in result["runs"] if "report" in r]
    best = {
        c: max((r["report"]["metrics"].get(c, float("-inf")) for r in done), default=0)
        for c in columns
    }

    def cell(record: dict[str, Any], column: str) -> str:
        value = record["report"]["metrics"].get(column)
        if value is None:
            return "–"
        return f"**{value:.4f}**" if value == best[column] else f"{value:.4f}"

    split, counts = proto["split"], proto["counts"]
    test = proto["test_interactions"]
    chance = ", ".join(
        f"{g} {k} {v:.4f}"
        for g, values in proto["chance_recall"].items()
        for k, v in values.items()
    )
    header = ["run", "modalities", *columns, "train s", "epochs (best)"]
    rows = [
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for r in done:
        modalities = "+".join(r["modalities"]) if r["modalities"] else "ID only"
        if r.get("params_added"):
            modalities += " (" + ", ".join(f"{k}={v}" for k, v in r["params_added"].items()) + ")"
        if r.get("features"):
            modalities += " (" + ", ".join(f"{k} `{v}`" for k, v in r["features"].items()) + ")"
        epochs = f"{r['epochs']} ({r['best_epoch']})" if r["epochs"] else "–"
        cells = [r["run"], modalities, *(cell(r, c) for c in columns)]
        rows.append("| " + " | ".join([*cells, f"{r['train_seconds']:.0f}", epochs]) + " |")
    skipped = [f"- `{r['run']}`: {r['skipped']}." for r in result["runs"] if "skipped" in r]
    lines = [
        "# Multimodal recommenders: warm and cold-start accuracy",
        "",
        f"{result['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, torch "
        f"{machine['torch']} ({machine['torch_threads']} thread), python {machine['python']}; "
        "1-minute load average {:.2f} at start, {:.2f} at end of the last invocation "
        "(shared cores: seconds are noisy; each run's date and load are in the JSON). "
        "Config: `{}`; written by `benchmarks/multimodal.py`.".format(
            *machine["load_average_1min"], result["config"]
        ),
        "",
        "## Protocol",
        "",
        f"Split `{split['kind']}` with params {json.dumps(split['params'])}, seed "
        f"{split['seed']}, data hash `{split['content_hash'][:12]}`: {counts['users']} users, "
        f"train/valid/test {counts['train']}/{counts['valid']}/{counts['test']} interactions. "
        "A seeded share of the items is cold: all their interactions go to valid or test "
        "(by item), so no model sees them in training; the other items' interactions are "
        "split per user at random.",
        "",
        f"- **warm**: the {test['warm']} test interactions on the {proto['warm_items']} items "
        "with training interactions, each user's ranked among those items (train and valid "
        "masked).",
        f"- **cold**: the {test['cold']} test interactions on the {proto['cold_items']} test "
        "items without any training interaction, ranked among those items only (CLCRec's "
        "protocol). ID-only models can do no better than chance here. "
        f"{proto.get('cold_items_with_image', 0)} of them have a poster: image-only runs "
        "cannot score the others.",
        f"- chance (a random ranking): {chance}.",
        "- Sequential models (`sasrec`, `mm_sasrec`) train on each user's training items "
        "in time order; at test time they read the user's train + valid history (time "
        "order) and score the same test items as every other model. The per-user split is "
        "random, not temporal, so a test item is a held-out item, not always the next one.",
        "- Item text is rendered from title, genres and user tags unless a run names its own "
        "template. Tags are written by people who watched the movie, so they carry some "
        "behavioural signal into the content (compare a run without them).",
        "- Every run early-stops on validation NDCG@10 (all items ranked, train masked) "
        "unless its row names another `early_stopping_metric`, and is scored on test once; "
        "`train s` includes those validations.",
        "",
        "## Results (test)",
        "",
        *rows,
        "",
        *([f"![warm and cold test metrics]({NAME}.png)", ""] if chart else []),
        *(["Not in the table:", "", *skipped, ""] if skipped else []),
        *(extra or []),
    ]
    if ALIGNMENT.is_file():  # its title becomes this section's heading
        body = ALIGNMENT.read_text(encoding="utf-8").strip().splitlines()
        demoted = ["#" + line if line.startswith("#") else line for line in body]
        lines += [*demoted, "", "*(Included from [`alignment.md`](alignment.md).)*", ""]
    else:
        lines += ["## Cross-modal alignment", "", "`alignment.md` is not written yet.", ""]
    return "\n".join(lines)
