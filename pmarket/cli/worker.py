"""``pmarket worker``: project one shard's events into the database; ``dlq`` handles
what it could not store.

The worker first takes its lock on the database (``pmarket.server.dblock``: shared with
the workers of other shards, exclusive for its shard, excluding an embedded exchange):
a second worker of the shard, or one started beside an embedded exchange, exits with
status 3 naming the holder, before anything is written. It then migrates the database
(``pmarket db upgrade``), takes over whatever deliveries a stopped worker left pending,
and runs until SIGTERM or SIGINT; a kill -9 loses nothing (it resumes from the position
committed with its rows).

``pmarket worker dlq list|replay|clear`` works on the database's parked events and
skipped commands (``pmarket.worker.parked``) and, when a Redis URL is given (option or
``PMARKET_REDIS_URL``), on the bus's dead letters of the worker group, which older
versions wrote. Ids: a number is a parked event, ``skipped:<first seq>`` a range of
skipped commands, ``<ms>-<n>`` a dead letter. Every expected failure is one line on
stderr and a non-zero exit: 1 when something could not be done, 2 for a wrong call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import typer

from pmarket.cli import app
from pmarket.cli.engine import (
    PREFIX_HELP,
    REDIS_DEFAULT,
    REDIS_URL_HELP,
    configure_logging,
    run_until_signal,
)
from pmarket.cli.preflight import require

worker_app = typer.Typer(help="The database worker and what it could not store.")
app.add_typer(worker_app, name="worker")
dlq_app = typer.Typer(help="Parked events, skipped commands and dead letters: list, replay "
                           "(after a fix) and clear them.", no_args_is_help=True)
worker_app.add_typer(dlq_app, name="dlq")

DATABASE_URL_HELP = ("SQLAlchemy URL (postgresql+psycopg://... or sqlite:///...); default: "
                     "$PMARKET_DATABASE_URL, else ./pmarket.db")
DLQ_REDIS_HELP = ("Redis URL of the bus, to include its dead letters (older versions wrote "
                  "them); default: $PMARKET_REDIS_URL, else the bus is not consulted.")
IDS_HELP = ("Parked event numbers, skipped:<first seq> ranges or dead-letter ids "
            "(see list).")

_DEAD_LETTER_ID = re.compile(r"^\d+-\d+$")


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    redis_url: str = typer.Option(None, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help=f"{REDIS_URL_HELP} [default: {REDIS_DEFAULT}]"),
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
    ctx.obj = {"redis_url": redis_url, "prefix": prefix, "shard": shard,
               "database_url": database_url}
    if ctx.invoked_subcommand is not None:
        return
    from pmarket.bus import make_bus
    from pmarket.cli.failures import EXIT_DATABASE_IN_USE
    from pmarket.db import default_database_url, make_engine, upgrade
    from pmarket.server.dblock import DatabaseLocked, LockGuard, acquire_database_lock
    from pmarket.worker import Worker

    url = database_url or default_database_url()
    require(redis_url=redis_url or REDIS_DEFAULT, database_url=url)
    configure_logging(log_level)
    try:
        lock = acquire_database_lock(url, worker_shard=shard)
    except DatabaseLocked as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_DATABASE_IN_USE) from None
    try:
        upgrade(url)
        db = make_engine(url)

        async def main(stop: asyncio.Event) -> None:
            def lost(reason: str) -> None:  # two workers must never split one stream
                logging.getLogger(__name__).critical("stopping the worker: %s", reason)
                stop.set()

            guard = asyncio.create_task(LockGuard(lock, url, lost).run(stop))
            bus = make_bus(redis_url or REDIS_DEFAULT, prefix=prefix, shard=shard)
            try:
                work = Worker(bus, db, consumer=consumer, batch_size=batch_size, sole=True)
                await work.run(stop)
                logging.getLogger(__name__).info("worker %s stopped: %s", consumer,
                                                 work.stats)
            finally:
                stop.set()
                await guard
                await bus.close()
                db.dispose()

        run_until_signal(main)
    finally:
        lock.release()


_DB_OPTION = typer.Option(None, "--database-url", help=DATABASE_URL_HELP)
_REDIS_OPTION = typer.Option(None, "--redis-url", help=DLQ_REDIS_HELP)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"pmarket worker dlq: {message}", err=True)
    return typer.Exit(code)


class _Target:
    """The database (and the bus, if one was named) a dlq command works on."""

    def __init__(self, ctx: typer.Context, database_url: str | None, redis_url: str | None):
        from pmarket.db import default_database_url, normalize_url

        parent = ctx.obj or {"redis_url": None, "prefix": "pmarket", "shard": "main",
                             "database_url": None}
        self.obj = {**parent, "redis_url": redis_url or parent["redis_url"]}
        self.url = database_url or parent["database_url"] or default_database_url()
        self.shown = normalize_url(self.url).render_as_string(hide_password=True)
        self.db = None

    def __enter__(self) -> _Target:
        from sqlalchemy.engine import make_url

        from pmarket.db import current_revision, head_revision, make_engine

        parsed = make_url(self.url)
        if (parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
                and not Path(parsed.database).is_file()):
            raise _fail(f"no database at {parsed.database}")
        try:
            self.db = make_engine(self.url)
            at = current_revision(self.db)
        except Exception as exc:
            raise _fail(f"cannot read the database {self.shown}: {_line(exc)}") from None
        if at != head_revision():
            raise _fail(f"the database {self.shown} is at revision {at or 'none'}, not "
                        f"{head_revision()}: run `pmarket db upgrade` first")
        return self

    def __exit__(self, *exc) -> None:
        if self.db is not None:
            self.db.dispose()

    def database(self, action, *args):
        """Run ``action(db, *args)``; a database failure is one line and exit 1."""
        try:
            return action(self.db, *args)
        except typer.Exit:
            raise
        except Exception as exc:
            raise _fail(f"database {self.shown}: {_line(exc)}") from None

    def bus(self, action):
        """Run ``action(bus)`` against the bus; None when no Redis URL was given."""
        if not self.obj["redis_url"]:
            return None
        from pmarket.bus import make_bus

        async def main():
            bus = make_bus(self.obj["redis_url"], prefix=self.obj["prefix"],
                           shard=self.obj["shard"])
            try:
                return await action(bus)
            finally:
                await bus.close()

        try:
            return asyncio.run(main())
        except typer.Exit:
            raise
        except Exception as exc:
            raise _fail(f"bus at {self.obj['redis_url']}: {_line(exc)}") from None


def _log_to_stderr() -> None:
    """Log lines (what was replayed or cleared) to stderr, without migration chatter."""
    configure_logging("info")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def _parse_ids(ids: list[str] | None) -> tuple[list[int], list[int], list[str]]:
    parked, skipped, letters = [], [], []
    for raw in ids or ():
        if raw.isdigit():
            parked.append(int(raw))
        elif raw.startswith("skipped:") and raw[8:].isdigit():
            skipped.append(int(raw[8:]))
        elif _DEAD_LETTER_ID.match(raw):
            letters.append(raw)
        else:
            raise _fail(f"{raw!r} is not an id: a parked event number (12), "
                        "skipped:<first seq> or a dead-letter id (1732540000000-0)", 2)
    return parked, skipped, letters


def _chosen(ids: list[str] | None, all_: bool, verb: str):
    if bool(ids) == all_:
        raise _fail(f"name the ids to {verb} or pass --all (not both)", 2)
    return _parse_ids(ids) if ids else (None, None, None)


async def _letters(bus, limit: int = 1_000_000):
    from pmarket.worker import WORKER_GROUP

    return await bus.dead_letters(bus.events_stream(), WORKER_GROUP, count=limit)


@dlq_app.command("list")
def dlq_list(ctx: typer.Context,
             limit: int = typer.Option(100, help="Show at most this many of each kind."),
             as_json: bool = typer.Option(False, "--json", help="One JSON object."),
             database_url: str = _DB_OPTION, redis_url: str = _REDIS_OPTION) -> None:
    """Show parked events, skipped commands and dead letters, oldest first."""
    from pmarket.worker import parked

    with _Target(ctx, database_url, redis_url) as target:
        rows = target.database(parked.list_parked, limit)
        skipped = target.database(parked.list_skipped)
        found = target.database(parked.summary)
        letters = target.bus(lambda bus: _letters(bus, limit))
    if as_json:
        typer.echo(json.dumps({
            "parked": [json.loads(parked.record(r)) for r in rows],
            "skipped": [json.loads(parked.record(r)) for r in skipped],
            "dead_letters": None if letters is None else [
                {"id": d.id, "message_id": d.message_id, "error": d.error,
                 "deliveries": d.deliveries} for d in letters],
            "summary": {"parked": found.parked, "parked_deliveries": found.parked_deliveries,
                        "skipped_commands": found.skipped_commands}}))
        return
    if not rows and not skipped and not letters:
        typer.echo("nothing parked, nothing skipped"
                   + ("" if letters is not None else " (bus dead letters not checked: no "
                                                     "--redis-url)"))
        return
    for r in rows:
        where = (f"commands {r['first_seq']}..{r['last_seq']}" if r["first_seq"] is not None
                 else "commands unknown")
        what = (f"event {r['idx']} ({r['kind']})" if r["idx"] is not None
                else f"whole delivery, message {r['message_id']}")
        typer.echo(f"{r['id']}\t{what} of {where} on {r['stream']}; parked "
                   f"{r['parked_at']:%Y-%m-%d %H:%M:%S}, attempts {r['attempts']}: "
                   f"{r['error']}")
        if r["event"] is not None:
            typer.echo(f"\t{r['event'][:300]}")
    for s in skipped:
        typer.echo(f"skipped:{s['first_seq']}\tcommands {s['first_seq']}..{s['last_seq']} "
                   f"on {s['stream']} skipped {s['skipped_at']:%Y-%m-%d %H:%M:%S}: "
                   f"{s['error']}")
    for d in letters or ():
        typer.echo(f"{d.id}\tdead letter of message {d.message_id}, delivered "
                   f"{d.deliveries} times: {d.error}")
    typer.echo(f"{found.parked} event(s) parked, {found.parked_deliveries} delivery(ies) "
               f"parked whole, {found.skipped_commands} command(s) skipped"
               + ("" if letters is None else f", {len(letters)} dead letter(s)"))


@dlq_app.command("replay")
def dlq_replay(ctx: typer.Context,
               ids: list[str] = typer.Argument(None, help=IDS_HELP),
               all_: bool = typer.Option(False, "--all", help="Everything parked and every "
                                         "dead letter."),
               database_url: str = _DB_OPTION, redis_url: str = _REDIS_OPTION) -> None:
    """Project parked events again with this version's code (after a fix).

    Dead letters go back to the event stream for the worker. What fails again stays
    parked with the new error.
    """
    from pmarket.worker import parked

    _log_to_stderr()
    parked_ids, skipped, letters = _chosen(ids, all_, "replay")
    if skipped:
        raise _fail("skipped commands have no events to replay: replay the parked delivery "
                    "or dead letter that holds them, or clear them", 2)
    failed = missing = 0
    with _Target(ctx, database_url, redis_url) as target:
        if parked_ids is None or parked_ids:
            for outcome in target.database(parked.replay, parked_ids):
                if outcome.status == "stored":
                    typer.echo(f"{outcome.id}: stored" + (
                        f" ({outcome.parked} of its events parked on their own)"
                        if outcome.parked else ""))
                elif outcome.status == "failed":
                    failed += 1
                    typer.echo(f"{outcome.id}: fails again (attempt {outcome.attempts}): "
                               f"{outcome.error}", err=True)
                else:
                    missing += 1
                    typer.echo(f"no parked event {outcome.id}", err=True)
        if letters is None or letters:
            if not target.obj["redis_url"] and letters:
                raise _fail("dead letters live on the bus: pass --redis-url", 2)
            missing += _retry_letters(target, letters)
    if failed or missing:
        raise _fail(", ".join(part for part in (
            f"{failed} failed again (still parked)" if failed else "",
            f"{missing} not found" if missing else "") if part))


def _retry_letters(target: _Target, letters: list[str] | None) -> int:
    async def retry(bus) -> list[tuple[str, str | None]]:
        from pmarket.worker import WORKER_GROUP

        stream = bus.events_stream()
        chosen = letters if letters is not None else [d.id for d in await _letters(bus)]
        done = []
        for dead_id in chosen:
            try:
                done.append((dead_id, await bus.retry_dead_letter(stream, WORKER_GROUP,
                                                                  dead_id)))
            except KeyError:
                done.append((dead_id, None))
        return done

    missing = 0
    for dead_id, new_id in target.bus(retry) or ():
        if new_id is None:
            missing += 1
            typer.echo(f"{dead_id}: no such dead letter", err=True)
        else:
            typer.echo(f"{dead_id}: sent back to the event stream as {new_id}")
    return missing


# The command's name before parked events existed; it does what replay does.
dlq_app.command("retry", hidden=True)(dlq_replay)


@dlq_app.command("clear")
def dlq_clear(ctx: typer.Context,
              ids: list[str] = typer.Argument(None, help=IDS_HELP),
              all_: bool = typer.Option(False, "--all", help="Everything listed."),
              yes: bool = typer.Option(False, "--yes", help="Confirm: what is cleared is "
                                       "given up for good (the log keeps a copy)."),
              database_url: str = _DB_OPTION, redis_url: str = _REDIS_OPTION) -> None:
    """Give parked events, skipped commands or dead letters up for good.

    Each one cleared is written to the log (stderr) first.
    """
    from pmarket.worker import parked

    _log_to_stderr()
    parked_ids, skipped, letters = _chosen(ids, all_, "clear")
    if not yes:
        raise _fail("clearing gives them up for good; add --yes to confirm", 2)
    missing = 0
    with _Target(ctx, database_url, redis_url) as target:
        if parked_ids is None or parked_ids:
            gone = target.database(parked.clear, parked_ids)
            for row in gone:
                typer.echo(f"{row['id']}: cleared")
            missing += _report_missing(parked_ids, {r["id"] for r in gone}, "parked event")
        if skipped is None or skipped:
            gone = target.database(parked.clear_skipped, skipped)
            for row in gone:
                typer.echo(f"skipped:{row['first_seq']}: cleared")
            missing += _report_missing(skipped, {r["first_seq"] for r in gone},
                                       "skipped range starting at")
        if letters is None or letters:
            if not target.obj["redis_url"] and letters:
                raise _fail("dead letters live on the bus: pass --redis-url", 2)
            missing += _delete_letters(target, letters)
    if missing:
        raise _fail(f"{missing} not found")


def _report_missing(wanted: list | None, found: set, what: str) -> int:
    missing = [] if wanted is None else [w for w in wanted if w not in found]
    for item in missing:
        typer.echo(f"no {what} {item}", err=True)
    return len(missing)


def _delete_letters(target: _Target, letters: list[str] | None) -> int:
    log = logging.getLogger("pmarket.worker.parked")

    async def delete(bus) -> list[tuple[str, bool]]:
        from pmarket.worker import WORKER_GROUP

        stream = bus.events_stream()
        found = {d.id: d for d in await _letters(bus)}
        done = []
        for dead_id in letters if letters is not None else list(found):
            letter = found.get(dead_id)
            if letter is not None:
                log.warning("cleared dead letter %s for good: %s", dead_id, json.dumps({
                    "message_id": letter.message_id, "error": letter.error,
                    "payload": letter.payload.decode("utf-8", "backslashreplace")}))
            done.append((dead_id, await bus.delete_dead_letter(stream, WORKER_GROUP,
                                                               dead_id)))
        return done

    missing = 0
    for dead_id, existed in target.bus(delete) or ():
        if existed:
            typer.echo(f"{dead_id}: cleared")
        else:
            missing += 1
            typer.echo(f"no dead letter {dead_id}", err=True)
    return missing
