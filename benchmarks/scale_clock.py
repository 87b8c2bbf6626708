"""Clocks of ``benchmarks/scale.py``: CPU and wall time, peak RSS per step, and per-epoch
marks from a toolkit's callback, with an optional accuracy probe left off the clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measure:
    cpu_s: float
    wall_s: float
    peak_rss_gb: float
    start_rss_gb: float | None = None  # resident when the step began (its input, libraries)


def reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak is the process's so far
        Path("/proc/self/clear_refs").write_text("5")


def peak_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measured(fn: Callable[[], Any]) -> tuple[Any, Measure]:
    reset_peak()
    start = peak_gb()  # the high-water mark just reset: what is resident now
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, Measure(time.process_time() - cpu, time.perf_counter() - wall, peak_gb(), start)


class EpochClock:
    """Process and wall time at each epoch end, from a toolkit's per-epoch callback.

    With a ``probe`` (e.g. validation NDCG@10 of the model as it stands), the probe runs
    after each mark and its own time is left off the clock, so the marks stay training
    time and the scores give accuracy against cumulative training CPU seconds.
    """

    def __init__(self, probe: Callable[[], float] | None = None) -> None:
        self.marks: list[tuple[float, float]] = []
        self.scores: list[float] = []
        self._probe = probe
        self._start = (time.process_time(), time.perf_counter())
        self._paused = (0.0, 0.0)  # probe time so far, CPU and wall

    def start(self) -> None:
        """Start the cumulative clock (call right before ``fit``)."""
        self._start, self._paused = (time.process_time(), time.perf_counter()), (0.0, 0.0)

    def __call__(self, *_: Any) -> None:
        cpu = time.process_time() - self._paused[0]
        wall = time.perf_counter() - self._paused[1]
        self.marks.append((cpu, wall))
        if self._probe is not None:
            self.scores.append(self._probe())
            self._paused = (time.process_time() - cpu, time.perf_counter() - wall)

    def per_epoch(self) -> tuple[float, float]:
        """Mean (CPU s, wall s) of the epochs after the first."""
        (c0, w0), (c1, w1) = self.marks[0], self.marks[-1]
        n = len(self.marks) - 1
        return (c1 - c0) / n, (w1 - w0) / n

    def curve(self) -> list[dict[str, float]]:
        """Per epoch: training CPU seconds since ``start`` (setup included) and the probe's
        score."""
        return [
            {"epoch": k + 1, "cpu_s": cpu - self._start[0], "ndcg@10": score}
            for k, ((cpu, _), score) in enumerate(zip(self.marks, self.scores, strict=True))
        ]
