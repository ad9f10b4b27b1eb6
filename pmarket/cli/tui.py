"""``pmarket tui``: the trading terminal, against a running server or an embedded one.

Without ``--embedded`` it first checks that a server answers at ``--url`` and, if none
does, says so (and how to start one) instead of opening a terminal that cannot work.
With ``--embedded`` a database another exchange runs on is refused with one line
naming that process (exit status 3, as ``pmarket serve``).
"""

from __future__ import annotations

import typer

from pmarket.cli import app

DEFAULT_URL = "http://127.0.0.1:8000"
"""The client's ``DEFAULT_URL`` (``pmarket.client.http``; tests/cli/test_outputs.py checks
they agree), not imported: every command loads this module, and ``pmarket.client`` loads
the API's models, most of a second of start-up."""


@app.command("tui")
def tui(
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="PMARKET_URL",
                            help="Base URL of the pmarket server."),
    embedded: bool = typer.Option(False, "--embedded",
                                  help="Start a whole exchange in this process."),
    database: str = typer.Option("pmarket.db", "--database",
                                 help="SQLite file of the embedded exchange."),
    api_key: str = typer.Option(None, "--api-key", envvar="PMARKET_API_KEY",
                                help="Act with this API key (pmk_...) instead of signing "
                                     "in."),
) -> None:
    """Open the trading terminal (keys: F1 for help)."""
    from pmarket.client import Client, ClientError
    from pmarket.tui import TradingApp

    server = None
    if embedded:
        from pmarket.server.dblock import DatabaseLocked
        from pmarket.tui.embedded import EmbeddedServer

        try:
            server = EmbeddedServer(database)
            server.start()
        except DatabaseLocked as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None
        except Exception as exc:
            typer.echo(f"error: the embedded exchange did not start: {exc}", err=True)
            raise typer.Exit(1) from None
        url = server.url
    else:
        try:
            with Client(url, timeout=3) as probe:
                probe.health()
        except ClientError as exc:
            typer.echo(f"No pmarket server answers at {url} ({exc}).\n"
                       "Start one with `pmarket serve`, or run `pmarket tui --embedded` "
                       "to start an exchange inside the terminal.", err=True)
            raise typer.Exit(1) from None
    try:
        TradingApp(url, api_key=api_key or None).run()
    finally:
        if server is not None:
            server.stop()
