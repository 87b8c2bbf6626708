"""User-facing errors: each names the problem and how to fix it.

The CLI prints a :class:`TastemakerError` as one line and exits with code 2;
any other exception is a bug in tastemaker and keeps its traceback.
"""

from __future__ import annotations


class TastemakerError(Exception):
    """A problem the user can fix (bad input, bad config, missing file)."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem.rstrip(".")
        self.fix = fix.rstrip(".")
        super().__init__(f"{self.problem}. Fix: {self.fix}.")


class DataError(TastemakerError):
    """Input data is missing, malformed, truncated or empty."""


class ConfigError(TastemakerError):
    """A configuration value, model name or data set name is invalid."""


class OutputError(TastemakerError):
    """An output location cannot be written."""
