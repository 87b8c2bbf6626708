"""Known data sets by name: where to get them, how to load them, what is cached.

``load_dataset("ml-1m")`` looks for a local copy in the cache
(``$TASTEMAKER_HOME/datasets``, default ``~/.cache/tastemaker/datasets``),
downloads and unpacks the archive when there is none, and loads it. The name
may also be a folder of MovieLens or RecBole files, whose layout is detected.
``ml-latest-small`` needs no download: a copy is embedded in the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tastemaker.config import DataConfig
from tastemaker.data.dataset import Dataset
from tastemaker.data.sources._common import reject_separator
from tastemaker.data.sources.amazon import load_amazon_2018, load_amazon_2023
from tastemaker.data.sources.download import download, extract_zip, fetch_text
from tastemaker.data.sources.embedded import BUNDLE_NAME, load_bundled
from tastemaker.data.sources.movielens import LAYOUTS, load_movielens, movielens_layout
from tastemaker.data.sources.recbole import find_inter_file, load_atomic
from tastemaker.data.sources.tabular import load_configured_table
from tastemaker.errors import ConfigError, DataError

#: ``loader(folder, posters, *, sep=None, drop_invalid=False)``, as :func:`load_folder`.
Loader = Callable[..., Dataset]
GROUPLENS = "https://files.grouplens.org/datasets/movielens"
EMBEDDED = "embedded in tastemaker"
DOWNLOAD = "download on first use"


def detect_layout(folder: Path) -> str | None:
    """``"movielens-csv"``, ``"movielens-100k"``, ``"movielens-1m"``, ``"recbole"`` or None."""
    layout = movielens_layout(folder)
    if layout is not None:
        return f"movielens-{layout}"
    return "recbole" if find_inter_file(folder) is not None else None


def load_folder(
    folder: Path,
    posters: Path | None = None,
    *,
    sep: str | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Load a folder of MovieLens (any layout) or RecBole atomic files, detected by name.

    ``sep``: the delimiter of MovieLens CSV files; ``drop_invalid``: drop NaN or infinite
    ratings and timestamps (recorded in the manifest) instead of refusing them.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist", "pass an existing folder")
    layout = detect_layout(folder)
    if layout is None:
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        expected = "; ".join(" + ".join(f) for f in LAYOUTS.values())
        raise DataError(
            f"{folder} holds no known data set files (found: {present})",
            f"point to a folder with MovieLens files ({expected}) or a RecBole <name>.inter; "
            "for other tables use load_table with a column mapping",
        )
    if layout == "recbole":
        reject_separator(sep, "a RecBole folder")
        return load_atomic(folder, posters, drop_invalid=drop_invalid)
    return load_movielens(folder, posters, sep=sep, drop_invalid=drop_invalid)


def _amazon_loader(load: Callable[..., Dataset], pattern: str) -> Loader:
    """Loader for a folder (or review file) of one Amazon category; ``meta_*`` is the metadata."""

    def loader(
        path: Path, posters: Path | None, *, sep: str | None = None, drop_invalid: bool = False
    ) -> Dataset:
        reject_separator(sep, "Amazon Reviews (JSON lines)")
        reviews = path
        if path.is_dir():
            found = sorted(p for p in path.glob(pattern) if not p.name.startswith("meta_"))
            if len(found) != 1:
                raise DataError(
                    f"{path} must hold exactly one review file matching {pattern} "
                    f"(found: {', '.join(p.name for p in found) or 'none'})",
                    "keep one category per folder, or pass the review file itself",
                )
            reviews = found[0]
        # meta_<category>.json[l][.gz]; 5-core reviews (Books_5.json.gz) share meta_Books.
        category = re.sub(r"(_5)?(\.jsonl?)?(\.gz)?$", "", reviews.name)
        meta = next(iter(sorted(reviews.parent.glob(f"meta_{category}.json*"))), None)
        return load(reviews, meta, posters=posters, drop_invalid=drop_invalid)

    return loader


@dataclass(frozen=True)
class DatasetSpec:
    """A data set tastemaker knows by name."""

    name: str
    description: str
    url: str | None
    md5: str | None
    archive_dir: str | None
    loader: Loader
    sha256: str | None = None
    #: For archives without a known checksum: a published ``.md5`` file to verify against.
    md5_url: str | None = None
    #: For data sets that cannot be downloaded automatically: how to get the files.
    how_to_get: str | None = None


def _grouplens(
    name: str,
    description: str,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    md5_url: str | None = None,
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        description=description,
        url=f"{GROUPLENS}/{name}.zip",
        md5=md5,
        archive_dir=name,
        loader=load_folder,
        sha256=sha256,
        md5_url=md5_url,
    )


# Checksums: md5 as used by several public loaders, sha256 from TensorFlow Datasets'
# url_checksums/movielens.txt; ml-32m is checked against GroupLens' own .md5 file.
SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _grouplens(
            "ml-latest-small",
            "MovieLens latest small: 100,836 ratings, 610 users, 9,742 movies (embedded)",
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        ),
        _grouplens(
            "ml-100k",
            "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies (1998)",
            md5="0e33842e24a9c977be4e0107933c0723",
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        ),
        _grouplens(
            "ml-1m",
            "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies (2003)",
            md5="c4d9eecfca2ab87c1945afe126590906",
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        ),
        _grouplens(
            "ml-25m",
            "MovieLens 25M: 25,000,095 ratings, 162,541 users, 62,423 movies (2019)",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        ),
        _grouplens(
            "ml-32m",
            "MovieLens 32M: 32,000,204 ratings, 200,948 users, 87,585 movies (2023)",
            md5_url=f"{GROUPLENS}/ml-32m.zip.md5",
        ),
        DatasetSpec(
            "ml-100k-atomic",
            "MovieLens 100K as RecBole atomic files (.inter/.item/.user)",
            "https://recbole.s3-accelerate.amazonaws.com/ProcessedDatasets/MovieLens/ml-100k.zip",
            None,
            "ml-100k",
            load_folder,
        ),
        DatasetSpec(
            "amazon-2018",
            "Amazon Reviews 2018 (one category: reviews + meta_ JSON lines)",
            None,
            None,
            None,
            _amazon_loader(load_amazon_2018, "*.json*"),
            how_to_get=(
                "download a category's reviews and metadata (e.g. Movies_and_TV_5.json.gz and "
                "meta_Movies_and_TV.json.gz) from "
                "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/ into one folder"
            ),
        ),
        DatasetSpec(
            "amazon-2023",
            "Amazon Reviews 2023 (one category: reviews + meta_ JSON lines)",
            None,
            None,
            None,
            _amazon_loader(load_amazon_2023, "*.jsonl*"),
            how_to_get=(
                "download a category's review and meta_ files (e.g. Movies_and_TV.jsonl.gz and "
                "meta_Movies_and_TV.jsonl.gz) from https://amazon-reviews-2023.github.io/ "
                "into one folder"
            ),
        ),
    )
}


@dataclass(frozen=True)
class DatasetStatus:
    """What :func:`list_datasets` reports for one data set."""

    name: str
    description: str
    location: str


def default_cache_dir() -> Path:
    """``$TASTEMAKER_HOME/datasets``, or ``~/.cache/tastemaker/datasets``."""
    home = os.environ.get("TASTEMAKER_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "tastemaker"
    return root / "datasets"


def get_spec(name: str) -> DatasetSpec:
    """The spec of a known data set; an unknown name lists the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(
            f"unknown data set '{name}' (known: {', '.join(SPECS)})",
            "use one of the known names, or pass a folder of MovieLens or RecBole files",
        ) from None


