"""What the database knows it lacks, and how an operator sees, replays and clears it.

Two tables record the gaps between what the engine acknowledged and what the database
holds, both written by the worker in the transaction that moves its position:

* ``parked_events`` — events that failed on their own (``worker.salvage``) and bus
  entries parked whole (undecodable, or delivered again and again without an ack);
* ``skipped_deliveries`` — commands the worker stepped over (a hole that never arrived,
  a delivery parked whole).

``summary`` counts them (``/health``'s ``projection`` component, via
``projection_health``, which also counts the bus's legacy dead letters), ``list_parked``
and ``list_skipped`` show them, ``replay`` projects parked events again with the code
running now — after an operator's fix — and ``clear`` / ``clear_skipped`` give them up
for good, writing everything cleared to the log.

Invariants: a replay runs under the consumer position's lock, so it serialises with
the worker; each parked row is replayed in a transaction of its own, in parking order
(a dependant after what it depends on), as a replay (``Batch(replay=True)``: ``seq``
guards keep newer state, quantities the database already has are kept, market figures
and candles are recounted from the stored trades); a row is deleted only in the
transaction that stored its event, and a replay that fails again keeps it with the new
error and ``attempts`` + 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, select, update

from pmarket.db.models import ParkedEvent, SkippedDelivery
from pmarket.db.types import utcnow
from pmarket.runtime.eventlog import Delivery, DeliveryError, decode_delivery, decode_events

from . import writer
from .projector import DEFAULT_CONSUMER, Projector
from .salvage import describe, transient

log = logging.getLogger(__name__)

_parked = ParkedEvent.__table__
_skipped = SkippedDelivery.__table__

HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Summary:
    """How much the database knows it lacks.

    Attributes:
        parked: events parked on their own.
        parked_deliveries: bus entries parked whole.
        skipped: ranges of commands stepped over.
        skipped_commands: commands in those ranges.
        oldest: when the oldest parked row was parked (None: none).
    """

    parked: int = 0
    parked_deliveries: int = 0
    skipped: int = 0
    skipped_commands: int = 0
    oldest: datetime | None = None

    @property
    def clean(self) -> bool:
        """Nothing parked, nothing skipped."""
        return not (self.parked or self.parked_deliveries or self.skipped)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What replaying one parked row did.

    Attributes:
        id: the parked row.
        status: ``stored`` (the row is gone), ``failed`` (kept, error and attempts
            updated) or ``missing`` (no such row).
        error: why it failed again.
        attempts: tries so far (``failed``).
        parked: events of a whole delivery that were parked on their own instead.
    """

    id: int
    status: str
    error: str | None = None
    attempts: int = 0
    parked: int = 0


def _connect(bind: Engine | Connection):
    return bind.connect() if isinstance(bind, Engine) else contextlib.nullcontext(bind)


def summary(bind: Engine | Connection) -> Summary:
    """Count the parked rows and skipped ranges of every consumer and stream."""
    with _connect(bind) as conn:
        by_kind = conn.execute(
            select(_parked.c.idx.is_(None), func.count(), func.min(_parked.c.parked_at))
            .group_by(_parked.c.idx.is_(None))).all()
        skipped, commands = conn.execute(select(
            func.count(), func.coalesce(func.sum(_skipped.c.last_seq - _skipped.c.first_seq
                                                 + 1), 0))).one()
    counts = {bool(whole): n for whole, n, _ in by_kind}
    oldest = min((at for _, _, at in by_kind if at is not None), default=None)
    return Summary(counts.get(False, 0), counts.get(True, 0), skipped, int(commands),
                   oldest)


def list_parked(bind: Engine | Connection, limit: int | None = None,
                ids: list[int] | None = None) -> list[dict]:
    """Parked rows (as dicts), oldest first."""
    query = select(_parked).order_by(_parked.c.id)
    if ids is not None:
        query = query.where(_parked.c.id.in_(ids))
    if limit is not None:
        query = query.limit(limit)
    with _connect(bind) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def list_skipped(bind: Engine | Connection) -> list[dict]:
    """Skipped ranges (as dicts), by stream and first command."""
    with _connect(bind) as conn:
        return [dict(r) for r in conn.execute(
            select(_skipped).order_by(_skipped.c.stream, _skipped.c.first_seq)).mappings()]


# --- replay ---------------------------------------------------------------------------


def replay(db: Engine, ids: list[int] | None = None) -> list[ReplayOutcome]:
    """Project parked rows again (all of them, or ``ids``), oldest first.

    Raises:
        Exception: a transient database error (the rows not yet replayed stay parked).
    """
    with db.connect() as conn:
        query = select(_parked.c.id).order_by(_parked.c.id)
        if ids is not None:
            query = query.where(_parked.c.id.in_(ids))
        found = [r[0] for r in conn.execute(query)]
    outcomes = [ReplayOutcome(i, "missing") for i in sorted(set(ids or ()) - set(found))]
    for row_id in found:
        outcome = _replay_one(db, row_id)
        outcomes.append(outcome)
        if outcome.status == "stored":
            log.info("replayed parked event #%d: stored%s", row_id,
                     f" ({outcome.parked} of its events parked on their own)"
                     if outcome.parked else "")
        elif outcome.status == "failed":
            log.error("replayed parked event #%d: fails again (attempt %d): %s", row_id,
                      outcome.attempts, outcome.error)
    return outcomes


