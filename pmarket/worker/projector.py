"""Projecting engine events into the database, exactly once, in command order.

``Projector.project(session, deliveries)`` writes the rows of any number of deliveries
and the consumer's new position in the caller's transaction; ``Projector.apply`` wraps
that in its own transaction. The stored position (``consumer_positions.last_seq``, per
consumer and stream) is the engine command sequence number up to which everything is in
the database; it decides what each delivery is:

* **duplicate** — it ends at or before the position: already applied (redelivery after a
  crash before the ack, a copy, an older batch). Skipped; nothing is written.
* **next** — it starts right after the position: applied, and the position moves to its
  end. Deliveries of a call are sorted first, so a batch delivered out of order is
  applied in order as long as it has no hole.
* **early** — it starts beyond the position (an earlier command has not arrived): not
  applied, returned in ``ProjectionResult.deferred``. Everything is applied in sequence
  or not at all, because derived values (cost basis, volume, candles) depend on order;
  the caller buffers deferred deliveries (``worker.reorder.Reorderer``) or leaves them
  un-acked so the bus hands them over again.
* **late** — it lies inside a range the worker stepped over with ``skip`` (a hole that
  never arrived, a delivery parked whole): applied when it arrives after all (a replay),
  as a replay (``Batch(replay=True)``): state rows guarded by their ``seq`` so nothing
  newer is overwritten, quantities the database already has kept, market figures and
  candles recounted from the stored trades; the skip record shrinks accordingly.

A delivery that straddles the position (starts before it and ends after) cannot come
from one engine and is refused with ``DeliveryError``.

``salvage`` is ``project`` for a delivery that failed: it stores it event by event and
parks the events that fail alone (``worker.salvage`` has the policy); ``park_payload``
parks a bus entry that cannot be projected at all. Parked events are the database's
known gaps, like skip records: ``worker.parked`` lists, replays and clears them.

Invariant: rows and position commit together, so after any crash the database holds
exactly the effects of the commands ``1 .. last_seq`` (minus recorded skips), and a
delivery changes the database at most once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.orm import Session

from pmarket.db.models import ConsumerPosition as CP
from pmarket.db.models import SkippedDelivery
from pmarket.db.types import utcnow
from pmarket.runtime.eventlog import Delivery, DeliveryError, peek_seq

from . import salvage, writer
from .batch import Batch, Needs, needs, needs_of

DEFAULT_CONSUMER = "worker"


@dataclass(slots=True)
class ProjectionResult:
    """What one ``project`` call did.

    Attributes:
        applied: deliveries written in order (count).
        late: deliveries written late into a skipped range (count).
        duplicates: deliveries skipped as already applied (count).
        deferred: deliveries not applied because an earlier command is missing.
        events: engine events folded into the database (parked ones included).
        last_seq: the consumer position after the call.
        parked: events parked by ``salvage``.
    """

    applied: int = 0
    late: int = 0
    duplicates: int = 0
    deferred: list[Delivery] = field(default_factory=list)
    events: int = 0
    last_seq: int = 0
    parked: int = 0


@dataclass(slots=True)
class _Plan:
    """What ``Projector._plan`` made of a call's deliveries."""

    position: int
    result: ProjectionResult
    in_order: list[Delivery] = field(default_factory=list)
    late: list[Delivery] = field(default_factory=list)
    skipped: list[tuple[int, int]] = field(default_factory=list)


