"""The data a personalized-generation pipeline reads: a Dataset or a Split, and its catalog.

Histories read a Split's train and valid parts (its test part is what one
generates for) or all of a Dataset; images and attributes come from the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tastemaker.config import DataConfig
from tastemaker.data.catalog import IMAGE, Catalog
from tastemaker.data.dataset import Dataset, Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import DataError

Data = Dataset | Split


def data_parts(data: Data) -> tuple[Catalog, Interactions | Split]:
    """(catalog, what histories read): a Split's train + valid, or all of a Dataset."""
    if isinstance(data, Split):
        return data.catalog, data
    if isinstance(data, Dataset):
        return data.catalog, data.interactions
    raise DataError(
        f"cannot generate from a {type(data).__name__}",
        "pass a Dataset (load_dataset) or a Split (Split.load, experiment.prepare)",
    )


def load_data(config: DataConfig) -> Data:
    """The data a pipeline reads: a folder saved by tastemaker (a Split or a Dataset, with
    ``posters`` pointed at when given), else a known data set or raw folder (a Dataset)."""
    from tastemaker.data.manifest import Manifest
    from tastemaker.data.sources.registry import load_configured

    folder = Path(config.dataset).expanduser()
    if not (folder / "manifest.json").is_file():
        return load_configured(config)
    if Manifest.read(folder / "manifest.json").split is None:
        ds = Dataset.load(folder)
        return ds.replace(catalog=ds.catalog.with_images(config.posters)) if config.posters else ds
    split = Split.load(folder)
    if config.posters is None:
        return split
    parts = (split.train.frame, split.valid.frame, split.test.frame)
    return Split(split.catalog.with_images(config.posters), *parts, manifest=split.manifest)


def item_image(catalog: Catalog, item_id: str) -> str | None:
    """The item's image path or URL, None when it has none."""
    value = catalog.item(item_id)[IMAGE]
    return str(value) if value else None


def conversation_attributes(
    catalog: Catalog, fields: Sequence[str], text: str
) -> dict[str, list[str]]:
    """Per field, the catalog's values that ``text`` mentions as whole words.

    A conversation has no genres or tags of its own; the ones it names are what a
    non-LLM extractor can describe it with.
    """
    words = " ".join(re.findall(r"[^\W_]+", text.casefold()))
    found: dict[str, list[str]] = {}
    for name in fields:
        values: dict[str, str] = {}
        for row in catalog.frame[name].to_list():
            for value in row or []:
                key = " ".join(re.findall(r"[^\W_]+", str(value).casefold()))
                if key and re.search(rf"\b{re.escape(key)}\b", words):
                    values.setdefault(key, str(value))
        if values:
            found[name] = list(values.values())
    return found


__all__ = ["Data", "conversation_attributes", "data_parts", "item_image", "load_data"]
