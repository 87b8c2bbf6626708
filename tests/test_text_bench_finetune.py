"""The fine-tuning sections of ``benchmarks/personalized_text.py``: the peer settings flag
and the copying share that says whether a tag-generation win copies the user's tags."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tastemaker.text.profiles import ProfileEntry
from tests.test_llm import tiny_lm  # noqa: F401 (the saved tiny Llama fixture)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench_finetune(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``benchmarks/personalized_text_finetune.py`` (a script beside the others)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import personalized_text_finetune

    return personalized_text_finetune


def test_peer_settings_parse_k_and_pairs_and_refuse_anything_else(bench_finetune: Any) -> None:
    assert bench_finetune.peer_settings("1:64,0:128") == [(1, 64), (0, 128)]
    for bad in ("1-64", "1:64:2", "-1:64", "1:0", "a:b", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="K:PAIRS"):
            bench_finetune.peer_settings(bad)
    parser = argparse.ArgumentParser()
    bench_finetune.add_finetune_arguments(parser)
    args = parser.parse_args([])
    assert (args.finetune_k, args.finetune_limit) == bench_finetune.PLANNED
    assert args.finetune_peer is None


def test_copy_note_counts_outputs_equal_to_an_earlier_tag_of_that_user(
    bench_finetune: Any,
) -> None:
    def example(*outputs: str) -> Any:
        return SimpleNamespace(profile=[ProfileEntry("i", 0, "M", o) for o in outputs])

    examples = [example("funny, space"), example("dark"), example()]
    copying = SimpleNamespace(examples=examples, predictions=["Space", "dark", "dark"])
    writing = SimpleNamespace(examples=examples, predictions=["witty", None, "funny"])
    note = bench_finetune.copy_note({"tuned": copying, "zero": writing})
    # "dark" for the third user copies nothing: that user has no earlier tag
    assert note.endswith(
        "tuned 0.667 (2/3; a shared word: 2/3); zero 0.000 (0/3; a shared word: 0/3)"
    )
    near = SimpleNamespace(examples=examples[:1], predictions=["space opera"])
    assert bench_finetune.copy_note({"near": near}).endswith("near 0.000 (0/1; a shared word: 1/1)")


class StubBench:
    """What the fine-tuning section uses of ``personalized_text.Bench``: the toy data, a tiny
    LLM, the flags, runs, and the partial saves after every row."""

    def __init__(self, llm: Any, work: Path) -> None:
        from tastemaker.llm.memo import MemoLLM

        self.llm = MemoLLM(llm)
        self.args = argparse.Namespace(
            seed=0, finetune_k=1, finetune_limit=4, finetune_epochs=1, max_length=128,
            work=str(work), finetune_peer=[(0, 4)],
        )  # fmt: skip
        self.saved: list[list[str]] = []

    def task(self, name: str) -> Any:
        from tastemaker.text.tasks import build_task
        from tests.test_text_core import toy_data

        return build_task(name, toy_data())

    def run(self, task: Any, label: str, *, llm: Any = None, **kw: Any) -> tuple[Any, float]:
        from tastemaker.text.runner import run_task

        return run_task(task, llm or self.llm, seed=0, **kw), 0.0

    def add(self, section: dict[str, Any], row: dict[str, Any], *pairs: Any) -> None:
        section["rows"].append(row)
        section["paired"].extend(pairs)
        self.saved.append([r["method"] for r in section["rows"]])


def test_finetune_section_compares_zero_shot_peer_and_baseline_and_reuses_adapters(
    bench_finetune: Any,
    tiny_lm: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import personalized_text
    from tastemaker.llm import create_llm

    bench = StubBench(create_llm(model=str(tiny_lm), max_new_tokens=8), tmp_path)
    section = bench_finetune.finetuned(bench, "tag-generation", "rouge1", personalized_text.row)
    labels = ["llm bm25 k=1 zero-shot", "llm bm25 k=1 fine-tuned (4 pairs)",
              "user-most-frequent", "llm k=0 fine-tuned (4 pairs)"]  # fmt: skip
    assert [r["method"] for r in section["rows"]] == labels
    assert bench.saved == [labels[: n + 1] for n in range(4)]  # saved after every row
    assert [p["pair"] for p in section["paired"]] == [
        "fine-tuned − zero-shot", f"{labels[1]} − user-most-frequent", f"{labels[1]} − {labels[3]}"
    ]  # fmt: skip
    assert [p.get("headline", False) for p in section["paired"]] == [True, False, False]
    assert section["notes"][0] == (
        "command: python benchmarks/personalized_text.py --data-root $TASTEMAKER_DATA --tasks "
        "tag-generation-finetune --finetune-k 1 --finetune-limit 4 --finetune-epochs 1 "
        "--max-length 128 --finetune-peer 0:4"
    )
    assert "not fixed in advance" in section["notes"][1]  # (1, 4) is not the planned setting
    # the user's most frequent tag is always one of their earlier tags (both users have some)
    assert section["notes"][-1].startswith("outputs equal to one of the user's earlier tags")
    assert "; user-most-frequent 1.000 (2/2; a shared word: 2/2); " in section["notes"][-1]
    checkpoints = sorted(tmp_path.glob("*/checkpoint/state.json"))
    assert [c.parent.parent.name for c in checkpoints] == [
        "finetune-tag-generation-k0-4pairs", "finetune-tag-generation-k1-4pairs"
    ]  # fmt: skip
    stamps = [c.stat().st_mtime_ns for c in checkpoints]
    again = bench_finetune.finetuned(bench, "tag-generation", "rouge1", personalized_text.row)
    assert [c.stat().st_mtime_ns for c in checkpoints] == stamps  # finished: reused, not retrained
    assert again["rows"] == section["rows"] and again["notes"] == section["notes"]
