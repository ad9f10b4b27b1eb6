"""``pmarket serve``: the HTTP API (and, with no Redis, the whole exchange) on uvicorn.

Without ``--redis-url`` / ``PMARKET_REDIS_URL`` this one process is the exchange: server,
engine service and worker over the in-process bus and a SQLite file in the working
directory. With them it is one of several processes beside ``pmarket engine`` and
``pmarket worker``.
"""

from __future__ import annotations

import logging

import typer

from pmarket.cli import app


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    database_url: str = typer.Option(None, "--database-url", envvar="PMARKET_DATABASE_URL",
                                     help="SQLAlchemy URL (default: sqlite pmarket.db here)."),
    redis_url: str = typer.Option(None, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help="Redis URL of the bus; unset: embedded exchange."),
    prefix: str = typer.Option(None, "--prefix", envvar="PMARKET_REDIS_PREFIX",
                               help="First segment of every bus key."),
    log_level: str = typer.Option("info", "--log-level", help="Logging level."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="One JSON log line per request."),
) -> None:
    """Serve the HTTP API at http://HOST:PORT (docs at /docs)."""
    import uvicorn

    from pmarket.server import Settings, WeakSecret, create_app

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(database_url=database_url, redis_url=redis_url,
                                 bus_prefix=prefix, log_requests=access_log)
    except WeakSecret as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    mode = "embedded (engine and worker in this process)" if settings.embedded \
        else f"deployment (bus {settings.redis_url})"
    typer.echo(f"pmarket: serving http://{host}:{port} (docs at /docs), {mode}, "
               f"database {settings.database_url}", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, loop="uvloop", http="httptools",
                ws="websockets-sansio", ws_per_message_deflate=False,  # CPU per message
                log_level=log_level.lower(), access_log=False,
                timeout_graceful_shutdown=10)
