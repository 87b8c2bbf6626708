"""User-facing errors: each names the problem and how to fix it.

The CLI prints a :class:`TastemakerError` as one line and exits with code 2;
any other exception is a bug in tastemaker and keeps its traceback. A message may
quote a user's file, so it is made printable: control bytes and line breaks are
escaped, never sent raw to the terminal.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\x00``, ``\\n``, ``\\ufeff``),
    so a message quoting a binary or garbled file stays one readable line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def excerpt(text: str, limit: int = 60) -> str:
    """A printable quote of at most ``limit`` characters of file content, cut with "…"."""
    shown = printable(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class TastemakerError(Exception):
    """A problem the user can fix (bad input, bad config, missing file)."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = printable(problem).rstrip(".")
        self.fix = printable(fix).rstrip(".")
        super().__init__(f"{self.problem}. Fix: {self.fix}.")


class DataError(TastemakerError):
    """Input data is missing, malformed, truncated or empty."""


class ConfigError(TastemakerError):
    """A configuration value, model name or data set name is invalid."""


class OutputError(TastemakerError):
    """An output location cannot be written."""
