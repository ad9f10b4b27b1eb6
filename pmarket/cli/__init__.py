"""The ``pmarket`` command line: thin Typer commands that call into the package."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pmarket",
    help="pmarket: a prediction-market exchange.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks: figures for the engine, the services and HTTP.")
app.add_typer(bench_app, name="bench")


def main() -> None:
    """Entry point of the ``pmarket`` console script."""
    from pmarket.cli import bench  # noqa: F401  (registers commands)

    app()
