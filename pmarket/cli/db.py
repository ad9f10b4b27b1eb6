"""``pmarket db ...``: migrate the database and compare it with the engine."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from pmarket.cli import app
from pmarket.cli.failures import describe, first_line

db_app = typer.Typer(help="Database: migrations and reconciliation with the engine.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")

DATABASE_URL_HELP = ("SQLAlchemy URL (postgresql+psycopg://... or sqlite:///...); default: "
                     "$PMARKET_DATABASE_URL, else ./pmarket.db")


def _url(url: str | None) -> str:
    from pmarket.db import default_database_url

    return url or default_database_url()


def _shown(url: str) -> str:
    from pmarket.db import normalize_url

    return normalize_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Apply every pending migration (safe to run repeatedly and concurrently)."""
    from pmarket.db import upgrade as run_upgrade

    url = _url(database_url)
    try:
        at = run_upgrade(url, revision)
    except Exception as exc:  # report any driver/migration failure as a sentence
        if describe(exc) is not None:
            raise  # said by the command line (pmarket.cli.failures)
        typer.echo(f"error: upgrade of {_shown(url)} failed: {first_line(str(exc))}",
                   err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{_shown(url)} is at revision {at}")


@db_app.command("current")
def current(
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
) -> None:
    """Show the database's revision and the newest one this package ships."""
    from pmarket.db import current_revision, head_revision, make_engine

    engine = make_engine(_url(database_url))
    try:
        at = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"database: {at or 'not migrated'}; package head: {head_revision()}")


@db_app.command("reconcile")
def reconcile(
    snapshot: Path = typer.Option(..., "--snapshot", exists=True, dir_okay=False,
                                  help="Engine snapshot (JSON from Engine.snapshot())."),
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    limit: int = typer.Option(50, help="Print at most this many differences."),
) -> None:
    """Compare an engine snapshot with the database; exit 1 if anything differs."""
    from rich.console import Console

    from pmarket.db import make_engine
    from pmarket.db.reconcile import reconcile as run_reconcile
    from pmarket.engine import Engine

    try:
        state = Engine.restore(orjson.loads(snapshot.read_bytes()))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        typer.echo(f"error: {snapshot} is not an engine snapshot ({type(exc).__name__}: "
                   f"{first_line(str(exc))})", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(_url(database_url))
    try:
        with engine.connect() as conn:
            differences = run_reconcile(state, conn)
    finally:
        engine.dispose()
    console = Console()
    if not differences:
        console.print("[green]database matches the engine[/]")
        return
    for difference in differences[:limit]:
        console.print(str(difference), markup=False)
    more = len(differences) - limit
    console.print(f"[red]{len(differences)} difference(s)[/]"
                  + (f" ({more} not shown)" if more > 0 else ""))
    raise typer.Exit(1)
