"""What the CLI imports to start: ``--help`` and commands that do not train must not load
torch and the other heavy libraries (the issue "First contact"; the time it takes is
measured by benchmarks/cli_startup.py, not here). Each check runs in a fresh interpreter,
since this test session has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import tastemaker
from tastemaker.cli.demo import DEFAULT_MODELS
from tastemaker.demo import DEMO_MODELS

HEAVY = ("torch", "transformers", "diffusers", "optuna", "matplotlib")

# Invokes the app in-process (as the `tastemaker` script does) with each argument list,
# then prints the heavy modules that were imported. The command list is read from the
# app, so a command added later is covered.
CHILD = """
import contextlib, io, json, sys
import typer
from tastemaker.cli.app import app

group = typer.main.get_command(app)


def paths(command, prefix):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, [*prefix, name])


runs = [[*p, "--help"] for p in paths(group, [])] if sys.argv[1] == "help" else [sys.argv[1:]]
for args in runs:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            group.main(args, prog_name="tastemaker", standalone_mode=False)
        except SystemExit:
            pass
print(json.dumps({"runs": len(runs), "modules": sorted(sys.modules)}))
"""


def child_modules(*args: str) -> tuple[int, set[str]]:
    """How many invocations ran and the top-level modules a fresh interpreter imported."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    return report["runs"], {name.partition(".")[0] for name in report["modules"]}


def test_help_of_every_command_imports_no_heavy_library() -> None:
    runs, modules = child_modules("help")
    assert runs > 10  # the root, every group and every command
    assert sorted(modules.intersection(HEAVY)) == []


def test_datasets_imports_no_heavy_library() -> None:
    _, modules = child_modules("datasets")
    assert sorted(modules.intersection(HEAVY)) == []


def test_package_import_is_light_and_public_names_resolve() -> None:
    code = "import sys, tastemaker; print('polars' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    assert set(tastemaker.__all__) <= set(dir(tastemaker))
    assert all(getattr(tastemaker, name) for name in tastemaker.__all__)


def test_demo_default_models_match_the_demo() -> None:
    assert ",".join(DEMO_MODELS) == DEFAULT_MODELS
