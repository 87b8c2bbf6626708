"""ARCHITECTURE.md's rules that a linter does not check, checked on the source tree itself.

(Import layers are checked by import-linter, contracts in pyproject.toml, run by `make lint`.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tastemaker"
MAX_LINES = 400
SOURCES = sorted(SRC.rglob("*.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    """``_helper`` is private; dunders such as ``__version__`` are public by convention."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_scan_sees_the_package() -> None:
    assert len(SOURCES) > 50
    assert _module(SRC / "models" / "base.py") == "tastemaker.models.base"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_is_imported_from_another_module(path: Path) -> None:
    here = _module(path)
    private = [
        f"{node.module}.{alias.name} (line {node.lineno})"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tastemaker")
        for alias in node.names
        if _private(alias.name) and node.module != here
    ]
    assert not private, f"{here} imports private names: {', '.join(private)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_runtime_checks_raise_typed_errors_not_assert(path: Path) -> None:
    """``python -O`` removes asserts: a check that guards users must raise."""
    lines = [node.lineno for node in ast.walk(_tree(path)) if isinstance(node, ast.Assert)]
    assert not lines, f"{path.relative_to(ROOT)} has assert statements at lines {lines}"


def test_long_files_state_their_reason_in_architecture_md() -> None:
    """A file over ~400 lines is named, with its reason, in ARCHITECTURE.md ("Long files")."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Long files", 1)[1] if "## Long files" in text else ""
    long = {
        str(p.relative_to(SRC.parent)): n
        for p in SOURCES
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    unexplained = {f: n for f, n in long.items() if not re.search(rf"`{re.escape(f)}`", section)}
    assert not unexplained, f"files over {MAX_LINES} lines with no stated reason: {unexplained}"