def _candidates(spec: DatasetSpec, root: Path) -> list[Path]:
    """Where a data set's files may sit under ``root``: itself, its archive folder, a child."""
    found = [root]
    if spec.archive_dir:
        found.append(root / spec.archive_dir)
    if root.is_dir():
        found.extend(sorted(p for p in root.iterdir() if p.is_dir()))
    return found


def _data_folder(spec: DatasetSpec, root: Path) -> Path | None:
    """The folder under ``root`` holding ``spec``'s files, or None."""
    if not root.exists():
        return None
    if spec.how_to_get is not None:  # Amazon: the user's folder or file, as given
        return root
    return next((p for p in _candidates(spec, root) if p.is_dir() and detect_layout(p)), None)


def list_datasets(cache_dir: Path | None = None) -> list[DatasetStatus]:
    """Every known data set, with where it would be loaded from now."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    statuses = []
    for spec in SPECS.values():
        local = _data_folder(spec, cache / spec.name)
        if local is not None:
            location = str(local)
        elif spec.name == BUNDLE_NAME:
            location = EMBEDDED
        elif spec.url is None:
            location = f"local files needed: {spec.how_to_get}"
        else:
            location = DOWNLOAD
        statuses.append(DatasetStatus(spec.name, spec.description, location))
    return statuses


def load_dataset(
    name: str,
    path: Path | None = None,
    *,
    posters: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
    sep: str | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Load a data set by name (or from a folder), downloading it once if needed.

    Order: ``path`` when given; else the copy in ``cache_dir``; else, for
    ``ml-latest-small``, the embedded copy; else download and unpack into the cache.
    ``sep`` and ``drop_invalid`` as in :func:`load_folder`.
    """
    name = str(name)
    options = {"sep": sep, "drop_invalid": drop_invalid}
    if name not in SPECS and path is None and Path(name).expanduser().is_dir():
        return load_folder(Path(name), posters, sep=sep, drop_invalid=drop_invalid)
    spec = get_spec(name)
    if path is not None:
        folder = _data_folder(spec, Path(path).expanduser())
        if folder is None:
            raise DataError(
                f"{path} does not hold {spec.name} files",
                f"pass the folder that contains them ({spec.description})",
            )
        return spec.loader(folder, posters, **options)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    local = _data_folder(spec, cache / spec.name)
    if local is not None:
        return spec.loader(local, posters, **options)
    if spec.name == BUNDLE_NAME:
        reject_separator(sep, "the embedded ml-latest-small")
        return load_bundled(posters, drop_invalid=drop_invalid)
    if spec.url is None:
        raise DataError(
            f"{spec.name} cannot be downloaded automatically and {cache / spec.name} is empty",
            f"{spec.how_to_get}; then pass that folder as the path, or put it at "
            f"{cache / spec.name}",
        )
    if not download:
        raise DataError(
            f"{spec.name} is not in {cache} and downloading is turned off",
            f"allow the download, or unzip {spec.url} into {cache / spec.name}",
        )
    return spec.loader(fetch(spec, cache), posters, **options)


