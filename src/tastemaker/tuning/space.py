"""The search-space language: ``NAME=SPEC`` strings (CLI), TOML values or typed params.

Each searched hyper-parameter is a typed, validated range that knows its Optuna
distribution and, where it has one, its grid; a bad bound is a :class:`ConfigError`
that shows the syntax, as every other config mistake is.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    model_validator,
)

from tastemaker.errors import ConfigError

SYNTAX = (
    "write NAME=SPEC, e.g. learning_rate=log:1e-4..1e-2, factors=choice:32,64,128, "
    "reg=1e-3..1e-1 or n_layers=int:1..3"
)
Value = bool | int | float | str


class _Param(BaseModel):
    """One searched hyper-parameter; a bad bound is a ConfigError, as everywhere else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "bounds"
            raise ConfigError(
                f"{type(self).__name__} {where}: "
                f"{err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})",
                SYNTAX,
            ) from None

    def distribution(self) -> Any:
        """The Optuna distribution that samples this parameter."""
        raise NotImplementedError

    def grid(self, name: str) -> list[Value]:
        """Every value, for the grid sampler; continuous ranges have no grid."""
        raise ConfigError(
            f"the grid sampler cannot enumerate the continuous range {name}={self}",
            f"write {name} as choice:V1,V2,... or int:LOW..HIGH, or use the tpe sampler",
        )


class _Range(_Param):
    low: float
    high: float

    def __init__(self, low: float, high: float) -> None:
        super().__init__(low=low, high=high)

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        return self


class Uniform(_Range):
    """A float drawn uniformly from [low, high]: ``reg=1e-3..1e-1``."""

    def __str__(self) -> str:
        return f"{self.low!r}..{self.high!r}"

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high)


class LogUniform(_Range):
    """A positive float drawn uniformly in log space: ``learning_rate=log:1e-4..1e-2``."""

    low: PositiveFloat
    high: PositiveFloat

    def __str__(self) -> str:
        return f"log:{self.low!r}..{self.high!r}"

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)


class IntRange(_Range):
    """An integer in [low, high], both included: ``n_layers=int:1..3``."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"int:{self.low}..{self.high}"

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high)

    def grid(self, name: str) -> list[Value]:
        return list(range(self.low, self.high + 1))


class Choice(_Param):
    """One of a list of values: ``factors=choice:32,64,128``."""

    values: list[Value] = Field(min_length=1)

    def __init__(self, values: Sequence[Value]) -> None:
        super().__init__(values=list(values))

    def __str__(self) -> str:
        return "choice:" + ",".join(str(v) for v in self.values)

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def grid(self, name: str) -> list[Value]:
        return list(self.values)


Param = Uniform | LogUniform | IntRange | Choice
SpaceSpec = Mapping[str, Param | str | Sequence[Value]] | Iterable[str]
_RANGES: dict[str, tuple[type[_Range], type]] = {
    "uniform": (Uniform, float),
    "log": (LogUniform, float),
    "int": (IntRange, int),
}


def _literal(raw: str) -> Value:
    """``"32"`` -> 32, ``"0.1"`` -> 0.1, ``"true"`` -> True; anything else stays a string."""
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return cast(raw)
    return {"true": True, "false": False}.get(raw.lower(), raw)


def parse_param(name: str, spec: str) -> Param:
    """``log:1e-4..1e-2``, ``choice:32,64``, ``int:1..3`` or ``1e-3..1e-1`` as a typed range."""
    kind, sep, body = spec.strip().partition(":")
    if not sep:
        kind, body = "uniform", spec.strip()
    bad = ConfigError(f"search space entry {name}={spec!r} is not understood", SYNTAX)
    if kind == "choice":
        values = [v.strip() for v in body.split(",")]
        if not all(values):
            raise bad
        return Choice([_literal(v) for v in values])
    low, sep, high = body.partition("..")
    if kind not in _RANGES or not sep:
        raise bad
    cls, cast = _RANGES[kind]
    try:
        bounds = cast(low), cast(high)
    except ValueError:
        raise bad from None
    try:
        return cls(*bounds)
    except ConfigError as exc:  # name the entry, not just the range class
        raise ConfigError(f"search space entry {name}={spec!r}: {exc.problem}", SYNTAX) from None


def parse_space(space: SpaceSpec) -> dict[str, Param]:
    """Typed search space from ``NAME=SPEC`` strings (CLI) or a mapping (TOML, Python).

    A mapping's values may be typed params, spec strings, or lists (a choice).
    """
    if isinstance(space, Mapping):
        entries = dict(space)
    else:
        entries = {}
        for entry in [space] if isinstance(space, str) else space:
            name, sep, spec = str(entry).partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"search space entry {entry!r} is not NAME=SPEC", SYNTAX)
            entries[name.strip()] = spec
    parsed: dict[str, Param] = {}
    for name, spec in entries.items():
        if isinstance(spec, _Param):
            parsed[name] = spec
        elif isinstance(spec, str):
            parsed[name] = parse_param(name, spec)
        elif isinstance(spec, Sequence):
            parsed[name] = Choice(spec)
        else:
            raise ConfigError(f"search space entry {name}={spec!r} is not understood", SYNTAX)
    return parsed


def grid_points(space: Mapping[str, Param], seed: int) -> list[dict[str, Value]]:
    """Every combination, in a seeded random order (a cut-short grid still spreads out)."""
    names = list(space)
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n].grid(n) for n in names))
    ]
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]
