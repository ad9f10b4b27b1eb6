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
                                 help="Password (8 to 72 bytes)."),
    database_url: str = typer.Option(None, "--database-url", envvar="PMARKET_DATABASE_URL",
                                     help="SQLAlchemy URL (default: sqlite pmarket.db here)."),
) -> None:
    """Create an admin account in the database (migrating it first if needed)."""
    from pmarket.db import default_database_url, make_engine, upgrade
    from pmarket.server import create_admin

    if not 8 <= len(password.encode()) <= 72:
        typer.echo("error: the password must be 8 to 72 bytes long", err=True)
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
