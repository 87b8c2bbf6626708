"""Options and helpers shared by the command modules."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tastemaker.errors import ConfigError

console = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help=r"TOML file with \[data], \[split], \[model], \[eval] tables."),
]
DataDirOpt = Annotated[
    Path, typer.Option("--data", help="Split folder written by `tastemaker data prepare`.")
]
ModelDirOpt = Annotated[Path, typer.Option("--model-dir", help="Folder written by `train`.")]


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.01", "epochs=20"]`` -> ``{"lr": 0.01, "epochs": 20}`` (TOML values)."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param '{pair}' is not KEY=VALUE", "write e.g. --param epochs=20")
        try:
            params[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = raw
    return params
