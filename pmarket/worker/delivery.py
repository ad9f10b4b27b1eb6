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

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from pmarket.engine.events import EVENT as _EVENT
from pmarket.engine.events import LAYOUTS

_MARKETS = LAYOUTS[_EVENT].index("markets") + 1  # position in the event tuple


class DeliveryError(ValueError):
    """A payload is not a valid delivery."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """The events of engine commands ``first_seq .. last_seq``, in order.

    Attributes:
        first_seq: sequence number of the first command covered (>= 1).
        last_seq: sequence number of the last command covered (>= first_seq).
        events: the commands' events, flat tuples as the engine emits them.
        ts_ms: the engine clock when the last command was applied (0: unknown).
        message_id: the bus entry it arrived in, if any (kept for diagnostics).
    """

    first_seq: int
    last_seq: int
    events: Sequence[tuple] = field(default=(), compare=False)
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
    def of_command(cls, seq: int, events: Sequence[tuple], ts_ms: int = 0) -> Delivery:
        """The delivery of one command's events."""
        return cls(seq, seq, events, ts_ms)


def encode_delivery(delivery: Delivery) -> bytes:
    """Encode a delivery as compact JSON bytes."""
    return orjson.dumps({
        "seq": [delivery.first_seq, delivery.last_seq],
        "ts": delivery.ts_ms,
        "events": list(delivery.events),
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
    rows = []
    for row in events:
        if type(row) is not list or not row or type(row[0]) is not str:
            raise DeliveryError(f"an event must be an array starting with its kind: {row!r}")
        if row[0] == _EVENT and len(row) > _MARKETS and type(row[_MARKETS]) is list:
            # The only nested field: an event's (market_id, name) pairs.
            row[_MARKETS] = tuple(tuple(m) if type(m) is list else m for m in row[_MARKETS])
        rows.append(tuple(row))
    return Delivery(seq[0], seq[1], rows, ts, message_id)
