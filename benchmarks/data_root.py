"""Where the benchmarks find the real data sets, and how results files name paths.

The data sets live outside the repository, in one folder holding ``ml-100k/``,
``ml-latest-small/``, ``ml-latest-small-posters/``, ...: ``--data-root DIR`` names
it, else the environment variable ``TASTEMAKER_DATA``. There is no default, since
every machine keeps the data elsewhere. Results files are committed, so they name a
path as ``$TASTEMAKER_DATA/<name>`` or relative to the repository root, never as
the machine that made them had it.

Benchmarks are scripts, not a package: they import this module as ``data_root``
(the script's folder is on ``sys.path`` when it runs).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

ENV = "TASTEMAKER_DATA"
REPO = Path(__file__).resolve().parents[1]


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--data-root DIR`` flag every benchmark that reads real data takes."""
    parser.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help=f"folder holding the data sets (ml-100k/, ml-latest-small/, ...); default ${ENV}",
    )


def data_root(given: Path | None, *needed: str) -> Path:
    """The data folder (``given``, else ``$TASTEMAKER_DATA``), absolute, holding each of
    the ``needed`` data sets; otherwise one line on stderr and exit code 2."""
    value = given if given is not None else os.environ.get(ENV)
    if not value:
        fail(
            f"set {ENV} to the folder that holds the data sets ({', '.join(needed) or 'ml-100k'}, "
            "...), or pass --data-root DIR"
        )
    root = _absolute(value)
    missing = [name for name in needed if not (root / name).is_dir()]
    if missing:
        fail(
            f"{root} has no {', '.join(missing)}: set {ENV} (or --data-root) to the folder "
            f"that holds {', '.join(needed)}"
        )
    return root


def shown(path: Path | str, root: Path | None) -> str:
    """``path`` as a results file names it: ``$TASTEMAKER_DATA/...`` inside the data
    root, relative inside the repository (commands run from its root), ``~/...`` in the
    home folder, and otherwise only its name after ``…/``: another machine's folder."""
    path = _absolute(path)
    if root is not None and path.is_relative_to(root):
        return "/".join([f"${ENV}", *path.relative_to(root).parts])
    if path.is_relative_to(REPO):
        return str(path.relative_to(REPO)) if path != REPO else "."
    if path.is_relative_to(Path.home()):
        return "/".join(["~", *path.relative_to(Path.home()).parts])
    return f"…/{path.name}"


def command_line(argv: Sequence[str], root: Path | None) -> str:
    """``argv`` as a shell line to run from the repository root: every word that is an
    existing path is :func:`shown`, and ``$TASTEMAKER_DATA`` stays expandable."""
    words = []
    for word in argv:
        text = shown(word, root) if _is_path(word) else word
        if text == f"${ENV}" or text.startswith(f"${ENV}/"):
            words.append(f'"{text}"')
        else:
            words.append(shlex.quote(text))
    return " ".join(words)


def _absolute(path: Path | str) -> Path:
    """Absolute and normalised, links kept: ``.venv/bin/python`` stays itself."""
    return Path(os.path.abspath(Path(path).expanduser()))


def _is_path(word: str) -> bool:
    try:
        return bool(word) and Path(word).expanduser().exists()
    except OSError:  # e.g. a JSON argument longer than a file name may be
        return False


def fail(message: str) -> NoReturn:
    """One line, exit code 2: what the CLI does for an error the user can fix."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)