def _replay_one(db: Engine, row_id: int) -> ReplayOutcome:
    with db.begin() as conn:
        consumer_stream = conn.execute(select(_parked.c.consumer, _parked.c.stream)
                                       .where(_parked.c.id == row_id)).first()
        if consumer_stream is None:
            return ReplayOutcome(row_id, "missing")
        consumer, stream = consumer_stream
        writer.lock_position(conn, consumer, stream)  # the worker waits meanwhile
        row = conn.execute(select(_parked).where(_parked.c.id == row_id)).mappings().first()
        if row is None:  # replayed or cleared by someone else meanwhile
            return ReplayOutcome(row_id, "missing")
        try:
            with conn.begin_nested():
                parked = _project_row(conn, Projector(stream, consumer), row)
        except Exception as exc:
            if transient(exc):
                raise
            attempts = row["attempts"] + 1
            conn.execute(update(_parked).where(_parked.c.id == row_id).values(
                error=describe(exc), attempts=attempts, attempted_at=utcnow()))
            return ReplayOutcome(row_id, "failed", describe(exc), attempts)
        conn.execute(delete(_parked).where(_parked.c.id == row_id))
        return ReplayOutcome(row_id, "stored", parked=parked)


def _project_row(conn: Connection, projector: Projector, row) -> int:
    """Store a parked row's event(s); returns events parked anew (whole deliveries)."""
    if row["idx"] is None:
        delivery = decode_delivery(row["payload"] or b"", row["message_id"])
        result = projector.salvage(conn, delivery)
        if result.deferred:
            position = projector.position(conn)
            raise DeliveryError(
                f"commands before {delivery.first_seq} are not in the database yet "
                f"(position {position}); replay it once the worker has caught up")
        return result.parked
    (event,) = decode_events(f"[{row['event']}]")
    following = decode_events(row["context"]) if row["context"] is not None else None
    delivery = Delivery(row["first_seq"], row["last_seq"], (), row["ts_ms"],
                        row["message_id"])
    writer.write_batch(conn, projector.build_event(conn, delivery, row["idx"], event,
                                                   following))
    return 0


# --- clearing -------------------------------------------------------------------------


def clear(db: Engine, ids: list[int] | None = None) -> list[dict]:
    """Delete parked rows for good (all, or ``ids``); each is written to the log first.

    Returns the rows deleted.
    """
    with db.begin() as conn:
        query = select(_parked).order_by(_parked.c.id)
        if ids is not None:
            query = query.where(_parked.c.id.in_(ids))
        rows = [dict(r) for r in conn.execute(query).mappings()]
        if rows:
            conn.execute(delete(_parked).where(_parked.c.id.in_([r["id"] for r in rows])))
    for row in rows:
        log.warning("cleared parked event #%d for good: %s", row["id"], record(row))
    return rows


def clear_skipped(db: Engine, firsts: list[int] | None = None,
                  consumer: str = DEFAULT_CONSUMER) -> list[dict]:
    """Delete skip records for good (all, or those starting at ``firsts``), logged."""
    with db.begin() as conn:
        query = select(_skipped).where(_skipped.c.consumer == consumer)
        if firsts is not None:
            query = query.where(_skipped.c.first_seq.in_(firsts))
        rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            conn.execute(delete(_skipped).where(
                _skipped.c.consumer == row["consumer"], _skipped.c.stream == row["stream"],
                _skipped.c.first_seq == row["first_seq"]))
    for row in rows:
        log.warning("cleared the record of skipped commands %s..%s on %s for good: %s",
                    row["first_seq"], row["last_seq"], row["stream"], record(row))
    return rows


def record(row: dict) -> str:
    """A row as one line of JSON (a payload in base64), enough to re-create it."""
    out = {}
    for key, value in row.items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return json.dumps(out, ensure_ascii=True, default=str)


# --- health ---------------------------------------------------------------------------


async def projection_health(db: Engine, bus=None, stream: str | None = None) -> dict:
    """``/health``'s ``projection`` component: ok, or degraded naming what is missing.

    Reads the database (and, given a bus, the length of the worker group's dead-letter
    stream, where older versions put what they could not store).
    """
    from .loop import WORKER_GROUP

    try:
        found = await asyncio.wait_for(asyncio.to_thread(summary, db), HEALTH_TIMEOUT_S)
    except Exception as exc:
        return {"status": "down", "detail": f"cannot count parked events: {describe(exc)}"}
    dead: int | None = None
    if bus is not None and stream is not None:
        try:
            dead = await asyncio.wait_for(
                bus.length(bus.keys.dead_letters(stream, WORKER_GROUP)), HEALTH_TIMEOUT_S)
        except Exception:
            dead = None  # the bus component reports the bus
    problems = []
    if found.parked:
        problems.append(f"{found.parked} event(s) parked")
    if found.parked_deliveries:
        problems.append(f"{found.parked_deliveries} delivery(ies) parked whole")
    if found.skipped:
        problems.append(f"{found.skipped_commands} command(s) skipped")
    if dead:
        problems.append(f"{dead} dead letter(s) on the bus")
    detail = ("every acknowledged event is stored" if not problems else
              "; ".join(problems) + ": the database lacks them — see `pmarket worker dlq list`")
    return {"status": "degraded" if problems else "ok", "detail": detail,
            "parked": found.parked, "parked_deliveries": found.parked_deliveries,
            "skipped_commands": found.skipped_commands, "dead_letters": dead,
            "oldest_parked_at": found.oldest.isoformat() if found.oldest else None}
