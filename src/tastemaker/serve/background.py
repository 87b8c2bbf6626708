"""Start-up loads that must not hold up the server (models, a language model)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tastemaker.errors import TastemakerError

log = logging.getLogger("tastemaker.serve")


def in_background(
    what: str, load: Callable[[], None], failed: Callable[[str], None]
) -> threading.Thread:
    """Run ``load`` in a daemon thread; a :class:`TastemakerError` is logged and handed to
    ``failed`` as one line (``problem; fix``) for the endpoints that need what it loads."""

    def run() -> None:
        try:
            load()
        except TastemakerError as exc:
            failed(f"{exc.problem}; {exc.fix}")
            log.error("cannot load the %s: %s", what, exc)

    thread = threading.Thread(
        target=run, name=f"tastemaker-load-{what.replace(' ', '-')}", daemon=True
    )
    thread.start()
    return thread


__all__ = ["in_background"]
