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

from pmarket import cli
from pmarket.cli import app
from pmarket.cli.failures import (
    EXIT_BAD_CONFIGURATION,
    EXIT_DATABASE_IN_USE,
    EXIT_FAILED,
    describe,
)
from pmarket.cli.preflight import check_database_url, require, require_redis

EXIT_STARTUP_FAILED = EXIT_FAILED
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
    from pmarket.server.connections import server_options
    from pmarket.server.dblock import (
        DatabaseLock,
        DatabaseLocked,
        ForeignDatabase,
        acquire_database_lock,
    )
    from pmarket.server.listener import PortUnavailable, bind_listener

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(database_url=database_url, redis_url=redis_url,
                                 bus_prefix=prefix, log_requests=access_log)
    except (WeakSecret, ValueError) as exc:  # a weak secret, a PMARKET_* value out of range
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_CONFIGURATION) from None
    check_database_url(settings.database_url)
    if not settings.embedded:  # embedded: taking the database's lock connects to it
        require(database_url=settings.database_url)
        _warn_if_redis_is_down(settings.redis_url)
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
    # Anything else (a database that cannot be reached, a malformed URL) is said by the
    # command line's failure handling (pmarket.cli.failures).
    mode = f"embedded (engine and worker in this process, {_engine_build()})" \
        if settings.embedded else f"deployment (bus {_shown(settings.redis_url)})"
    typer.echo(f"pmarket: serving http://{host}:{sock.getsockname()[1]} (docs at /docs), "
               f"{mode}, database {_shown(settings.database_url)}", err=True)
    application = create_app(settings)
    application.state.runtime.lock = lock  # held from here until the runtime stops
    quiet = _StartupTraceback()  # the failure is said below, once, in its own words
    if not cli.debug:
        logging.getLogger("uvicorn.error").addFilter(quiet)
    config = uvicorn.Config(application, host=host, port=port, loop="uvloop",
                            ws_per_message_deflate=False,  # CPU per message
                            log_level=log_level.lower(), access_log=False,
                            timeout_graceful_shutdown=10,
                            # connection limits, read deadline, X-Forwarded-For policy
                            **server_options(application))
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn stops cleanly on Ctrl+C, then raises it again: a server stopped so
        # exits 0. Interrupted before it started, it is an interruption (130).
        if not server.started:
            raise
    except SystemExit:
        # uvicorn exits (its status 3) when the lifespan fails: said below, in our words
        # and with our status, unless it had started.
        if server.started:
            raise
    finally:
        sock.close()
        if lock is not None:
            lock.release()
    if not server.started:  # the lifespan failed: the runtime could not start
        error = getattr(application.state, "startup_error", None)
        if isinstance(error, ForeignDatabase):
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(EXIT_DATABASE_IN_USE)
        if error is not None and (cli.debug or describe(error) is not None):
            raise error  # said in one or two lines (or, with --debug, its traceback)
        if error is not None or quiet.dropped:  # a bug: its traceback after all
            typer.echo(quiet.dropped or repr(error), err=True)
        raise typer.Exit(EXIT_STARTUP_FAILED)


class _StartupTraceback(logging.Filter):
    """Holds back the traceback uvicorn logs when the app's lifespan fails: the command
    says what failed in a line or two instead (or shows it, for a bug)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Traceback (most recent call last)"):
            self.dropped = message
            return False
        return True


def _engine_build() -> str:
    """Which engine this process runs, for the line that says what is served."""
    from pmarket.runtime import compiled

    if compiled.mode == "compiled":
        return "engine compiled with mypyc"
    return f"engine pure Python: {compiled.reason}"


def _shown(url: str) -> str:
    """``url`` without its password (it goes to logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _warn_if_redis_is_down(url: str) -> None:
    """A deployment server starts while Redis is down — degraded (``/health`` 503,
    writes 503 with Retry-After) — and heals when it answers (docs/SERVICES.md), so that
    servers and Redis may start in any order. It says so in one line, not a traceback."""
    try:
        require_redis(url)
    except Exception as exc:
        failure = describe(exc)
        if failure is None:
            raise
        typer.echo(f"warning: {failure.message}; serving degraded until it answers "
                   "(/health says so)", err=True)