def _connection(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


class Projector:
    """Projects the deliveries of one event stream for one consumer.

    Args:
        stream: the stream key the deliveries come from (``bus.events_stream(shard)``);
            each shard's stream has its own position.
        consumer: the consumer's name; several consumers keep separate positions.
    """

    def __init__(self, stream: str, consumer: str = DEFAULT_CONSUMER):
        self.stream = stream
        self.consumer = consumer

    def position(self, bind: Session | Connection | Engine) -> int:
        """The last command seq applied (0 if nothing yet), without locking."""
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                return self.position(conn)
        row = _connection(bind).execute(
            select(CP.last_seq).where(CP.consumer == self.consumer, CP.stream == self.stream)
        ).first()
        return row[0] if row else 0

    def apply(self, engine: Engine, deliveries: Iterable[Delivery]) -> ProjectionResult:
        """Project ``deliveries`` in a transaction of its own, committed on return."""
        with engine.begin() as conn:
            return self.project(conn, deliveries)

    def project(self, bind: Session | Connection,
                deliveries: Iterable[Delivery]) -> ProjectionResult:
        """Write the rows of ``deliveries`` and the new position in the current transaction.

        The caller commits (or rolls back: then nothing happened, position included).

        Raises:
            DeliveryError: a delivery overlaps the position.
            ConcurrentProjection: another writer moved the position meanwhile (SQLite).
            ValueError: an event is malformed (TypeError too, for a wrong type) or a
                value would overflow its column; nothing of the call is written.
        """
        conn = _connection(bind)
        plan = self._plan(conn, deliveries)
        result = plan.result
        if plan.late:
            batch = self._build(conn, plan.late, replay=True)
            writer.write_batch(conn, batch)
            result.events += batch.event_count
            self._rewrite_skips(conn, plan.skipped)
        if plan.in_order:
            batch = self._build(conn, plan.in_order)
            writer.write_batch(conn, batch)
            result.events += batch.event_count
            writer.save_position(conn, self.consumer, self.stream, plan.position,
                                 plan.in_order[-1].last_seq, plan.in_order[-1].message_id)
            result.last_seq = plan.in_order[-1].last_seq
        result.applied, result.late = len(plan.in_order), len(plan.late)
        return result

    def salvage(self, bind: Session | Connection, delivery: Delivery) -> ProjectionResult:
        """Like ``project`` for one delivery, but event by event: park what fails alone.

        Everything else of the delivery is written and the position moves past it (or,
        for a late delivery, its skip record shrinks), in the current transaction. See
        ``salvage`` (the module) for the policy.

        Raises:
            DeliveryError: the delivery overlaps the position.
            Exception: a transient error (nothing is parked then).
        """
        conn = _connection(bind)
        plan = self._plan(conn, [delivery])
        result = plan.result
        if not plan.late and not plan.in_order:
            return result
        replay = bool(plan.late)
        result.parked = salvage.store_events(
            conn, self.stream, self.consumer, delivery,
            lambda c, d, start, stop: self._build(c, [d], replay=replay, span=(start, stop)))
        result.events = len(delivery.events)
        if replay:
            self._rewrite_skips(conn, plan.skipped)
            result.late = 1
        else:
            writer.save_position(conn, self.consumer, self.stream, plan.position,
                                 delivery.last_seq, delivery.message_id)
            result.applied, result.last_seq = 1, delivery.last_seq
        return result

    def _plan(self, conn: Connection, deliveries: Iterable[Delivery]) -> _Plan:
        """Lock the position and sort ``deliveries`` into next, late, duplicate, early."""
        last = writer.lock_position(conn, self.consumer, self.stream)
        plan = _Plan(last, ProjectionResult(last_seq=last))
        skipped: list[tuple[int, int]] | None = None
        expected = last + 1
        for d in sorted(deliveries, key=lambda d: d.first_seq):
            if d.last_seq < expected:
                if skipped is None:
                    skipped = writer.skipped_ranges(conn, self.consumer, self.stream)
                hole = _containing(skipped, d)
                if hole is None:
                    plan.result.duplicates += 1
                else:
                    plan.late.append(d)
                    skipped.remove(hole)
                    skipped.extend(_remainder(hole, d))
            elif d.first_seq == expected:
                plan.in_order.append(d)
                expected = d.last_seq + 1
            elif d.first_seq < expected:
                raise DeliveryError(
                    f"delivery {d.first_seq}..{d.last_seq} overlaps the position {expected - 1}"
                    f" of {self.consumer} on {self.stream}")
            else:
                plan.result.deferred.append(d)
        plan.skipped = skipped or []
        return plan

    def build_event(self, conn: Connection, delivery: Delivery, index: int, event: tuple,
                    following) -> Batch:
        """The batch of one parked ``event`` replayed (see ``Batch.walk_event``)."""
        batch = self._batch(conn, needs_of([event]), replay=True)
        return batch.walk_event(delivery, index, event, following)

    def _build(self, conn: Connection, deliveries: list[Delivery], replay: bool = False,
               span: tuple[int, int] | None = None) -> Batch:
        if span is None:
            batch = self._batch(conn, needs(deliveries), replay)
            return batch.walk(deliveries)
        (delivery,) = deliveries
        start, stop = span
        batch = self._batch(conn, needs_of(delivery.events[start:stop]), replay)
        return batch.walk_range(delivery, start, stop)

    def _batch(self, conn: Connection, wanted: Needs, replay: bool) -> Batch:
        markets, event_markets = writer.load_markets(conn, wanted.market_ids,
                                                     wanted.event_ids)
        keys = wanted.position_keys
        for event_id, user_id in wanted.event_users:
            keys.update((user_id, m) for m in event_markets.get(event_id, ()))
        holdings = writer.load_holdings(conn, keys)
        return Batch(self.stream, holdings, markets, event_markets, replay=replay)

    def _rewrite_skips(self, conn: Connection, ranges: list[tuple[int, int]]) -> None:
        table = SkippedDelivery.__table__
        old = {r.first_seq: r for r in conn.execute(table.select().where(
            table.c.consumer == self.consumer, table.c.stream == self.stream))}
        conn.execute(delete(table).where(table.c.consumer == self.consumer,
                                         table.c.stream == self.stream))
        rows = []
        for first, last in ranges:
            source = next((r for r in old.values() if r.first_seq <= first <= r.last_seq),
                          None)
            rows.append({"consumer": self.consumer, "stream": self.stream, "first_seq": first,
                         "last_seq": last, "message_id": source.message_id if source else None,
                         "error": source.error if source else "",
                         "skipped_at": source.skipped_at if source else utcnow()})
        if rows:
            conn.execute(insert(table), rows)

    def park_payload(self, bind: Session | Connection, payload: bytes,
                     message_id: str | None, error: str) -> int:
        """Park a bus entry that cannot be projected at all (undecodable, or one the
        worker died on again and again), in the current transaction.

        If the payload legibly covers the next expected commands, they are stepped over
        (``skip``) at once so later deliveries flow; otherwise the hole it leaves is
        stepped over when the worker's gap timeout runs out. Returns the position after.
        """
        conn = _connection(bind)
        last = writer.lock_position(conn, self.consumer, self.stream)
        seqs = peek_seq(payload)
        added = salvage.park_payload(conn, self.stream, self.consumer, payload, message_id,
                                     error, seqs)
        if added and seqs is not None and seqs[0] == last + 1:
            self.skip(conn, seqs[0], seqs[1], f"parked whole: {error}", message_id)
            return seqs[1]
        return last

    def skip(self, bind: Session | Connection, first_seq: int, last_seq: int, error: str,
             message_id: str | None = None) -> None:
        """Step over commands ``first_seq .. last_seq`` that cannot be projected.

        Used by the worker after a delivery has been dead-lettered (or a hole declared
        lost): the position moves past it so later commands flow again, and a
        ``skipped_deliveries`` row records what the database lacks until a retry of the
        dead letter applies it (as a *late* delivery). Writes in the current
        transaction.

        Raises:
            DeliveryError: ``first_seq`` is not the next command expected.
        """
        conn = _connection(bind)
        last = writer.lock_position(conn, self.consumer, self.stream)
        if first_seq != last + 1 or last_seq < first_seq:
            raise DeliveryError(
                f"can only skip from the next expected command {last + 1}, "
                f"not {first_seq}..{last_seq}")
        conn.execute(insert(SkippedDelivery.__table__), [{
            "consumer": self.consumer, "stream": self.stream, "first_seq": first_seq,
            "last_seq": last_seq, "message_id": message_id, "error": error,
            "skipped_at": utcnow()}])
        writer.save_position(conn, self.consumer, self.stream, last, last_seq, message_id)


def _containing(ranges: list[tuple[int, int]], d: Delivery) -> tuple[int, int] | None:
    for first, last in ranges:
        if first <= d.first_seq and d.last_seq <= last:
            return first, last
    return None


def _remainder(hole: tuple[int, int], d: Delivery) -> list[tuple[int, int]]:
    first, last = hole
    parts = []
    if first < d.first_seq:
        parts.append((first, d.first_seq - 1))
    if d.last_seq < last:
        parts.append((d.last_seq + 1, last))
    return parts
