"""The event log: the one definition of what the engine service writes to its event
stream, and of how the worker, the servers and recovery read it back.

The unit is the delivery — the events of a contiguous run of commands.

The engine numbers every command it applies (``seq``, contiguous per command stream),
so a delivery says which commands it covers: ``first_seq .. last_seq``. That is what
lets the worker tell a duplicate (already covered) from a gap (a command missing before
it), which bus message ids alone cannot: stream ids are ordered but not contiguous.

Wire format (what the engine service appends to the event stream, one entry per
delivery): the orjson of ::

    {"seq": [first, last], "ts": ms, "events": [[kind, ...], ...],
     "commands": [["<command message id>", {command}], ...]}

A service may put one command or many in a delivery; a command with no events still
needs covering (by its own delivery or by a neighbour's range), or the worker waits for
it. ``commands`` makes the stream the engine's write-ahead log (``recovery``): the i-th
command has ``seq = first + i`` and ``ts_ms = ts`` (one clock reading per batch); its JSON
is the payload exactly as the requester sent it, the stamp being implied by its place.
Readers of events (``decode_delivery``) ignore it; recovery (``decode_logged_delivery``)
reads only it. ``encode_delivery`` writes a delivery without commands (the in-process
runner's and the tests' deliveries, which nothing replays).

Invariant: ``decode_delivery(encode_delivery(d)) == d`` (message id aside), and decoding
either returns a well-formed delivery or raises ``DeliveryError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from pmarket.bus.codec import CodecError, decode_command
from pmarket.engine.commands import Command
from pmarket.engine.events import EngineEvent, from_wire, wire_rows

from .slicing import Slicer, wire_events


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
    seq, rows, ts = _envelope(data)
    return Delivery(seq[0], seq[1], [_event_row(row) for row in rows], ts, message_id)


async def decode_delivery_sliced(data: bytes, message_id: str | None, slicer: Slicer
                                 ) -> Delivery:
    """``decode_delivery``, yielding to the event loop between chunks of events when
    ``slicer`` (a ``runtime.slicing.Slicer``) says its slice is due: a delivery of
    10,000 events is not decoded in one pass.

    Raises:
        DeliveryError: as ``decode_delivery``.
    """
    seq, rows, ts = _envelope(data)
    try:
        events = await wire_events(rows, slicer)
    except ValueError as exc:
        raise DeliveryError(str(exc)) from None
    return Delivery(seq[0], seq[1], events, ts, message_id)


def _envelope(data: bytes) -> tuple[list, list, int]:
    """A delivery's ``seq`` ([first, last]), event rows and ``ts``, checked.

    Raises:
        DeliveryError: the payload is not JSON or not shaped like a delivery.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DeliveryError(f"delivery is not JSON: {exc}") from None
    if type(obj) is not dict:
        raise DeliveryError("a delivery must be a JSON object")
    seq, rows, ts = obj.get("seq"), obj.get("events"), obj.get("ts", 0)
    if type(seq) is not list or len(seq) != 2:
        raise DeliveryError("a delivery needs seq: [first, last]")
    if type(rows) is not list or type(ts) is not int:
        raise DeliveryError("a delivery needs events: [...] and an integer ts")
    return seq, rows, ts


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


# --- the log's commands: what recovery replays ----------------------------------------


@dataclass(slots=True)
class LoggedBatch:
    """The stamped commands of one delivery, as read back from the event stream.

    Attributes:
        entry_id: the delivery's event stream id.
        first_seq: seq of the first command.
        ts_ms: the clock stamped on every command of the batch.
        commands: ``(command message id, command)`` pairs, in seq order.
    """

    entry_id: str
    first_seq: int
    ts_ms: int
    commands: list[tuple[str, Command]] = field(default_factory=list)


def encode_logged_delivery(first_seq: int, last_seq: int, ts_ms: int, events_json: bytes,
                           commands: Iterable[tuple[str, bytes]]) -> bytes:
    """A delivery carrying its stamped commands (the format in the module docstring).

    Args:
        first_seq: seq of the first command of the batch.
        last_seq: seq of the last one.
        ts_ms: the time stamped on every command of the batch.
        events_json: the batch's events, already a JSON array (spliced in, not re-encoded).
        commands: ``(message id, command JSON as received)`` per command, in seq order.
    """
    return orjson.dumps({
        "seq": [first_seq, last_seq],
        "ts": ts_ms,
        "events": orjson.Fragment(events_json),
        "commands": [[mid, orjson.Fragment(payload)] for mid, payload in commands],
    })


def join_event_arrays(parts: Iterable[bytes]) -> bytes:
    """Concatenate JSON arrays of events (``encode_events`` outputs) into one array."""
    inner = [p[1:-1] for p in parts if len(p) > 2]
    return b"[" + b",".join(inner) + b"]"


def decode_logged_delivery(entry_id: str, payload: bytes) -> LoggedBatch:
    """The stamped commands of a delivery appended by the engine service.

    Raises:
        DeliveryError: the entry is not a delivery with its commands.
    """
    try:
        obj = orjson.loads(payload)
        first, last = obj["seq"]
        ts_ms = obj["ts"]
        rows = obj["commands"]
        batch = LoggedBatch(entry_id, first, ts_ms)
        for offset, (message_id, command) in enumerate(rows):
            cmd = decode_command(orjson.dumps(command))
            cmd.seq, cmd.ts_ms = first + offset, ts_ms
            batch.commands.append((message_id, cmd))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, CodecError) as exc:
        raise DeliveryError(f"event stream entry {entry_id} is not a logged delivery: "
                            f"{exc}") from None
    if last - first + 1 != len(batch.commands):
        raise DeliveryError(f"event stream entry {entry_id} covers seq {first}..{last} "
                            f"but logs {len(batch.commands)} commands")
    return batch
