"""The ``tastemaker`` command: a thin Typer shell over :mod:`tastemaker.experiment`.

A :class:`~tastemaker.errors.TastemakerError` anywhere below becomes one line on
stderr and exit code 2; anything else is a bug and keeps its traceback.

The command modules import torch, polars and the other heavy libraries inside the
commands, never at module level, and their options use plain types: ``--help`` and
the commands that do not train start without them (tests/test_cli_imports.py;
timed by benchmarks/cli_startup.py).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from tastemaker.errors import TastemakerError


class _Group(TyperGroup):
    """Root group: turns user errors into a one-line message and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TastemakerError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=_Group,
    help="Multimodal recommendation and personalized generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each command group lives in its own module; importing them here keeps the
    # import graph explicit (no plugin scanning).
    from tastemaker.cli import data, demo, models, tune

    app.add_typer(data.app, name="data")
    app.command("datasets")(data.datasets)
    app.command("train")(models.train)
    app.command("evaluate")(models.evaluate)
    app.command("recommend")(models.recommend)
    app.command("demo")(demo.demo)
    app.command("tune")(tune.tune)
    app.command("report")(tune.report)

    from tastemaker.cli import pretrain

    app.add_typer(pretrain.app, name="pretrain")

    from tastemaker.cli import generate, generation_eval

    app.add_typer(generate.app, name="generate")
    app.command("evaluate-generation")(generation_eval.evaluate_generation)

    from tastemaker.cli import text
    from tastemaker.cli.text_finetune import finetune_command

    text.app.command("finetune")(finetune_command)
    app.add_typer(text.app, name="text")
    app.command("explain")(text.explain)

    from tastemaker.cli import serve

    app.command("serve")(serve.serve)

    from tastemaker.cli import unimp

    app.add_typer(unimp.app, name="unimp")

    from tastemaker.cli import distributed

    app.add_typer(distributed.app, name="ray")


_register()


def main() -> None:
    app()
