"""Writes that never leave half-written output behind.

Everything tastemaker writes goes first to a temporary sibling, which is
renamed into place only once complete: a crash or a bad input leaves either
the old output or none, never a torn one. A folder is replaced only when
everything in it came from tastemaker: nothing a user put in a folder is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tastemaker.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)

OUTPUT_MARKER = ".tastemaker-output.json"
"""The file in every folder tastemaker writes whole: the names of the entries it wrote."""

_HELD: dict[Path, int] = {}  # output locks this process holds, and how deeply nested


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


def _foreign_entries(folder: Path) -> list[str]:
    """Names in an existing ``folder`` that no earlier tastemaker write put there.

    A folder tastemaker wrote carries :data:`OUTPUT_MARKER`, the list of the entries
    it wrote; anything else in it (a user's ``notes.txt``, a folder that was never an
    output) belongs to someone else and must never be deleted by a replacement.
    """
    present = sorted(entry.name for entry in folder.iterdir())
    if not present:
        return []
    try:
        written = set(json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # no marker, or not ours: all of it is foreign
        written = set()
    written.add(OUTPUT_MARKER)
    return [name for name in present if name not in written]


def _check_replaceable(path: Path) -> None:
    """Raise :class:`OutputError` unless ``path`` is absent, empty or a tastemaker output."""
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputError(
            f"{path} exists and is a file, not an output folder",
            "choose another --out folder, or move the file away",
        )
    foreign = _foreign_entries(path)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        shown = ", ".join(foreign[:3]) + more
        raise OutputError(
            f"output folder {path} holds files tastemaker did not write ({shown}); "
            "writing there would replace them",
            "choose a new or empty folder (e.g. --out runs/new-run), or move those files away",
        )


def _temporary(parent: Path, prefix: str, directory: bool) -> Path:
    """A new private temporary file or folder in ``parent``, with the usual umask modes."""
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise OutputError(
            f"cannot write in {parent} ({exc.strerror})",
            "choose a folder you can write to, e.g. --out ./runs/my-run",
        ) from exc
    # mkdtemp/mkstemp create private (0700/0600) paths; give the usual umask modes.
    tmp.chmod((0o777 if directory else 0o666) & ~_UMASK)
    return tmp


def _record(path: Path) -> None:
    """Add ``path`` to its folder's :data:`OUTPUT_MARKER` when that folder is an output.

    A later file in an output folder (``metrics.json`` after a model, ``eval-test/``
    after ``evaluate``) is tastemaker's too, so replacing the folder may remove it.
    """
    marker = path.parent / OUTPUT_MARKER
    if path.name == OUTPUT_MARKER or not marker.is_file():
        return
    written = json.loads(marker.read_text(encoding="utf-8"))
    if path.name in written:
        return
    tmp = marker.with_name(f".{OUTPUT_MARKER}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(sorted([*written, path.name])), encoding="utf-8")
    os.replace(tmp, marker)


def _absolute(path: Path | str) -> Path:
    """Absolute and normalised, so "." and "x/.." get a real name."""
    return Path(os.path.abspath(Path(path).expanduser()))


def _lock_owner(lock: Path) -> int | None:
    """The process ID written in ``lock``, or None when it cannot be read as one."""
    try:
        return int(lock.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _acquire(lock: Path, path: Path) -> None:
    """Create ``lock`` holding this process's ID; a lock left by a dead process is taken."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is None or _running(owner):
                who = f"process {owner}" if owner is not None else "another process"
                raise OutputError(
                    f"{who} is writing {path} (lock file {lock.name})",
                    "wait for it to finish or choose another --out folder; delete the lock "
                    "file only if no tastemaker run is using that folder",
                ) from None
            lock.unlink(missing_ok=True)  # its writer died without cleaning up
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot write in {lock.parent} ({exc.strerror})",
                "choose a folder you can write to, e.g. --out ./runs/my-run",
            ) from exc
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(str(os.getpid()))
        return
    raise OutputError(
        f"could not take the lock {lock} (another process keeps taking it)",
        "wait for the other tastemaker run to finish",
    )


@contextlib.contextmanager
def output_lock(path: Path) -> Iterator[None]:
    """Hold the writer lock of the output ``path`` (``.<name>.lock`` beside it) meanwhile.

    A command takes it for its whole run, so a second run writing the same folder is
    refused at once instead of silently winning last, and so is a folder holding files
    tastemaker did not write (checked here, before any work); nested holds in one
    process (the command, then :func:`atomic_path` saving into it) share the one lock.
    """
    path = _absolute(path)
    lock = path.parent / f".{path.name}.lock"
    if lock not in _HELD:
        _check_replaceable(path)
        ensure_writable_dir(path.parent)
        _acquire(lock, path)
    _HELD[lock] = _HELD.get(lock, 0) + 1
    try:
        yield
    finally:
        _HELD[lock] -= 1
        if not _HELD[lock]:
            del _HELD[lock]
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    With ``directory=True`` the temporary path is an empty folder to fill, and an
    existing folder at ``path`` is replaced only after the new one is complete and
    only if tastemaker wrote everything in it (:data:`OUTPUT_MARKER`): a folder that
    holds anything else is an :class:`OutputError` before any work, and again at the
    end if something else appeared there meanwhile.
    """
    path = _absolute(path)
    with contextlib.ExitStack() as stack:
        if directory:
            stack.enter_context(output_lock(path))
        with _replacing(path, directory) as tmp:
            yield tmp


@contextlib.contextmanager
def _replacing(path: Path, directory: bool) -> Iterator[Path]:
    """:func:`atomic_path`'s work: the temporary sibling, then the swap."""
    parent = ensure_writable_dir(path.parent)
    tmp = _temporary(parent, f".{path.name}.tmp-", directory)
    try:
        yield tmp
        if directory:
            entries = sorted(entry.name for entry in tmp.iterdir())
            (tmp / OUTPUT_MARKER).write_text(json.dumps(entries), encoding="utf-8")
            _check_replaceable(path)
        if directory and path.is_dir():
            old = _temporary(parent, f".{path.name}.old-", directory=True)
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        _record(path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder, half-filled
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
