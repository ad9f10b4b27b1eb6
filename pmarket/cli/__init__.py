"""The ``pmarket`` command line: thin Typer commands that call into the package.

Each module of this package registers its commands on ``app`` (or a sub-app) when
imported; ``main`` imports them all, so adding a command is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="pmarket",
    help="pmarket: a prediction-market exchange.",
    no_args_is_help=True,
    add_completion=False,
)


def load_commands() -> typer.Typer:
    """Import every command module of this package and return the app."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return app


def main() -> None:
    """Entry point of the ``pmarket`` console script."""
    load_commands()()
