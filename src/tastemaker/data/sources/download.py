"""Fetch and unpack data set archives: checksummed, atomic, never interactive.

A download lands under a temporary name and is renamed into place only after
its length and checksum check out, so an interrupted or corrupted transfer
never leaves a file that a later run would trust. Transfers go through httpx;
what is likely to pass on a second try (a refused or dropped connection, a cut
body, HTTP 429 or 5xx) is retried with exponential back-off, what is not (404,
a checksum mismatch) fails at once.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from tastemaker.atomic import atomic_path
from tastemaker.errors import DataError

if TYPE_CHECKING:
    import httpx

CHUNK = 1 << 16
TIMEOUT_S = 60
RETRIES = 3  # further attempts after the first, for transient failures only
BACKOFF_S = 1.0  # first wait; doubled before each further attempt
USER_AGENT = "tastemaker (https://github.com/tastemaker)"
_FIX = "check the network connection and run again, or download the file by hand"
T = TypeVar("T")


class _Transient(Exception):
    """A failure worth another attempt; carries the message used once attempts run out."""


def _client() -> httpx.Client:
    import httpx

    return httpx.Client(
        headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT_S, follow_redirects=True
    )


def _with_retries(url: str, attempt: Callable[[httpx.Client], T]) -> T:
    """``attempt(client)``, repeated after transient failures; any failure is one DataError."""
    import httpx

    message = ""
    with _client() as client:
        for n in range(RETRIES + 1):
            if n:
                time.sleep(BACKOFF_S * 2 ** (n - 1))
            try:
                return attempt(client)
            except _Transient as exc:
                message = str(exc)
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                message = f"downloading {url} failed: HTTP {code} {exc.response.reason_phrase}"
                if code != 429 and code < 500:
                    break
            except httpx.TransportError as exc:
                message = f"downloading {url} failed ({type(exc).__name__}: {exc})"
    raise DataError(message, _FIX)


def _stopped(url: str, received: int, total: int | None) -> str:
    return f"downloading {url} stopped after {received} of {total or 'unknown'} bytes"


def fetch_text(url: str, limit: int = 4096) -> str:
    """The first ``limit`` bytes of a small text resource (a published checksum file)."""

    def attempt(client: httpx.Client) -> str:
        response = client.get(url)
        response.raise_for_status()
        return response.content[:limit].decode("ascii", errors="replace")

    return _with_retries(url, attempt)


def _digests(path: Path) -> dict[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _check(path: Path, url: str, expected: dict[str, str | None]) -> None:
    actual = _digests(path)
    for name, want in expected.items():
        if want is not None and actual[name] != want.lower():
            raise DataError(
                f"{path.name} from {url} has {name} {actual[name]}, expected {want} "
                "(corrupted in transit or changed upstream)",
                "run again to retry; if it persists, download the file by hand and pass "
                "its unzipped folder as the path",
            )


def download(url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar and verify its checksum.

    An existing ``dest`` that matches the checksum (or any existing one when
    none is given) is reused: atomic writes mean it is complete.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    expected = {"md5": md5, "sha256": sha256}
    if dest.is_file():
        try:
            _check(dest, url, expected)
            return dest
        except DataError:
            pass  # stale or foreign file: fetch a fresh copy over it
    with atomic_path(dest) as tmp:

        def attempt(client: httpx.Client) -> None:
            import httpx

            received, total = 0, None
            with client.stream("GET", url) as response, open(tmp, "wb") as out:
                response.raise_for_status()
                header = response.headers.get("Content-Length")
                total = int(header) if header and header.isdigit() else None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=None
                ) as bar:
                    try:
                        for block in response.iter_raw(CHUNK):
                            out.write(block)
                            received += len(block)
                            bar.update(len(block))
                    except httpx.RemoteProtocolError as exc:  # the server cut the body short
                        raise _Transient(_stopped(url, received, total)) from exc
            if total is not None and received != total:
                raise _Transient(_stopped(url, received, total))

        _with_retries(url, attempt)
        _check(tmp, url, expected)
    return dest


def extract_zip(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into the folder ``into``, which appears only once complete."""
    archive, into = Path(archive), Path(into)
    fix = f"delete {archive} and download it again"
    try:
        with zipfile.ZipFile(archive) as zf, atomic_path(into, directory=True) as tmp:
            for member in zf.infolist():
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise DataError(
                        f"{archive} holds an unsafe path '{member.filename}' (outside the folder)",
                        "use the archive from the data set's official site",
                    )
                target = tmp.joinpath(*name.parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except FileNotFoundError as exc:
        raise DataError(f"{archive} is missing", "download it first") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{archive} is not a valid zip archive (truncated or corrupt)", fix
        ) from exc
    return into
