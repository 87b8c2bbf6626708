"""How long the ``tastemaker`` command takes to start, and what it imports to do so.

Run from the repository root with ``.venv/bin/python benchmarks/cli_startup.py``
(``--repeats N``; ``--against REF`` also times the CLI of a git revision, e.g. the
one before a change, from ``git archive REF src``). Commands that do not train
(``--help`` of the app and of its commands, ``tastemaker datasets``) run as
subprocesses of the installed ``tastemaker`` script, round-robin with peers in
the same run: ``python -c pass`` (the interpreter's floor) and ``python -c "import
torch"`` (the floor every command paid while the CLI imported the models at
start). Each round starts at another command, so a change in the machine's load
falls on all of them alike; medians of wall and CPU seconds. One more run per
command under ``-X importtime`` records which heavy libraries it imported and
its slowest imports. Results go to ``benchmarks/results/cli_startup.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from tastemaker.atomic import write_text
from tastemaker.reporting.markdown import markdown_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TARGET_S = 1.5  # the bound on an idle machine
REPEATS = 7
# The libraries a command that does not train should not need (polars: ideally not).
WATCHED = ("torch", "transformers", "diffusers", "optuna", "matplotlib", "polars", "numpy")
COMMANDS = (("--help",), ("train", "--help"), ("generate", "--help"), ("datasets",))
PEERS = {"python -c pass": "pass", 'python -c "import torch"': "import torch"}


@dataclass
class Case:
    """One command line to time, and what it measured."""

    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run_once(self) -> None:
        """Wall seconds, and CPU seconds (user + system) of the child from its rusage."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(self.argv, env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    def imports(self) -> dict[str, Any]:
        """The watched libraries one run under ``-X importtime`` imported; its slowest
        top-level imports (cumulative ms, which overlap for nested imports)."""
        done = subprocess.run(
            [self.argv[0], "-X", "importtime", *self.argv[1:]],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        cumulative: dict[str, float] = {}
        for line in done.stderr.splitlines():
            fields = line.removeprefix("import time:").split("|")
            if len(fields) == 3 and fields[1].strip().isdigit():
                name = fields[2].strip()
                if "." not in name:
                    cumulative[name] = int(fields[1]) / 1000
        slowest = sorted(cumulative.items(), key=lambda kv: -kv[1])[:5]
        return {
            "watched": [name for name in WATCHED if name in cumulative],
            "slowest_ms": {name: round(ms, 1) for name, ms in slowest},
            "n_top_level": len(cumulative),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "command": self.label,
            "wall_s_median": statistics.median(self.wall),
            "wall_s_min": min(self.wall),
            "cpu_s_median": statistics.median(self.cpu),
            "wall_s": self.wall,
            "cpu_s": self.cpu,
        }


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True).stdout


def revision_env(ref: str, folder: Path) -> tuple[str, dict[str, str]]:
    """``ref``'s short commit id (a branch name moves) and an environment whose
    ``tastemaker`` package is its ``src/`` (``PYTHONPATH`` comes before the editable
    install's path)."""
    commit = git("rev-parse", "--short", ref).decode().strip()
    with tarfile.open(fileobj=BytesIO(git("archive", commit, "src"))) as tar:
        tar.extractall(folder, filter="data")
    return commit, {**os.environ, "PYTHONPATH": str(folder / "src")}


def cases(script: Path, against: tuple[str, dict[str, str]] | None) -> list[Case]:
    """The commands (of this tree, then of ``against``'s revision) and the peers."""
    todo = [Case(f"tastemaker {' '.join(a)}", [sys.executable, str(script), *a]) for a in COMMANDS]
    if against is not None:
        ref, env = against
        todo += [
            Case(f"tastemaker {' '.join(a)} ({ref})", [sys.executable, str(script), *a], env)
            for a in COMMANDS
        ]
    return todo + [Case(label, [sys.executable, "-c", code]) for label, code in PEERS.items()]


def measure(todo: Sequence[Case], repeats: int) -> None:
    """Every case once per round, each round starting one case later (round-robin)."""
    for case in todo:  # warm the file cache; not counted
        case.run_once()
        case.wall.clear()
        case.cpu.clear()
    for r in range(repeats):
        for case in (*todo[r % len(todo) :], *todo[: r % len(todo)]):
            case.run_once()


def table_row(result: dict[str, Any], floor_s: float) -> list[str]:
    """A command's times; for tastemaker commands also its heavy imports and the target."""
    row = [
        result["command"],
        f"{result['wall_s_median']:.2f}",
        f"{result['wall_s_min']:.2f}",
        f"{result['cpu_s_median']:.2f}",
        f"{result['wall_s_median'] - floor_s:+.2f}",
    ]
    if "imports" not in result:  # a peer
        return [*row, "", ""]
    met = "yes" if result["wall_s_median"] < TARGET_S else "**no**"
    return [*row, ", ".join(result["imports"]["watched"]) or "none", met]


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    floor = next(r for r in report["results"] if r["command"] == "python -c pass")
    rows = [table_row(r, floor["wall_s_median"]) for r in report["results"]]
    slowest = [
        f"- `{r['command']}`: "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in r["imports"]["slowest_ms"].items())
        for r in report["results"]
        if "imports" in r
    ]
    header = ["command", "wall s (median)", "wall s (min)", "CPU s (median)", "vs `pass`"]
    return "\n".join(
        [
            "# CLI startup: `tastemaker` commands that do not train",
            "",
            f"{report['date']}; {machine['platform']}, {machine['cpu_count']} CPUs, "
            f"python {machine['python']}; 1-minute load average {machine['load_average_start']:.2f}"
            f" at start, {machine['load_average_end']:.2f} at the end.",
            "",
            f"Subprocesses of `.venv/bin/tastemaker`, round-robin with the peers, median of "
            f"{report['repeats']} rounds (after one warm-up run each). Target: under "
            f"{TARGET_S} s of wall time on an idle machine; on a loaded one, compare with the "
            "peers of the same run. `vs pass`: wall time above the bare interpreter's. "
            "Heavy libraries: which of " + ", ".join(WATCHED) + " one run under "
            "`-X importtime` imported.",
            "",
            markdown_table(
                [*header, "heavy libraries imported", "under target"],
                rows,
                align=["left", "right", "right", "right", "right", "left", "left"],
            ),
            "",
            "Slowest top-level imports (cumulative ms under `-X importtime`):",
            "",
            *slowest,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="rounds (default %(default)s)")
    parser.add_argument("--against", metavar="REF", help="also time git revision REF's CLI")
    args = parser.parse_args()
    script = Path(sys.executable).parent / "tastemaker"
    if not script.is_file():
        sys.exit(f"error: no {script}; install the package (make install) first")
    load_start = os.getloadavg()[0]
    scratch: AbstractContextManager[str | None] = (
        tempfile.TemporaryDirectory(prefix="cli-startup-") if args.against else nullcontext()
    )
    with scratch as folder:
        against = revision_env(args.against, Path(folder)) if folder else None
        todo = cases(script, against)
        measure(todo, args.repeats)
        results = [case.summary() for case in todo]
        for case, result in zip(todo, results, strict=True):
            if case.argv[1] == str(script):
                result["imports"] = case.imports()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            # startup is mostly file reads and bytecode loading: other work slows it
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
        },
        "target_s": TARGET_S,
        "repeats": args.repeats,
        "results": results,
    }
    write_text(RESULTS / "cli_startup.json", json.dumps(report, indent=2) + "\n")
    write_text(RESULTS / "cli_startup.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
