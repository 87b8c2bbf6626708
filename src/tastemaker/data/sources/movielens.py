"""MovieLens (GroupLens) in its three file layouts, detected from the files present.

* CSV (ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m): ``ratings.csv``,
  ``movies.csv``, optional ``tags.csv`` and ``links.csv``; UTF-8.
* ml-100k original: ``u.data`` (tab-separated) and ``u.item`` (``|``-separated,
  Latin-1, 19 genre flags).
* ml-1m / ml-10m: ``ratings.dat`` and ``movies.dat`` (``::``-separated, Latin-1).

Every layout becomes the same Catalog: ``title`` as given, ``year``, ``genres``,
and, when the files have them, ``tags`` and ``imdb_id``/``tmdb_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tastemaker.data.catalog import ITEM_ID, TITLE
from tastemaker.data.dataset import Dataset
from tastemaker.data.interactions import RATING, TIMESTAMP, USER_ID
from tastemaker.data.sources._common import (
    STRINGS,
    hash_files,
    make_dataset,
    read_table,
    reencode_latin1,
    reject_separator,
    split_labels,
)
from tastemaker.errors import DataError

FIX = (
    "download the data set again from https://grouplens.org/datasets/movielens/ "
    "and unzip it unchanged"
)

#: The files that identify each layout: (ratings file, movies file).
LAYOUTS = {
    "csv": ("ratings.csv", "movies.csv"),
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat"),
}

RATINGS = {"userId": pl.Int32, "movieId": pl.Int32, "rating": pl.Float32, "timestamp": pl.Int64}
MOVIES = {"movieId": pl.Int32, "title": pl.Utf8, "genres": pl.Utf8}

#: Columns read from each CSV file (compact raw dtypes) and those that may be empty.
CSV_TABLES: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "ratings": (RATINGS, ()),
    "movies": (MOVIES, ()),
    "tags": ({"movieId": pl.Int32, "tag": pl.Utf8, "timestamp": pl.Int64}, ("tag",)),
    "links": ({"movieId": pl.Int32, "imdbId": pl.Int64, "tmdbId": pl.Int64}, ("imdbId", "tmdbId")),
}
OPTIONAL_CSV = ("tags", "links")

NO_GENRES = "(no genres listed)"
#: Column order of the genre flags in ml-100k ``u.item`` (its README and ``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_YEAR_AT_END = r"\((\d{4})(?:\s*[-–]\s*\d{4})?\)$"


def movielens_layout(folder: Path) -> str | None:
    """``"csv"``, ``"100k"`` or ``"1m"`` from the ratings file present, else None."""
    folder = Path(folder)
    for layout, (ratings, _) in LAYOUTS.items():
        if (folder / ratings).is_file():
            return layout
    return None


def load_movielens(
    folder: Path,
    posters: Path | None = None,
    *,
    sep: str | None = None,
    drop_invalid: bool = False,
) -> Dataset:
    """Load a MovieLens folder in any layout; ``posters`` holds ``<movieId>.jpg`` files.

    ``sep``: the delimiter of CSV-layout files (default ``,``; e.g. ``;`` after a
    spreadsheet export). ``drop_invalid``: drop ratings that are NaN or infinite
    (recorded in the manifest) instead of refusing them.
    """
    folder = Path(folder)
    layout = movielens_layout(folder)
    if layout is None:
        expected = " or ".join(" + ".join(files) for files in LAYOUTS.values())
        raise DataError(
            f"{folder} holds no MovieLens ratings file (expected {expected})",
            "point to the unzipped MovieLens folder",
        )
    name = folder.name if folder.name.lower().startswith("ml-") else f"movielens-{layout}"
    source = {
        "kind": "movielens",
        "variant": name,
        "layout": layout,
        "location": str(folder.resolve()),
    }
    if layout == "csv":
        frames = read_csv_layout(folder, sep or ",")
        files = hash_files(folder / f"{table}.csv" for table in frames)
        return csv_layout_dataset(frames, name, source, files, posters, drop_invalid=drop_invalid)
    reject_separator(sep, f"the MovieLens {layout} layout")
    reader = _read_100k if layout == "100k" else _read_1m
    ratings, movies = reader(folder)
    files = hash_files(folder / f for f in LAYOUTS[layout])
    return _dataset(ratings, movies, {}, name, source, files, posters, drop_invalid)


def read_csv_layout(folder: Path, sep: str = ",") -> dict[str, pl.DataFrame]:
    """The raw tables of a CSV-layout folder, with compact dtypes (also what is bundled)."""
    frames = {}
    for table, (schema, nullable) in CSV_TABLES.items():
        path = Path(folder) / f"{table}.csv"
        optional = table in OPTIONAL_CSV
        if optional and not path.is_file():
            continue
        frames[table] = read_table(
            path, schema, fix=FIX, separator=sep, nullable=nullable, allow_empty=optional
        )
    return frames


def csv_layout_dataset(
    frames: dict[str, pl.DataFrame],
    name: str,
    source: dict[str, Any],
    source_files: dict[str, str],
    posters: Path | None = None,
    *,
    drop_invalid: bool = False,
) -> Dataset:
    """Dataset from the raw tables of :func:`read_csv_layout` (files or the bundle)."""
    movies = _parse_movies(frames["movies"])
    extras = {t: frames[t] for t in OPTIONAL_CSV if t in frames}
    ratings = frames["ratings"]
    return _dataset(ratings, movies, extras, name, source, source_files, posters, drop_invalid)


def _parse_movies(movies: pl.DataFrame) -> pl.DataFrame:
    """(movieId, title, 'A|B' genres) → title stripped, year from the title, genre list."""
    title = pl.col("title").str.strip_chars()
    genres = split_labels(pl.col("genres"), "|").list.eval(
        pl.element().filter(pl.element() != NO_GENRES)
    )
    return movies.select(
        "movieId",
        title,
        title.str.extract(_YEAR_AT_END, 1).cast(pl.Int32).alias("year"),
        genres,
    )


def _dataset(
    ratings: pl.DataFrame,
    movies: pl.DataFrame,
    extras: dict[str, pl.DataFrame],
    name: str,
    source: dict[str, Any],
    source_files: dict[str, str],
    posters: Path | None,
    drop_invalid: bool,
) -> Dataset:
    """Shared tail of every layout: movies (movieId, title, year, genres) → Catalog."""
    items = movies.select("movieId", "title", "year", "genres")
    if "tags" in extras:
        tags = (
            extras["tags"]
            .select("movieId", pl.col("tag").str.strip_chars().str.to_lowercase())
            .filter(pl.col("tag").is_not_null() & (pl.col("tag") != ""))
            .group_by("movieId")
            .agg(pl.col("tag").unique().sort().alias("tags"))
        )
        items = items.join(tags, on="movieId", how="left", maintain_order="left")
        items = items.with_columns(pl.col("tags").fill_null(pl.lit([], dtype=STRINGS)))
    if "links" in extras:
        links = extras["links"].unique("movieId", keep="first", maintain_order=True)
        items = items.join(links, on="movieId", how="left", maintain_order="left").rename(
            {"imdbId": "imdb_id", "tmdbId": "tmdb_id"}
        )
    items = items.rename({"movieId": ITEM_ID, "title": TITLE})
    interactions = ratings.select(
        pl.col("userId").alias(USER_ID),
        pl.col("movieId").alias(ITEM_ID),
        pl.col("rating").alias(RATING),
        pl.col("timestamp").alias(TIMESTAMP),
    )
    return make_dataset(
        name, source, source_files, items, interactions, posters, drop_invalid=drop_invalid
    )


def _read_100k(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    ratings = read_table(folder / "u.data", RATINGS, fix=FIX, separator="\t", has_header=False)
    flags = [f"g{i}" for i in range(len(ML100K_GENRES))]
    schema: dict[str, pl.DataType] = {
        "movieId": pl.Int32,
        "title": pl.Utf8,
        "release": pl.Utf8,
        "video_release": pl.Utf8,
        "imdb_url": pl.Utf8,
        **dict.fromkeys(flags, pl.Utf8),
    }
    path = folder / "u.item"
    movies = read_table(
        path,
        schema,
        fix=FIX,
        separator="|",
        has_header=False,
        data=reencode_latin1(path, FIX),
        quote_char=None,
        nullable=("release", "video_release", "imdb_url"),
    )
    title = pl.col("title").str.strip_chars()
    genres = pl.concat_list(
        pl.when(pl.col(flag) == "1").then(pl.lit(genre))
        for flag, genre in zip(flags, ML100K_GENRES, strict=True)
        if genre != "unknown"
    ).list.drop_nulls()
    year = pl.coalesce(
        pl.col("release").str.extract(r"(\d{4})$", 1), title.str.extract(_YEAR_AT_END, 1)
    ).cast(pl.Int32)
    return ratings, movies.select("movieId", title, year.alias("year"), genres.alias("genres"))


def _read_1m(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    path = folder / "ratings.dat"
    ratings = read_table(
        path,
        RATINGS,
        fix=FIX,
        separator="\t",
        has_header=False,
        data=reencode_latin1(path, FIX, separator=b"::"),
        quote_char=None,
    )
    path = folder / "movies.dat"
    rows: dict[str, list[Any]] = {"movieId": [], "title": [], "genres": []}
    # Titles may contain ':' (even end with it), so split on the first and last '::' only.
    for number, line in enumerate(reencode_latin1(path, FIX).decode().splitlines(), 1):
        if not line.strip():
            continue
        movie_id, _, rest = line.partition("::")
        title, sep, genres = rest.rpartition("::")
        if not sep or not movie_id.strip().isdigit():
            raise DataError(
                f"{path} line {number} is not 'MovieID::Title::Genres' (truncated or garbled)",
                FIX,
            )
        rows["movieId"].append(int(movie_id))
        rows["title"].append(title)
        rows["genres"].append(genres)
    return ratings, _parse_movies(pl.DataFrame(rows, schema=MOVIES))
