"""What long commands show while they run, and how they end on Ctrl-C or SIGTERM.

The library logs its progress (one line per epoch, per trial) and prints nothing
itself; these context managers make a command show those lines on stderr whether or
not it is a terminal, and turn SIGTERM into the KeyboardInterrupt that Ctrl-C raises,
so both end through the same path (the work so far saved, exit code 128 + signal).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from tastemaker.errors import ConfigError

_EPOCH_LOGGER = "tastemaker.models.training"  # the per-epoch lines of iterative models


@contextmanager
def progress_lines(quiet: bool, verbose: bool, *, epochs: bool = True) -> Iterator[None]:
    """Show tastemaker's log lines on stderr while the command runs: INFO (progress),
    DEBUG with ``verbose``, warnings only with ``quiet``; ``epochs=False`` leaves the
    per-epoch lines out unless ``verbose`` (a search shows one line per trial)."""
    if quiet and verbose:
        raise ConfigError("--quiet and --verbose contradict each other", "pass one of them")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package, per_epoch = logging.getLogger("tastemaker"), logging.getLogger(_EPOCH_LOGGER)
    levels = package.level, per_epoch.level
    package.setLevel(level)
    package.addHandler(handler)
    if not (epochs or verbose):
        per_epoch.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(levels[0])
        per_epoch.setLevel(levels[1])


@dataclass
class Interruption:
    """The signal that ended the command (SIGINT until one arrives)."""

    signum: int = signal.SIGINT

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM: what shells report for a process they killed."""
        return 128 + self.signum


@contextmanager
def interrupt_on_signals() -> Iterator[Interruption]:
    """While the command runs, SIGINT and SIGTERM raise KeyboardInterrupt (recording which
    arrived); the previous handlers come back afterwards. Only the main thread can."""
    caught = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        caught.signum = signum
        raise KeyboardInterrupt

    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, interrupt) for sig in wanted}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
