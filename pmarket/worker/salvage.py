"""Storing everything of a delivery that fails as a whole, and parking what cannot be.

A delivery is one engine batch: many users' commands. When projecting it fails for a
reason that is not the database being away (``transient``), ``store_events`` writes it
again event by event and parks the events that fail on their own — the policy:

* **Each event alone.** The delivery's events are walked in consecutive ranges, each in
  a SAVEPOINT; a range that fails is halved until the failing events stand alone (one
  poison event among thousands costs a few dozen savepoints, not thousands). Ranges see
  the delivery's later events (a ``convert`` or ``payout`` looks ahead) and keep their
  identities (a ledger entry is still ``(stream, first_seq, index)``), and the state they
  read is what the events before them wrote, so storing a delivery in ranges writes
  exactly what storing it whole would have.
* **Parked, not dropped.** An event that fails alone goes to ``parked_events`` with its
  error, its JSON and the later events its projection reads, in the same transaction as
  everything else of the delivery and the consumer's new position: a crash at any point
  leaves either all of it or none of it.
* **Superseded state is not parked.** ``order``, ``balance``, ``position`` and ``event``
  events carry full values, and a batch only ever stores the last one per key. An
  earlier one that fails while a later one of the same key in the delivery exists would
  never have been stored: it is logged and left. So a parked state event is always the
  delivery's last word on its key, and a replay's ``seq`` guard (stored ``seq`` <= the
  delivery's) lets it win over its own delivery's earlier states and lose to any later
  delivery's.
* **Dependants fail on their own and are parked behind it.** A trade in a market whose
  event is parked, a split, merge, convert or payout of such an event, its deletion or
  resolution: each names what the database lacks (``... is unknown to the database``)
  and is parked after the event it needs, so replaying in order (``parked.replay``)
  restores them in order. Facts that only refer to a parked row by id — a trade of a
  parked order, a balance, a position — are stored: they are true whatever that row says.

Invariant: a delivery's events are either stored or parked (or superseded), never lost,
and all of it commits with the position; a transient error rolls all of it back and
parks nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from pmarket.bus import BusUnavailable
from pmarket.db.models import ParkedEvent
from pmarket.db.types import utcnow
from pmarket.engine import events as ev
from pmarket.runtime.eventlog import Delivery, encode_events

from . import writer
from .batch import Batch, lookahead

log = logging.getLogger(__name__)

_parked = ParkedEvent.__table__

_STATE_KINDS = frozenset({ev.ORDER, ev.BALANCE, ev.POSITION, ev.EVENT})

BuildRange = Callable[[Connection, Delivery, int, int], Batch]
"""Builds the batch of events ``start .. stop - 1`` of a delivery (reads what it needs)."""


def transient(exc: BaseException) -> bool:
    """Errors that say the database or bus is unreachable, not that the data is bad."""
    if isinstance(exc, OperationalError | InterfaceError | writer.ConcurrentProjection |
                  BusUnavailable):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """One line naming an error: its type and message (bounded)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:2000]


def superseded(events) -> set[int]:
    """Indexes of state events that a later event of the same key in ``events`` replaces."""
    seen: set = set()
    out: set[int] = set()
    for index in range(len(events) - 1, -1, -1):
        key = _state_key(events[index])
        if key is None:
            continue
        if key in seen:
            out.add(index)
        else:
            seen.add(key)
    return out


def _state_key(e: tuple):
    kind = e[0] if e else None
    if kind not in _STATE_KINDS:
        return None
    try:
        key = (kind, e[1], e[2]) if kind == ev.POSITION else (kind, e[1])
        hash(key)
    except (IndexError, TypeError):
        return None
    return key


def store_events(conn: Connection, stream: str, consumer: str, delivery: Delivery,
                 build: BuildRange) -> int:
    """Write every event of ``delivery`` that can be written; park the others.

    Runs in the caller's transaction (which holds the consumer position's lock); the
    caller moves the position and commits. Returns how many events were parked.

    Raises:
        Exception: a transient error (``transient``); the caller rolls everything back.
    """
    stale = superseded(delivery.events)
    parked = 0
    pending = [(0, len(delivery.events))]
    while pending:
        start, stop = pending.pop()
        try:
            with conn.begin_nested():
                writer.write_batch(conn, build(conn, delivery, start, stop))
            continue
        except Exception as exc:
            if transient(exc):
                raise
            error = exc
        if stop - start > 1:
            middle = (start + stop) // 2
            pending += [(middle, stop), (start, middle)]  # the first half first
        elif start in stale:
            log.warning("%s: event %d of commands %s..%s fails (%s) but a later event of "
                        "the same key replaces it; not parked", stream, start,
                        delivery.first_seq, delivery.last_seq, describe(error))
        else:
            park_event(conn, stream, consumer, delivery, start, describe(error))
            parked += 1
    return parked


def park_event(conn: Connection, stream: str, consumer: str, delivery: Delivery,
               index: int, error: str) -> None:
    """Record the ``index``-th event of ``delivery`` as parked with ``error``."""
    events = delivery.events
    event = events[index]
    try:
        context = lookahead(events, index)
    except Exception:  # a malformed event reads nothing ahead
        context = None
    kind = event[0] if event and isinstance(event[0], str) else "?"
    writer.insert_new(conn, _parked, [{
        "consumer": consumer, "stream": stream, "first_seq": delivery.first_seq,
        "last_seq": delivery.last_seq, "idx": index, "kind": kind[:32],
        "event": encode_events([event])[1:-1],
        "context": None if context is None else encode_events(context),
        "payload": None, "ts_ms": delivery.ts_ms, "message_id": delivery.message_id,
        "error": error, "attempts": 1, "parked_at": utcnow(), "attempted_at": utcnow(),
    }], ("consumer", "stream", "first_seq", "idx"))
    log.error("%s: parked event %d (%s) of commands %s..%s: %s", stream, index, kind,
              delivery.first_seq, delivery.last_seq, error)


def park_payload(conn: Connection, stream: str, consumer: str, payload: bytes,
                 message_id: str | None, error: str, seqs: tuple[int, int] | None) -> bool:
    """Record a whole delivery that cannot be projected (e.g. undecodable) as parked.

    A copy already parked under the same bus message id is not parked twice (the worker
    may crash between parking and acking). Returns True if a row was added.
    """
    if message_id is not None and conn.execute(select(_parked.c.id).where(
            _parked.c.consumer == consumer, _parked.c.stream == stream,
            _parked.c.message_id == message_id, _parked.c.idx.is_(None))).first():
        return False
    first, last = seqs if seqs else (None, None)
    conn.execute(insert(_parked), [{
        "consumer": consumer, "stream": stream, "first_seq": first, "last_seq": last,
        "idx": None, "kind": "delivery", "event": None, "context": None,
        "payload": bytes(payload), "ts_ms": 0, "message_id": message_id, "error": error,
        "attempts": 1, "parked_at": utcnow(), "attempted_at": utcnow(),
    }])
    log.error("%s: parked a whole delivery (message %s, commands %s): %s", stream,
              message_id, f"{first}..{last}" if seqs else "unknown", error)
    return True
