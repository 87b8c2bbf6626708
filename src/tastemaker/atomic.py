"""Writes that never leave half-written output behind.

Everything tastemaker writes goes first to a temporary sibling, which is
renamed into place only once complete: a crash or a bad input leaves either
the old output or none, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tastemaker.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise a clear :class:`OutputError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output folder {path} ({exc.strerror})",
            "choose a folder you can write to, e.g. --out ./runs/my-run",
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {path} is not writable",
            "choose a folder you can write to, or fix its permissions",
        )
    return path


@contextlib.contextmanager
def atomic_path(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    With ``directory=True`` the temporary path is an empty folder to fill.
    An existing ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    parent = ensure_writable_dir(path.parent)
    prefix = f".{path.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=parent)
        os.close(fd)
        tmp = Path(name)
    # mkdtemp/mkstemp create private (0700/0600) paths; give the usual umask modes.
    tmp.chmod((0o777 if directory else 0o666) & ~_UMASK)
    try:
        yield tmp
        if directory and path.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> Path:
    """Atomically write a UTF-8 text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically write a binary file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
