"""Fetch and unpack data set archives: checksummed, atomic, never interactive.

A download lands under a temporary name and is renamed into place only after
its length and checksum check out, so an interrupted or corrupted transfer
never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tastemaker.atomic import atomic_path
from tastemaker.errors import DataError

CHUNK = 1 << 16
TIMEOUT_S = 60
USER_AGENT = "tastemaker (https://github.com/tastemaker)"


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


def download(
    url: str, dest: Path, *, md5: str | None = None, sha256: str | None = None
) -> Path:
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
    fix = "check the network connection and run again, or download the file by hand"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic_path(dest) as tmp:
        try:
            with (
                urllib.request.urlopen(request, timeout=TIMEOUT_S) as response,
                open(tmp, "wb") as out,
            ):
                header = response.headers.get("Content-Length")
                total = int(header) if header and header.isdigit() else None
                received = 0
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=None
                ) as bar:
                    while block := response.read(CHUNK):
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
        except urllib.error.HTTPError as exc:
            raise DataError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}", fix) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise DataError(f"downloading {url} failed ({reason})", fix) from exc
        if total is not None and received != total:
            raise DataError(
                f"downloading {url} stopped after {received} of {total} bytes", fix
            )
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
