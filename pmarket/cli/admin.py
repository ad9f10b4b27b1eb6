"""``pmarket admin create``: add an operator account (there is no public admin signup)."""

from __future__ import annotations

import typer

from pmarket.cli import app

admin_app = typer.Typer(help="Operator accounts.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@admin_app.command("create")
def create(
    email: str = typer.Option(..., "--email", help="The admin's email (their login)."),
    name: str = typer.Option(..., "--name", help="Display name."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 help="Password (10+ characters, not a common one)."),
    database_url: str = typer.Option(None, "--database-url", envvar="PMARKET_DATABASE_URL",
                                     help="SQLAlchemy URL (default: sqlite pmarket.db here)."),
) -> None:
    """Create an admin account in the database (migrating it first if needed)."""
    from pmarket.db import default_database_url, make_engine, upgrade
    from pmarket.engine.limits import account_problem
    from pmarket.server import create_admin
    from pmarket.server.passwords import password_problem

    problem = account_problem(email, name, password)  # the API's input limits, here too
    if problem is None:
        problem = password_problem(password, email)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    url = database_url or default_database_url()
    upgrade(url)
    db = make_engine(url)
    try:
        created = create_admin(db, email, name, password)
    finally:
        db.dispose()
    if not created:
        typer.echo(f"error: an admin with email {email} already exists", err=True)
        raise typer.Exit(1)
    typer.echo(f"admin {email} created")
