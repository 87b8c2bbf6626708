"""Loaders against the real data sets (published counts) and small files in each layout."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tastemaker.data.sources import (
    ColumnMapping,
    ItemColumns,
    default_cache_dir,
    get_spec,
    list_datasets,
    load_amazon_2018,
    load_amazon_2023,
    load_atomic,
    load_bundled,
    load_dataset,
    load_movielens,
    load_table,
)
from tastemaker.data.sources.embedded import BUNDLE_DIR
from tastemaker.data.sources.registry import DOWNLOAD, EMBEDDED
from tastemaker.errors import ConfigError, DataError

from .conftest import shared_data

# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def ml_small():
    return load_movielens(shared_data("ml-latest-small"))


@pytest.fixture(scope="module")
def bundled():
    return load_bundled()


def test_ml_latest_small_has_the_published_counts(ml_small) -> None:
    assert len(ml_small.interactions) == 100_836
    assert ml_small.interactions.n_active_users == 610
    assert ml_small.interactions.n_active_items == 9_724
    assert len(ml_small.catalog) == 9_742
    manifest = ml_small.manifest
    assert manifest.name == "ml-latest-small"
    assert (manifest.source["kind"], manifest.source["layout"]) == ("movielens", "csv")
    assert [(s.name, s.rows_after) for s in manifest.steps] == [("load", 100_836)]
    ratings = shared_data("ml-latest-small") / "ratings.csv"
    assert manifest.source_files["ratings.csv"] == hashlib.sha256(ratings.read_bytes()).hexdigest()
    assert set(manifest.source_files) == {"ratings.csv", "movies.csv", "tags.csv", "links.csv"}


def test_ml_latest_small_catalog_fields(ml_small) -> None:
    catalog = ml_small.catalog
    assert catalog.categorical_fields == ["genres", "tags"]
    assert catalog.numeric_fields == ["year", "imdb_id", "tmdb_id"]
    assert catalog.item("1") == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "image": None,
        "year": 1995,
        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        "tags": ["fun", "pixar"],
        "imdb_id": 114709,
        "tmdb_id": 862,
    }
    assert catalog.item("114335")["genres"] == []  # "(no genres listed)"
    assert catalog.item("171749")["year"] == 2006  # "Death Note: Desu nôto (2006–2007)"
    # "… Texas Blood Money (1999) " has a trailing blank in movies.csv
    assert catalog.item("27008")["title"] == "From Dusk Till Dawn 2: Texas Blood Money (1999)"
    assert catalog.item("40697")["year"] is None  # "Babylon 5": no year in the title
    row = ml_small.interactions.frame.row(0, named=True)
    assert (row["user_id"], row["item_id"], row["rating"], row["timestamp"]) == (
        "1", "1", 4.0, 964_982_703
    )  # fmt: skip


def test_ml_latest_small_tags_are_the_distinct_lowercased_user_tags(ml_small) -> None:
    with open(shared_data("ml-latest-small") / "tags.csv", encoding="utf-8", newline="") as fh:
        pairs = {(r["movieId"], r["tag"].strip().lower()) for r in csv.DictReader(fh)}
    tags = ml_small.catalog.frame.select("item_id", "tags").explode("tags").drop_nulls()
    assert set(tags.iter_rows()) == pairs


def test_posters_folder_gives_images(ml_small) -> None:
    posters = shared_data("ml-latest-small-posters")
    dataset = load_movielens(shared_data("ml-latest-small"), posters=posters)
    assert dataset.catalog.n_images == 2_863
    assert dataset.manifest.counts["items_with_image"] == 2_863
    assert dataset.catalog.item("1")["image"] == str((posters / "1.jpg").resolve())
    assert dataset.manifest.source["posters"] == str(posters.resolve())
    assert dataset.interactions.content_hash() == ml_small.interactions.content_hash()


def test_bundled_copy_equals_the_shared_files(ml_small, bundled) -> None:
    assert bundled.interactions.content_hash() == ml_small.interactions.content_hash()
    assert bundled.catalog.frame.equals(ml_small.catalog.frame)
    assert bundled.interactions.frame.equals(ml_small.interactions.frame)
    assert bundled.manifest.source_files == ml_small.manifest.source_files
    assert bundled.manifest.counts == ml_small.manifest.counts
    assert bundled.manifest.source["location"] == "embedded"


def test_bundled_copy_stands_alone(bundled) -> None:
    assert bundled.manifest.counts == {
        "interactions": 100_836,
        "users": 610,
        "items": 9_742,
        "interacted_items": 9_724,
        "items_with_image": 0,
    }
    assert "Usage License" in (BUNDLE_DIR / "README.txt").read_text(encoding="utf-8")
    assert "not** shipped" in (BUNDLE_DIR / "SOURCE.md").read_text(encoding="utf-8")
    assert not list(BUNDLE_DIR.glob("*.jpg"))
    assert sum(p.stat().st_size for p in BUNDLE_DIR.iterdir()) < 1_100_000


def test_ml_100k_atomic_has_the_published_counts() -> None:
    dataset = load_atomic(shared_data("ml-100k"))
    assert len(dataset.interactions) == 100_000
    assert dataset.interactions.n_active_users == 943
    assert dataset.interactions.n_active_items == 1_682
    assert len(dataset.catalog) == 1_682
    assert dataset.catalog.item("1") == {
        "item_id": "1",
        "title": "Toy Story",
        "image": None,
        "release_year": "1995",
        "class": ["Animation", "Children's", "Comedy"],
    }
    first = dataset.interactions.frame.row(0, named=True)
    assert (first["user_id"], first["item_id"], first["rating"], first["timestamp"]) == (
        "196", "242", 3.0, 881_250_949
    )  # fmt: skip
    assert set(dataset.manifest.source_files) == {"ml-100k.inter", "ml-100k.item"}
    assert dataset.manifest.name == "ml-100k"


# --------------------------------------------------------------------------- small files


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def ml_csv_folder(root: Path, ratings: str | None = None, movies: str | None = None) -> Path:
    folder = root / "ml-tiny"
    write(
        folder / "ratings.csv",
        ratings or "userId,movieId,rating,timestamp\n1,10,4.5,100\n1,20,3.0,200\n2,10,5.0,300\n",
    )
    write(
        folder / "movies.csv",
        movies
        or 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n'
        "20,Solaris (1972),(no genres listed)\n",
    )
    return folder


def test_movielens_csv_without_optional_files(tmp_path: Path) -> None:
    dataset = load_movielens(ml_csv_folder(tmp_path))
    assert dataset.catalog.frame.columns == ["item_id", "title", "image", "year", "genres"]
    assert dataset.catalog.item("10")["title"] == "Heat, The (1995)"
    assert dataset.catalog.item("10")["genres"] == ["Action", "Crime"]
    assert dataset.catalog.item("20")["genres"] == []
    assert dataset.interactions.frame["rating"].to_list() == [4.5, 3.0, 5.0]
    assert set(dataset.manifest.source_files) == {"ratings.csv", "movies.csv"}


def test_ml_100k_original_layout(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    write(folder / "u.data", "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n")
    flags = {1: "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0", 2: "1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"}
    write(
        folder / "u.item",
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story|{flags[1]}\n"
        f"2|Misérables, Les (1995)|||http://us.imdb.com/x|{flags[2]}\n",
        encoding="latin-1",
    )
    dataset = load_dataset(str(folder))  # layout detected from the files
    assert dataset.manifest.source["layout"] == "100k"
    assert dataset.catalog.item("1") == {
        "item_id": "1",
        "title": "Toy Story (1995)",
        "image": None,
        "year": 1995,
        "genres": ["Animation", "Children's", "Comedy"],
    }
    # no release date: the year comes from the title; the "unknown" flag is no genre
    assert dataset.catalog.item("2")["title"] == "Misérables, Les (1995)"
    assert (dataset.catalog.item("2")["year"], dataset.catalog.item("2")["genres"]) == (1995, [])
    assert dataset.manifest.counts["interactions"] == 3
    assert dataset.interactions.frame["rating"].to_list() == [5.0, 3.0, 4.0]


def test_ml_1m_dat_layout(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::260::5::978300760\n2::1::3::978302109\n")
    write(
        folder / "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "260::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
        "3::Crêpe (2000)::Drama\n",
        encoding="latin-1",
    )
    dataset = load_dataset(str(folder))
    assert dataset.manifest.source["layout"] == "1m"
    star_wars = dataset.catalog.item("260")
    assert star_wars["title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert (star_wars["year"], star_wars["genres"]) == (1977, ["Action", "Sci-Fi"])
    assert dataset.catalog.item("3")["title"] == "Crêpe (2000)"
    assert dataset.interactions.frame.row(0) == ("1", "260", 5.0, 978300760, None)
    assert set(dataset.manifest.source_files) == {"ratings.dat", "movies.dat"}


def json_lines(path: Path, records: list[dict], gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


REVIEWS_2018 = [
    {"overall": 5.0, "verified": True, "reviewTime": "05 3, 2016", "reviewerID": "A1",
     "asin": "B001", "reviewText": "Loved it", "summary": "Great", "unixReviewTime": 1462233600},
    {"overall": 2.0, "reviewerID": "A2", "asin": "B001", "reviewText": "Meh.",
     "unixReviewTime": 1462320000},
    {"overall": 4.0, "reviewerID": "A1", "asin": "B999", "summary": "Fine",
     "unixReviewTime": 1462406400},
]  # fmt: skip
META_2018 = [
    {"asin": "B001", "title": "Moka Pot", "description": ["Six cups.", "Aluminium."],
     "brand": "Bialetti", "category": ["Home", "Coffee"], "price": "$1,299.00",
     "imageURLHighRes": ["https://img/hi1.jpg", "https://img/hi2.jpg"]},
    {"asin": "B001", "title": "Duplicate record", "price": "$3.00"},
    {"asin": "B002", "title": "Filter", "price": "", "imUrl": "https://img/old.jpg"},
]  # fmt: skip


def test_amazon_2018(tmp_path: Path) -> None:
    reviews = json_lines(tmp_path / "Home_5.json.gz", REVIEWS_2018, gz=True)
    meta = json_lines(tmp_path / "meta_Home.json", META_2018)
    dataset = load_amazon_2018(reviews, meta)
    frame = dataset.interactions.frame
    assert frame["text"].to_list() == ["Great. Loved it", "Meh.", "Fine"]
    assert frame["rating"].to_list() == [5.0, 2.0, 4.0]
    assert frame["timestamp"].to_list() == [1462233600, 1462320000, 1462406400]
    assert dataset.catalog.item("B001") == {
        "item_id": "B001",
        "title": "Moka Pot",  # the first record of a repeated asin wins
        "image": "https://img/hi1.jpg",
        "description": "Six cups. Aluminium.",
        "brand": ["Bialetti"],
        "categories": ["Home", "Coffee"],
        "price": 1299.0,
    }
    assert dataset.catalog.item("B002")["image"] == "https://img/old.jpg"
    assert dataset.catalog.item("B002")["price"] is None
    # reviewed but absent from the metadata: a bare row titled by its ID
    assert dataset.catalog.item("B999")["title"] == "B999"
    assert dataset.catalog.item("B999")["categories"] == []
    assert len(dataset.catalog) == 3
    assert dataset.manifest.name == "amazon-2018-Home_5"


def test_amazon_2023(tmp_path: Path) -> None:
    reviews = [
        {"rating": 4.0, "title": "Works", "text": "As described.", "images": [],
         "asin": "B0A-red", "parent_asin": "P1", "user_id": "U1",
         "timestamp": 1588687728923, "helpful_vote": 2, "verified_purchase": True},
        {"rating": 1.0, "title": "", "text": "Broke.", "asin": "B0A-blue",
         "parent_asin": "P1", "user_id": "U2", "timestamp": 1600000000000},
    ]  # fmt: skip
    meta = [
        {"main_category": "All Beauty", "title": "Brush", "average_rating": 4.5,
         "features": ["Soft", "Wooden handle"], "description": [], "price": 9.5,
         "images": [{"thumb": "t.jpg", "large": "l.jpg", "hi_res": None, "variant": "MAIN"}],
         "store": "Acme", "categories": [], "parent_asin": "P1"},
    ]  # fmt: skip
    folder = tmp_path / "beauty"
    json_lines(folder / "All_Beauty.jsonl", reviews)
    json_lines(folder / "meta_All_Beauty.jsonl.gz", meta, gz=True)
    dataset = load_dataset("amazon-2023", folder)  # finds the meta_ file beside the reviews
    frame = dataset.interactions.frame
    assert frame["item_id"].to_list() == ["P1", "P1"]
    assert frame["timestamp"].to_list() == [1588687728, 1600000000]
    assert frame["text"].to_list() == ["Works. As described.", "Broke."]
    assert dataset.catalog.item("P1") == {
        "item_id": "P1",
        "title": "Brush",
        "image": "l.jpg",  # hi_res missing: the large image
        "description": None,
        "features": "Soft Wooden handle",
        "main_category": ["All Beauty"],
        "store": ["Acme"],
        "categories": [],
        "price": 9.5,
    }
    assert set(dataset.manifest.source_files) == {"All_Beauty.jsonl", "meta_All_Beauty.jsonl.gz"}


def test_amazon_2018_folder_pairs_5core_reviews_with_category_meta(tmp_path: Path) -> None:
    json_lines(tmp_path / "Home_5.json.gz", REVIEWS_2018, gz=True)
    json_lines(tmp_path / "meta_Home.json.gz", META_2018, gz=True)
    dataset = load_dataset("amazon-2018", tmp_path)
    assert dataset.catalog.item("B001")["title"] == "Moka Pot"


def test_tabular_csv_with_iso_dates_and_item_table(tmp_path: Path) -> None:
    write(
        tmp_path / "events.csv",
        "who,what,stars,when,note\n"
        "u1,007,4,2020-01-01T00:00:00Z,nice\n"
        "u1,042,2.5,2020-01-02,\n"
        "u2,007,5,2020-01-01T10:00:00+02:00,great\n",
    )
    write(
        tmp_path / "things.csv",
        "id,name,kinds,cover,weight\n007,Bond,spy| action ,img/007.jpg,1.5\n",
    )
    mapping = ColumnMapping(
        user="who", item="what", rating="stars", timestamp="when", text="note",
        items=ItemColumns(item="id", title="name", image="cover", lists={"kinds": "|"}),
    )  # fmt: skip
    dataset = load_table(tmp_path / "events.csv", mapping, tmp_path / "things.csv")
    frame = dataset.interactions.frame
    assert frame["item_id"].to_list() == ["007", "042", "007"]  # leading zeros kept
    # 2020-01-01 00:00 UTC = 1577836800; +1 day; 10:00+02:00 = 08:00 UTC
    assert frame["timestamp"].to_list() == [1577836800, 1577923200, 1577865600]
    assert frame["rating"].to_list() == [4.0, 2.5, 5.0]
    assert frame["text"].to_list() == ["nice", None, "great"]
    assert dataset.catalog.item("007") == {
        "item_id": "007",
        "title": "Bond",
        "image": str((tmp_path / "img" / "007.jpg").resolve()),
        "kinds": ["spy", "action"],
        "weight": 1.5,
    }
    assert dataset.catalog.item("042")["title"] == "042"
    assert dataset.manifest.name == "events"


def test_tabular_parquet_dates_and_tsv_seconds(tmp_path: Path) -> None:
    pl.DataFrame(
        {"u": [1, 2], "i": [10, 11], "d": [date(2020, 1, 1), date(2020, 1, 3)]}
    ).write_parquet(tmp_path / "log.parquet")
    dataset = load_table(tmp_path / "log.parquet", ColumnMapping(user="u", item="i", timestamp="d"))
    assert dataset.interactions.frame["timestamp"].to_list() == [1577836800, 1578009600]
    assert dataset.interactions.frame["user_id"].to_list() == ["1", "2"]
    write(tmp_path / "log.tsv", "u\ti\tt\na\tx\t964982703\n")
    dataset = load_table(tmp_path / "log.tsv", ColumnMapping(user="u", item="i", timestamp="t"))
    assert dataset.interactions.frame["timestamp"].to_list() == [964982703]


# --------------------------------------------------------------------------- bad input


def test_renamed_column_names_file_and_existing_columns(tmp_path: Path) -> None:
    folder = ml_csv_folder(tmp_path, ratings="user,movieId,rating,timestamp\n1,10,4.0,5\n")
    with pytest.raises(DataError) as err:
        load_movielens(folder)
    message = str(err.value)
    assert "ratings.csv has no column 'userId'" in message
    assert "columns: user, movieId, rating, timestamp" in message
    assert "Fix:" in message


def test_truncated_csv_is_reported(tmp_path: Path) -> None:
    full = "userId,movieId,rating,timestamp\n1,10,4.5,100\n1,20,3.0,200\n2,10,5.0,300\n"
    folder = ml_csv_folder(tmp_path, ratings=full[: full.index("5.0,300")])  # cut mid-line
    with pytest.raises(DataError, match=r"ratings\.csv is truncated or garbled: data row 3"):
        load_movielens(folder)


def test_truncated_quoted_title_is_reported(tmp_path: Path) -> None:
    movies = 'movieId,title,genres\n20,Solaris (1972),Drama\n10,"Heat, The (19'
    with pytest.raises(DataError, match=r"movies\.csv is truncated or garbled"):
        load_movielens(ml_csv_folder(tmp_path, movies=movies))


def test_garbled_number_is_reported(tmp_path: Path) -> None:
    ratings = "userId,movieId,rating,timestamp\n1,10,four,100\n"
    with pytest.raises(DataError, match=r"ratings\.csv is truncated or garbled \(.*four"):
        load_movielens(ml_csv_folder(tmp_path, ratings=ratings))


def test_truncated_dat_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    write(folder / "ratings.dat", "1::260::5::978300760\n")
    write(folder / "movies.dat", "260::Star Wars (1977)::Action\n1::Toy Sto")
    with pytest.raises(DataError, match=r"movies\.dat line 2 is not 'MovieID::Title::Genres'"):
        load_movielens(folder)


def test_truncated_json_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = json_lines(tmp_path / "r.json", REVIEWS_2018)
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # cut inside the third record
    with pytest.raises(DataError, match=r"r\.json line 3 is not valid JSON"):
        load_amazon_2018(path)


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    path = json_lines(tmp_path / "r.json.gz", REVIEWS_2018 * 50, gz=True)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"r\.json\.gz is truncated or corrupt after line"):
        load_amazon_2018(path)


def test_json_record_of_the_other_release_is_reported(tmp_path: Path) -> None:
    path = json_lines(tmp_path / "r.jsonl", REVIEWS_2018)
    with pytest.raises(DataError, match=r"r\.jsonl line 1 has no 'user_id' field \(keys: asin"):
        load_amazon_2023(path)


def test_truncated_atomic_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    write(folder / "toy.inter", "user_id:token\titem_id:token\trating:float\n1\t2\t3\n4\t5")
    with pytest.raises(DataError, match=r"toy\.inter is truncated or garbled: data row 2"):
        load_atomic(folder)
    write(folder / "toy.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"header field 'user_id' is not 'name:type'"):
        load_atomic(folder)


def test_tabular_missing_column_lists_existing_ones(tmp_path: Path) -> None:
    write(tmp_path / "x.csv", "user,item,score\na,b,1\n")
    with pytest.raises(DataError, match=r"x\.csv has no column 'rating' \(columns: user, item"):
        load_table(tmp_path / "x.csv", ColumnMapping(user="user", item="item", rating="rating"))
    write(tmp_path / "z.csv", "user,item,score\na,b,4\na,c,n/a\n")
    with pytest.raises(DataError, match=r"column 'score' has a non-number \('n/a'\)"):
        load_table(tmp_path / "z.csv", ColumnMapping(user="user", item="item", rating="score"))
    write(tmp_path / "y.csv", "user,item,when\na,b,yesterday\n")
    with pytest.raises(DataError, match=r"'when' has times that are neither .*'yesterday'"):
        load_table(tmp_path / "y.csv", ColumnMapping(user="user", item="item", timestamp="when"))


def test_unknown_name_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown data set 'ml-7m' \(known: ml-latest-small, "):
        load_dataset("ml-7m")
    with pytest.raises(ConfigError, match="ml-100k-atomic, amazon-2018"):
        get_spec("movielens")


def test_folder_without_data_files_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "hello")
    with pytest.raises(DataError, match=r"holds no known data set files \(found: notes\.txt\)"):
        load_dataset(str(tmp_path))


# --------------------------------------------------------------------------- registry


def test_list_datasets_reports_where_each_comes_from(tmp_path: Path) -> None:
    ml_csv_folder(tmp_path / "ml-1m")  # a cached copy: <cache>/ml-1m/ml-tiny
    where = {s.name: s.location for s in list_datasets(tmp_path)}
    assert where["ml-1m"] == str(tmp_path / "ml-1m" / "ml-tiny")
    assert where["ml-latest-small"] == EMBEDDED
    assert where["ml-25m"] == DOWNLOAD
    assert where["amazon-2023"].startswith("local files needed: ")
    assert "amazon-reviews-2023.github.io" in where["amazon-2023"]


def test_load_dataset_prefers_cache_then_embedded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TASTEMAKER_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "datasets"
    embedded = load_dataset("ml-latest-small")
    assert embedded.manifest.source["location"] == "embedded"
    ml_csv_folder(tmp_path / "home" / "datasets" / "ml-latest-small")
    cached = load_dataset("ml-latest-small")
    assert len(cached.interactions) == 3
    with pytest.raises(DataError, match=r"ml-32m is not in .* downloading is turned off"):
        load_dataset("ml-32m", download=False)
    with pytest.raises(DataError, match=r"amazon-2018 cannot be downloaded automatically"):
        load_dataset("amazon-2018")
