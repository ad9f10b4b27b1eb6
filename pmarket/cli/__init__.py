"""The ``pmarket`` command line: thin Typer commands that call into the package.

Each module of this package registers its commands on ``app`` (or a sub-app) when
imported; ``main`` imports them all, so adding a command is adding a module. Every run
pays for what those modules import at their top, so the heavy layers (the API's models,
the client, the simulator, the server, rich) are imported inside the commands that use
them: ``pmarket --help`` starts in a third of a second (tests/cli/test_startup.py).

Every command fails the same way: an expected failure (``failures.describe``: a database
or Redis that cannot be reached, a malformed URL, Ctrl+C, ...) is one or two lines on
stderr and a non-zero exit; anything else is a bug and shows its traceback. The global
``--debug`` shows the traceback of every failure; ``--version`` names the engine build.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer.core import TyperGroup

from .failures import EXIT_FAILED, EXIT_INTERRUPTED, Failure, describe

debug = False
"""``pmarket --debug``: tracebacks for expected failures too."""


class _Commands(TyperGroup):
    """The top-level group: turns an expected failure of any command, a wrong call
    included, into its lines."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            code = _say(Failure("aborted", code=EXIT_FAILED))
        except typer.exceptions.TyperException as exc:  # click's ClickException
            if type(exc).__name__ == "NoArgsIsHelpError":  # `pmarket` alone: the help
                exc.show()
                code = exc.exit_code
            else:  # a wrong call: what is wrong, and where the help is
                context = getattr(exc, "ctx", None)
                code = _say(Failure(exc.format_message(), (
                    f"see '{context.command_path} --help'" if context is not None else ""),
                    exc.exit_code))
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):  # Typer's own
            raise
        except BaseException as exc:  # KeyboardInterrupt included
            failure = describe(exc)
            if failure is None or debug:
                raise
            raise typer.Exit(_say(failure)) from None


def _say(failure: Failure) -> int:
    """Print ``failure`` on stderr; its exit code."""
    for line in failure.lines():
        typer.echo(line, err=True)
    return failure.code


app = typer.Typer(
    name="pmarket",
    help="pmarket: a prediction-market exchange.",
    no_args_is_help=True,
    add_completion=False,
    cls=_Commands,
    pretty_exceptions_enable=False,  # a bug's traceback is Python's own, for a bug report
)


def version_line() -> str:
    """``pmarket 0.1.0, engine compiled with mypyc`` or ``... engine pure Python (why)``."""
    from importlib.metadata import PackageNotFoundError, version

    from pmarket.runtime import compiled

    try:
        number = version("pmarket")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        number = "unknown"
    engine = ("engine compiled with mypyc" if compiled.mode == "compiled"
              else f"engine pure Python ({compiled.reason})")
    return f"pmarket {number}, {engine}, Python {sys.version.split()[0]}"


def _version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    debug_: bool = typer.Option(False, "--debug", help="Show the traceback of any failure "
                                "(expected ones are otherwise one or two lines)."),
    _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and which engine runs "
                                       "(compiled or pure Python), then exit."),
) -> None:
    """pmarket: a prediction-market exchange."""
    global debug
    debug = debug_


def load_commands() -> typer.Typer:
    """Import every command module of this package and return the app."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return app


def main() -> None:
    """Entry point of the ``pmarket`` console script."""
    try:
        load_commands()()
    except KeyboardInterrupt:  # before a command runs (while importing): the same line
        if debug:
            raise
        sys.exit(_say(Failure("interrupted", code=EXIT_INTERRUPTED)))
