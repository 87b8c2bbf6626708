"""Data set loaders: MovieLens, RecBole atomic files, Amazon Reviews, any table; downloads.

Every loader returns a :class:`tastemaker.Dataset`. Start with
:func:`load_dataset`, which knows data sets by name and caches downloads.
"""

from tastemaker.data.sources.amazon import load_amazon_2018, load_amazon_2023
from tastemaker.data.sources.download import download, extract_zip
from tastemaker.data.sources.embedded import load_bundled
from tastemaker.data.sources.movielens import load_movielens
from tastemaker.data.sources.recbole import load_atomic
from tastemaker.data.sources.registry import (
    DatasetSpec,
    DatasetStatus,
    default_cache_dir,
    get_spec,
    list_datasets,
    load_dataset,
    load_folder,
)
from tastemaker.data.sources.tabular import ColumnMapping, ItemColumns, load_table

__all__ = [
    "ColumnMapping",
    "DatasetSpec",
    "DatasetStatus",
    "ItemColumns",
    "default_cache_dir",
    "download",
    "extract_zip",
    "get_spec",
    "list_datasets",
    "load_amazon_2018",
    "load_amazon_2023",
    "load_atomic",
    "load_bundled",
    "load_dataset",
    "load_folder",
    "load_movielens",
    "load_table",
]
