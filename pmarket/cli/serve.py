"""``pmarket serve``: the HTTP API (and, with no Redis, the whole exchange) on uvicorn.

Without ``--redis-url`` / ``PMARKET_REDIS_URL`` this one process is the exchange: server,
engine service and worker over the in-process bus and a SQLite file in the working
directory. With them it is one of several processes beside ``pmarket engine`` and
``pmarket worker``.

Before anything else it takes the database's lock (embedded only: one exchange per
database) and binds its port; either refusal is one line on stderr and a non-zero exit
(``EXIT_DATABASE_IN_USE``, ``EXIT_PORT_UNAVAILABLE``), with nothing migrated or recovered.
"""

from __future__ import annotations

import logging

import typer

from pmarket.cli import app

EXIT_STARTUP_FAILED = 1
EXIT_BAD_CONFIGURATION = 2
EXIT_DATABASE_IN_USE = 3
EXIT_PORT_UNAVAILABLE = 4


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
    from pmarket.server.dblock import DatabaseLock, DatabaseLocked, acquire_database_lock
    from pmarket.server.listener import PortUnavailable, bind_listener

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(database_url=database_url, redis_url=redis_url,
                                 bus_prefix=prefix, log_requests=access_log)
    except WeakSecret as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_CONFIGURATION) from None
    lock: DatabaseLock | None = None
    try:
        if settings.embedded:
            lock = acquire_database_lock(settings.database_url)
        sock = bind_listener(host, port)
    except DatabaseLocked as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_DATABASE_IN_USE) from None
    except PortUnavailable as exc:
        if lock is not None:
            lock.release()
        typer.echo(f"error: {exc.strerror}", err=True)
        raise typer.Exit(EXIT_PORT_UNAVAILABLE) from None
    except Exception as exc:  # the lock file or the database cannot be reached
        typer.echo(f"error: cannot lock the database {_shown(settings.database_url)}: "
                   f"{type(exc).__name__}: {exc}".splitlines()[0], err=True)
        raise typer.Exit(EXIT_STARTUP_FAILED) from None
    mode = "embedded (engine and worker in this process)" if settings.embedded \
        else f"deployment (bus {_shown(settings.redis_url)})"
    typer.echo(f"pmarket: serving http://{host}:{sock.getsockname()[1]} (docs at /docs), "
               f"{mode}, database {_shown(settings.database_url)}", err=True)
    application = create_app(settings)
    application.state.runtime.lock = lock  # held from here until the runtime stops
    config = uvicorn.Config(application, host=host, port=port, loop="uvloop",
                            http="httptools", ws="websockets-sansio",
                            ws_per_message_deflate=False,  # CPU per message
                            log_level=log_level.lower(), access_log=False,
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if lock is not None:
            lock.release()
    if not server.started:  # the lifespan failed (logged by uvicorn)
        raise typer.Exit(EXIT_STARTUP_FAILED)


def _shown(url: str) -> str:
    """``url`` without its password (it goes to logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
