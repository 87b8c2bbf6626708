"""Typed configs: environment variables in paths, and one-line errors from Python too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastemaker.config import (
    SECTIONS,
    DataConfig,
    FeaturesConfig,
    SplitConfig,
    read_toml,
    section,
)
from tastemaker.errors import ConfigError
from tastemaker.generation.scenario import PRESETS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_paths_expand_environment_variables_and_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASTEMAKER_DATA", str(tmp_path))
    cfg = DataConfig(path="${TASTEMAKER_DATA}/ml-latest-small", posters="$TASTEMAKER_DATA/p")
    assert (cfg.path, cfg.posters) == (tmp_path / "ml-latest-small", tmp_path / "p")
    assert FeaturesConfig(store="~/store").store == Path.home() / "store"


def test_an_unset_variable_in_a_path_is_a_config_error_naming_it(monkeypatch) -> None:
    monkeypatch.delenv("TASTEMAKER_DATA", raising=False)
    with pytest.raises(ConfigError, match=r"'path'.*TASTEMAKER_DATA, which is not set") as err:
        section({"data": {"path": "${TASTEMAKER_DATA}/ml-100k"}}, "data")
    assert "export TASTEMAKER_DATA=" in err.value.fix
    monkeypatch.delenv("TASTEMAKER_STORE", raising=False)
    with pytest.raises(ConfigError, match="TASTEMAKER_STORE"):
        FeaturesConfig(store="$TASTEMAKER_STORE/cache")


def test_the_multimodal_config_reads_its_folders_from_tastemaker_data(
    monkeypatch, tmp_path: Path
) -> None:
    tables = read_toml(CONFIGS / "multimodal-ml-latest-small.toml", known=[*SECTIONS, "run"])
    monkeypatch.setenv("TASTEMAKER_DATA", str(tmp_path))
    data = section(tables, "data")
    assert (data.path, data.posters) == (
        tmp_path / "ml-latest-small",
        tmp_path / "ml-latest-small-posters",
    )
    monkeypatch.delenv("TASTEMAKER_DATA")
    with pytest.raises(ConfigError, match="TASTEMAKER_DATA"):
        section(tables, "data")


def test_config_classes_raise_config_errors_for_python_callers() -> None:
    with pytest.raises(ConfigError, match="'min_user'"):
        DataConfig(min_user=0)
    with pytest.raises(ConfigError, match="'kind'"):
        SplitConfig(kind="shuffle")


def test_shipped_configs_point_at_no_developer_folder() -> None:
    shipped = sorted([*CONFIGS.glob("*.toml"), *PRESETS.glob("*.toml")])
    assert len(shipped) >= 4
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, path.name
