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
* **late** — it lies inside a range the worker stepped over with ``skip`` (a dead
  letter): applied when it arrives again (a dead-letter retry), state rows guarded by
  their ``seq`` so nothing newer is overwritten; the skip record shrinks accordingly.

A delivery that straddles the position (starts before it and ends after) cannot come
from one engine and is refused with ``DeliveryError``.

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

from . import writer
from .batch import Batch, needs
from .delivery import Delivery, DeliveryError

DEFAULT_CONSUMER = "worker"


@dataclass(slots=True)
class ProjectionResult:
    """What one ``project`` call did.

    Attributes:
        applied: deliveries written in order (count).
        late: deliveries written late into a skipped range (count).
        duplicates: deliveries skipped as already applied (count).
        deferred: deliveries not applied because an earlier command is missing.
        events: engine events folded into the database.
        last_seq: the consumer position after the call.
    """

    applied: int = 0
    late: int = 0
    duplicates: int = 0
    deferred: list[Delivery] = field(default_factory=list)
    events: int = 0
    last_seq: int = 0


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
        last = writer.lock_position(conn, self.consumer, self.stream)
        result = ProjectionResult(last_seq=last)
        in_order: list[Delivery] = []
        late: list[Delivery] = []
        skipped: list[tuple[int, int]] | None = None
        expected = last + 1
        for d in sorted(deliveries, key=lambda d: d.first_seq):
            if d.last_seq < expected:
                if skipped is None:
                    skipped = writer.skipped_ranges(conn, self.consumer, self.stream)
                hole = _containing(skipped, d)
                if hole is None:
                    result.duplicates += 1
                else:
                    late.append(d)
                    skipped.remove(hole)
                    skipped.extend(_remainder(hole, d))
            elif d.first_seq == expected:
                in_order.append(d)
                expected = d.last_seq + 1
            elif d.first_seq < expected:
                raise DeliveryError(
                    f"delivery {d.first_seq}..{d.last_seq} overlaps the position {expected - 1}"
                    f" of {self.consumer} on {self.stream}")
            else:
                result.deferred.append(d)
        if not in_order and not late:
            return result
        todo = late + in_order
        batch = self._build(conn, todo)
        writer.write_batch(conn, batch)
        if late:
            self._rewrite_skips(conn, skipped or [])
        if in_order:
            writer.save_position(conn, self.consumer, self.stream, last, expected - 1,
                                 in_order[-1].message_id)
        result.applied, result.late = len(in_order), len(late)
        result.events = batch.event_count
        result.last_seq = expected - 1
        return result

    def _build(self, conn: Connection, deliveries: list[Delivery]) -> Batch:
        wanted = needs(deliveries)
        markets, event_markets = writer.load_markets(conn, wanted.market_ids,
                                                     wanted.event_ids)
        keys = wanted.position_keys
        for event_id, user_id in wanted.event_users:
            keys.update((user_id, m) for m in event_markets.get(event_id, ()))
        holdings = writer.load_holdings(conn, keys)
        return Batch(self.stream, holdings, markets, event_markets).walk(deliveries)

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
