"""Deliveries: the unit the worker projects — the events of a contiguous run of commands.

The engine numbers every command it applies (``seq``, contiguous per command stream),
so a delivery says which commands it covers: ``first_seq .. last_seq``. That is what
lets the worker tell a duplicate (already covered) from a gap (a command missing before
it), which bus message ids alone cannot: stream ids are ordered but not contiguous.

Wire format (what the engine runner appends to the event stream, one entry per
delivery): the orjson of ``{"seq": [first, last], "ts": ms, "events": [[kind, ...], ...]}``.
A runner may put one command or many in a delivery; a command with no events still
needs covering (by its own delivery or by a neighbour's range), or the worker waits for
it.

Invariant: ``decode_delivery(encode_delivery(d)) == d`` (message id aside), and decoding
either returns a well-formed delivery or raises ``DeliveryError``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from pmarket.engine.events import EngineEvent, from_wire, wire_rows


class DeliveryError(ValueError):
    """A payload is not a valid delivery."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """The events of engine commands ``first_seq .. last_seq``, in order.

    Attributes:
        first_seq: sequence number of the first command covered (>= 1).
        last_seq: sequence number of the last command covered (>= first_seq).
        events: the commands' events, as the engine emits them (``engine.events``).
        ts_ms: the engine clock when the last command was applied (0: unknown).
        message_id: the bus entry it arrived in, if any (kept for diagnostics).
    """

    first_seq: int
    last_seq: int
    events: Sequence[EngineEvent] = field(default=(), compare=False)
    ts_ms: int = 0
    message_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if type(self.first_seq) is not int or type(self.last_seq) is not int:
            raise DeliveryError("first_seq and last_seq must be integers")
        if not 1 <= self.first_seq <= self.last_seq:
            raise DeliveryError(
                f"a delivery covers commands first_seq..last_seq with 1 <= first <= last, "
                f"got {self.first_seq}..{self.last_seq}")

    @classmethod
    def of_command(cls, seq: int, events: Sequence[EngineEvent], ts_ms: int = 0) -> Delivery:
        """The delivery of one command's events."""
        return cls(seq, seq, events, ts_ms)


def encode_delivery(delivery: Delivery) -> bytes:
    """Encode a delivery as compact JSON bytes."""
    return orjson.dumps({
        "seq": [delivery.first_seq, delivery.last_seq],
        "ts": delivery.ts_ms,
        "events": wire_rows(list(delivery.events)),
    })


def decode_delivery(data: bytes, message_id: str | None = None) -> Delivery:
    """Decode bytes made by ``encode_delivery``.

    Raises:
        DeliveryError: the payload is not JSON or not shaped like a delivery.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DeliveryError(f"delivery is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise DeliveryError("a delivery must be a JSON object")
    seq, events, ts = obj.get("seq"), obj.get("events"), obj.get("ts", 0)
    if type(seq) is not list or len(seq) != 2:
        raise DeliveryError("a delivery needs seq: [first, last]")
    if type(events) is not list or type(ts) is not int:
        raise DeliveryError("a delivery needs events: [...] and an integer ts")
    return Delivery(seq[0], seq[1], [_event_row(row) for row in events], ts, message_id)


def _event_row(row: object) -> EngineEvent:
    try:
        return from_wire(row)
    except ValueError as exc:
        raise DeliveryError(str(exc)) from None


def encode_events(events: Sequence[EngineEvent]) -> str:
    """Events as JSON text a database column can hold (what ``park`` stores).

    The standard library's encoder, not orjson: it keeps integers of any size exactly
    (a value that overflowed a column must be stored as it came) and escapes every
    control character, NUL included. Anything that is not JSON is kept as its ``repr``.
    """
    return json.dumps([list(e.wire()) for e in events], ensure_ascii=True, default=repr)


def decode_events(text: str) -> list[EngineEvent]:
    """Events stored by ``encode_events``, as the engine's events.

    Raises:
        DeliveryError: the text is not a JSON array of events.
    """
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise DeliveryError(f"stored events are not JSON: {exc}") from None
    if type(rows) is not list:
        raise DeliveryError("stored events must be a JSON array")
    return [_event_row(row) for row in rows]


def peek_seq(data: bytes) -> tuple[int, int] | None:
    """The commands ``first, last`` an undecodable payload covers, if it says so legibly."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    seq = obj.get("seq") if type(obj) is dict else None
    if (type(seq) is list and len(seq) == 2 and type(seq[0]) is int and type(seq[1]) is int
            and 1 <= seq[0] <= seq[1]):
        return seq[0], seq[1]
    return None
