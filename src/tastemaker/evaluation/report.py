"""Evaluation results that carry their provenance: which data, which split, which model.

A number without the data hash and the model's configuration cannot be reproduced
or compared, so :class:`EvaluationReport` stores them next to the metrics and
:func:`leaderboard_markdown` refuses to put results on different data in one table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tastemaker.atomic import write_text
from tastemaker.data.dataset import Split
from tastemaker.errors import ConfigError, DataError
from tastemaker.reporting.markdown import format_cell, markdown_table
from tastemaker.reporting.values import is_missing, plural

JSON_NAME, MARKDOWN_NAME = "metrics.json", "metrics.md"


def _version() -> str:
    import tastemaker  # at call time: the package imports this module while it loads

    return tastemaker.__version__


class EvaluationReport(BaseModel):
    """The metrics of one model on one split part, with everything needed to reproduce them."""

    dataset: str
    split_kind: str
    seed: int | None
    data_hash: str
    part: Literal["valid", "test"]
    model: str
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float]
    ks: list[int]
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    version: str = Field(default_factory=_version)

    @classmethod
    def from_split(
        cls,
        split: Split,
        part: Literal["valid", "test"],
        model: str,
        config: dict[str, Any],
        metrics: dict[str, float],
        ks: list[int],
    ) -> EvaluationReport:
        """A report whose data provenance is read from the split's manifest."""
        info = split.manifest.split
        if info is None:
            raise DataError(
                f"the split of '{split.manifest.name}' has no split information in its manifest",
                "re-create it with `tastemaker data prepare` (or experiment.prepare)",
            )
        return cls(
            dataset=split.manifest.name,
            split_kind=info.kind,
            seed=info.seed,
            data_hash=info.content_hash,
            part=part,
            model=model,
            config=config,
            metrics=metrics,
            ks=ks,
        )

    def metric_names(self) -> list[str]:
        """Metric names without the ``@K`` suffix, in first-seen order."""
        return list(dict.fromkeys(key.split("@")[0] for key in self.metrics if "@" in key))

    def to_markdown(self) -> str:
        """A human-readable summary: provenance, then one row per metric, one column per K."""
        table = markdown_table(
            ["metric", *(f"@{k}" for k in self.ks)],
            [
                [name, *(self.metrics.get(f"{name}@{k}") for k in self.ks)]
                for name in self.metric_names()
            ],
        )
        extra = [f"- {key}: {value:g}" for key, value in self.metrics.items() if "@" not in key]
        return "\n".join(
            [
                f"# {self.model} on {self.dataset} ({self.part})",
                "",
                f"- split: {self.split_kind}, seed {self.seed}",
                f"- data hash: `{self.data_hash}`",
                f"- evaluated: {self.timestamp.isoformat(timespec='seconds')} "
                f"with tastemaker {self.version}",
                *extra,
                "",
                table,
                "",
                "## Model configuration",
                "",
                "```json",
                json.dumps(self.config, indent=2, sort_keys=True, default=str),
                "```",
                "",
            ]
        )

    def write(self, folder: Path) -> Path:
        """Write ``metrics.json`` and ``metrics.md`` into ``folder``, each atomically."""
        folder = Path(folder)
        write_text(folder / JSON_NAME, self.model_dump_json(indent=2) + "\n")
        write_text(folder / MARKDOWN_NAME, self.to_markdown())
        return folder

    @classmethod
    def read(cls, path: Path) -> EvaluationReport:
        """Load a ``metrics.json`` (or the folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / JSON_NAME
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(f"{path} is missing", "point to a folder with a run's results") from exc
        except ValidationError as exc:
            raise DataError(
                f"{path} is not a valid evaluation report ({plural(exc.error_count(), 'problem')})",
                "re-run the evaluation to re-create it",
            ) from exc


def leaderboard_markdown(reports: list[EvaluationReport], columns: list[str]) -> str:
    """One Markdown row per model, the best value of each column in bold.

    Every column is a "higher is better" metric key such as ``"ndcg@10"``. All
    reports must share the data (hash), seed and part, which are stated once above
    the table; mixing them would compare numbers that are not comparable.
    """
    if not reports:
        raise DataError("no evaluation reports to tabulate", "evaluate at least one model")
    if not columns:
        raise ConfigError("no leaderboard columns given", "pass metric keys such as 'ndcg@10'")
    known = sorted({key for report in reports for key in report.metrics})
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise ConfigError(
            f"no report has the metric(s) {', '.join(unknown)}",
            f"choose columns from {', '.join(known)}",
        )
    first = reports[0]
    provenance = ("dataset", "split_kind", "seed", "data_hash", "part")
    for report in reports[1:]:
        differing = [f for f in provenance if getattr(report, f) != getattr(first, f)]
        if differing:
            raise DataError(
                f"model '{report.model}' was evaluated on other data than '{first.model}' "
                f"(different {', '.join(differing)})",
                "put only results on the same split and part in one leaderboard",
            )
    measured = {c: [v for r in reports if not is_missing(v := r.metrics.get(c))] for c in columns}
    best = {c: max(values, default=None) for c, values in measured.items()}

    def cell(report: EvaluationReport, column: str) -> str | None:
        value = report.metrics.get(column)
        if is_missing(value):
            return None  # markdown_table shows it as "–"
        return f"**{format_cell(value)}**" if value == best[column] else format_cell(value)

    table = markdown_table(
        ["model", *columns], [[r.model, *(cell(r, c) for c in columns)] for r in reports]
    )
    return (
        f"Data: {first.dataset}, {first.split_kind} split, part {first.part}, "
        f"seed {first.seed}, data hash `{first.data_hash[:12]}`\n\n{table}\n"
    )