def load_configured(config: DataConfig) -> Dataset:
    """The data set a :class:`DataConfig` names, read with its options (posters, separator,
    invalid rows): the one place every command turns a ``[data]`` table into data."""
    if config.table is not None:  # a user's own file, by its column mapping
        return load_configured_table(config)
    return load_dataset(
        config.dataset,
        config.path,
        posters=config.posters,
        sep=config.sep,
        drop_invalid=config.drop_invalid,
    )


def fetch(spec: DatasetSpec, cache_dir: Path) -> Path:
    """Download, verify and unpack ``spec``'s archive; return the folder with its files."""
    if spec.url is None:
        raise DataError(
            f"{spec.name} has no download address", f"pass a local copy of {spec.name} as the path"
        )
    archive = cache_dir / ".downloads" / spec.url.rsplit("/", 1)[-1]
    md5 = spec.md5 or (_published_md5(spec.md5_url) if spec.md5_url else None)
    download(spec.url, archive, md5=md5, sha256=spec.sha256)
    target = extract_zip(archive, cache_dir / spec.name)
    archive.unlink()
    folder = _data_folder(spec, target)
    if folder is None:
        raise DataError(
            f"the archive {spec.url} unpacked into {target} holds no files tastemaker can read",
            "report this to the tastemaker maintainers; meanwhile pass a local folder as the path",
        )
    return folder


def _published_md5(url: str) -> str:
    """The md5 from a published checksum file (``<hash>  <name>`` or ``MD5 (<name>) = <hash>``)."""
    text = fetch_text(url)
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise DataError(f"{url} holds no md5 checksum", "download the archive by hand")
    return match.group().lower()
