"""Model selection: hyper-parameter search on validation data.

``space`` is the search-space language, ``search`` runs the trials (Optuna
ask/tell), ``outputs`` writes what a search found. Training curves of saved models
live in :mod:`tastemaker.evaluation.training_curves`.
"""

from tastemaker.tuning.outputs import (
    BEST_JSON,
    BEST_MODEL,
    TRIALS_CSV,
    TRIALS_MD,
    TRIALS_PNG,
    format_params,
)
from tastemaker.tuning.search import Trial, TuneConfig, TuneResult, tune
from tastemaker.tuning.space import (
    SYNTAX,
    Choice,
    IntRange,
    LogUniform,
    Param,
    SpaceSpec,
    Uniform,
    Value,
    parse_param,
    parse_space,
)

__all__ = [
    "BEST_JSON",
    "BEST_MODEL",
    "SYNTAX",
    "TRIALS_CSV",
    "TRIALS_MD",
    "TRIALS_PNG",
    "Choice",
    "IntRange",
    "LogUniform",
    "Param",
    "SpaceSpec",
    "Trial",
    "TuneConfig",
    "TuneResult",
    "Uniform",
    "Value",
    "format_params",
    "parse_param",
    "parse_space",
    "tune",
]
