"""``pmarket worker``: project one shard's events into the database; ``dlq`` handles
the deliveries it gave up on.

The worker migrates the database first (``pmarket db upgrade``), then runs until
SIGTERM or SIGINT; a kill -9 loses nothing (it resumes from the position committed with
its rows).
"""

from __future__ import annotations

import asyncio
import logging

import typer
from rich.console import Console
from rich.table import Table

from pmarket.cli import app
from pmarket.cli.engine import (
    PREFIX_HELP,
    REDIS_DEFAULT,
    REDIS_URL_HELP,
    configure_logging,
    run_until_signal,
)

worker_app = typer.Typer(help="The database worker and its dead letters.")
app.add_typer(worker_app, name="worker")
dlq_app = typer.Typer(help="Deliveries the worker dead-lettered.", no_args_is_help=True)
worker_app.add_typer(dlq_app, name="dlq")

DATABASE_URL_HELP = ("SQLAlchemy URL (postgresql+psycopg://... or sqlite:///...); default: "
                     "$PMARKET_DATABASE_URL, else ./pmarket.db")


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    redis_url: str = typer.Option(REDIS_DEFAULT, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help=REDIS_URL_HELP),
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_URL_HELP),
    shard: str = typer.Option("main", "--shard", envvar="PMARKET_SHARD",
                              help="The shard whose event stream to project."),
    prefix: str = typer.Option("pmarket", "--prefix", envvar="PMARKET_REDIS_PREFIX",
                               help=PREFIX_HELP),
    consumer: str = typer.Option("worker-1", help="This process's name in the group "
                                 "(keep it stable: a restart resumes its pending work)."),
    batch_size: int = typer.Option(500, help="Most deliveries per transaction."),
    log_level: str = typer.Option("info", help="Logging level."),
) -> None:
    """Run the worker (without a subcommand), or pass the options on to one."""
    ctx.obj = {"redis_url": redis_url, "prefix": prefix, "shard": shard}
    if ctx.invoked_subcommand is not None:
        return
    from pmarket.bus import make_bus
    from pmarket.db import default_database_url, make_engine, upgrade
    from pmarket.worker import Worker

    configure_logging(log_level)
    url = database_url or default_database_url()
    upgrade(url)
    db = make_engine(url)

    async def main(stop: asyncio.Event) -> None:
        bus = make_bus(redis_url, prefix=prefix, shard=shard)
        try:
            work = Worker(bus, db, consumer=consumer, batch_size=batch_size)
            await work.run(stop)
            logging.getLogger(__name__).info("worker %s stopped: %s", consumer, work.stats)
        finally:
            await bus.close()
            db.dispose()

    run_until_signal(main)


def _with_bus(ctx: typer.Context, action):
    from pmarket.bus import make_bus

    async def main():
        bus = make_bus(ctx.obj["redis_url"], prefix=ctx.obj["prefix"],
                       shard=ctx.obj["shard"])
        try:
            return await action(bus)
        finally:
            await bus.close()

    return asyncio.run(main())


@dlq_app.command("list")
def dlq_list(ctx: typer.Context,
             limit: int = typer.Option(100, help="Show at most this many.")) -> None:
    """List the dead-lettered deliveries, oldest first, with the reason."""
    from pmarket.worker import WORKER_GROUP

    letters = _with_bus(ctx, lambda bus: bus.dead_letters(
        bus.events_stream(), WORKER_GROUP, count=limit))
    if not letters:
        Console().print("no dead letters")
        return
    table = Table(title=f"dead letters of the worker ({len(letters)})")
    for col in ("id", "message", "deliveries", "error"):
        table.add_column(col)
    for letter in letters:
        table.add_row(letter.id, letter.message_id, str(letter.deliveries), letter.error)
    Console().print(table)


@dlq_app.command("retry")
def dlq_retry(ctx: typer.Context,
              ids: list[str] = typer.Argument(None, help="Dead-letter ids (see list)."),
              all_: bool = typer.Option(False, "--all", help="Retry every dead letter.")
              ) -> None:
    """Send dead letters back to the event stream; the worker applies them late."""
    from pmarket.worker import WORKER_GROUP

    if not ids and not all_:
        typer.echo("name dead-letter ids or pass --all", err=True)
        raise typer.Exit(2)

    async def retry(bus) -> list[tuple[str, str]]:
        stream = bus.events_stream()
        chosen = ids or [d.id for d in await bus.dead_letters(stream, WORKER_GROUP,
                                                               count=1_000_000)]
        done = []
        for dead_id in chosen:
            try:
                done.append((dead_id, await bus.retry_dead_letter(stream, WORKER_GROUP,
                                                                  dead_id)))
            except KeyError:
                typer.echo(f"no dead letter {dead_id}", err=True)
        return done

    for dead_id, new_id in _with_bus(ctx, retry):
        typer.echo(f"{dead_id} -> {new_id}")
