"""The wire codec: every command and every event survives the trip unchanged."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

import orjson
import pytest

from pmarket.bus.codec import (
    COMMAND_TYPES,
    CodecError,
    decode_command,
    decode_events,
    encode_command,
    encode_events,
    field_types,
)
from pmarket.engine import commands as c
from pmarket.engine.engine import Engine
from pmarket.engine.events import (
    LAYOUTS,
    BalanceState,
    EngineEvent,
    EventDeleted,
    EventState,
    Fill,
    Unknown,
    from_wire,
    to_wire,
)


def _sample(hint: Any, salt: int) -> Any:
    """A value of type ``hint`` that differs from any field default."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _sample(inner, salt)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return (_sample(item, salt), _sample(item, salt + 1))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[salt % len(members)] if salt % len(members) else members[-1]
    if isinstance(hint, type) and issubclass(hint, c.Command):
        return _full(hint, salt)
    if hint is bool:
        return True
    if hint is int:
        return 1_000 + salt
    if hint is str:
        return f"s{salt}-é"
    raise AssertionError(f"no sample for {hint!r}")


def _full(cls: type[c.Command], salt: int = 0) -> c.Command:
    """An instance of ``cls`` with every field set to a non-default value."""
    hints = field_types(cls)
    values = {
        f.name: _sample(hints[f.name], salt + i) for i, f in enumerate(dataclasses.fields(cls))
    }
    return cls(**values)


def _minimal(cls: type[c.Command]) -> c.Command:
    """An instance of ``cls`` with only its required fields set."""
    hints = field_types(cls)
    required = {
        f.name: _sample(hints[f.name], 7)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return cls(**required)


ALL_COMMANDS = sorted(COMMAND_TYPES)


def test_every_command_class_of_the_engine_is_on_the_wire():
    defined = {
        name
        for name, obj in vars(c).items()
        if isinstance(obj, type) and issubclass(obj, c.Command) and obj is not c.Command
    }
    assert defined <= set(COMMAND_TYPES)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_command_with_every_field_set_round_trips(name: str):
    command = _full(COMMAND_TYPES[name])

    data = encode_command(command)

    assert decode_command(data) == command
    assert orjson.loads(data)["type"] == name


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_command_with_defaults_round_trips(name: str):
    command = _minimal(COMMAND_TYPES[name])

    assert decode_command(encode_command(command)) == command


def test_enums_travel_as_their_values_and_tuples_as_arrays():
    order = c.PlaceOrder(
        user_id=1, market_id=2, outcome=c.Outcome.NO, side=c.Side.SELL, quantity=3, price=4000
    )
    batch = c.PlaceBatch(seq=9, ts_ms=10, user_id=1, orders=(order,))

    wire = orjson.loads(encode_command(batch))

    assert wire["type"] == "PlaceBatch"
    assert wire["orders"][0]["outcome"] == "no"
    assert wire["orders"][0]["side"] == "sell"
    assert wire["orders"][0]["tif"] == "gtc"
    decoded = decode_command(encode_command(batch))
    assert isinstance(decoded.orders, tuple)
    assert decoded.orders[0].outcome is c.Outcome.NO


@pytest.mark.parametrize(
    ("wire", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "Teleport"}', "unknown command type"),
        (b'{"user_id": 1, "amount": 5}', "unknown command type"),
        (b'{"type": "Deposit", "user_id": 1}', "missing field 'amount'"),
        (b'{"type": "Deposit", "user_id": 1, "amount": "5"}', "Deposit.amount"),
        (b'{"type": "Deposit", "user_id": true, "amount": 5}', "Deposit.user_id"),
        (b'{"type": "Deposit", "user_id": 1, "amount": 5.0}', "Deposit.amount"),
        (b'{"type": "Deposit", "user_id": 1, "amount": 5, "admin": true}', "unknown fields"),
        (
            b'{"type": "PlaceOrder", "user_id": 1, "market_id": 1, "outcome": "maybe",'
            b' "side": "buy", "quantity": 1}',
            "not a valid Outcome",
        ),
        (b'{"type": "Convert", "user_id": 1, "event_id": 1, "outcome_ids": 3, "quantity": 1}',
         "expected an array"),
        (b'{"type": "PlaceBatch", "user_id": 1, "orders": [{"user_id": 1}]}',
         "PlaceOrder is missing field"),
    ],
)
def test_malformed_commands_are_refused_with_a_reason(wire: bytes, complaint: str):
    with pytest.raises(CodecError, match=complaint):
        decode_command(wire)


def test_encoding_something_else_is_refused():
    @dataclasses.dataclass
    class NotACommand:
        x: int = 1

    with pytest.raises(CodecError):
        encode_command(NotACommand())  # type: ignore[arg-type]


# Fields that may be None, by kind, and the text fields.
_NULLABLE_IN = {"order": {"expires_at_ms", "client_order_id", "reason"},
                "ledger": {"event_id", "market_id"},
                "event": {"close_time_ms", "winning_outcome_id"},
                "dead_man": {"expires_at_ms", "fired_ms"},
                "resolved": {"winning_outcome_id"},
                "rejected": {"user_id", "order_id", "client_order_id"}}
_TEXT = {"outcome", "side", "order_type", "status", "tif", "client_order_id", "reason",
         "settlement", "taker_side", "command", "message", "entry_kind", "title",
         "description", "category", "slug"}


def _sample_event(kind: str, names: tuple[str, ...], nulls: bool) -> EngineEvent:
    values: list[Any] = []
    for i, name in enumerate(names):
        if nulls and name in _NULLABLE_IN.get(kind, ()):
            values.append(None)
        elif name == "markets":
            values.append(((1, "A"), (2, "B")))
        elif name in ("void", "post_only"):
            values.append(True)
        elif name in _TEXT:
            values.append(f"{name}-x")
        else:
            values.append(10**15 + i)
    return from_wire([kind, *values])


@pytest.mark.parametrize("nulls", [False, True])
def test_every_event_kind_round_trips(nulls: bool):
    events = [_sample_event(kind, names, nulls) for kind, names in LAYOUTS.items()]

    decoded = decode_events(encode_events(events))

    assert decoded == events
    assert [type(e) for e in decoded] == [type(e) for e in events]
    assert [to_wire(e) for e in decoded] == [to_wire(e) for e in events]


def test_events_stored_by_older_versions_are_still_read():
    """A fill without its fee and an event without its fee_rate (stored before fees
    existed, still in a stream or a journal at an upgrade) read with 0; an unknown kind
    is kept as it came, for its consumer to refuse."""
    fill, event, unknown = decode_events(
        b'[["fill", 7, 2, 4000, 3, "mint", "buy", 5, 1, 6, 2, 1000],'
        b' ["event", 1, "active", "T", "", "", "", null, 100, [[2, "Yes"]], 0, null, false],'
        b' ["teleport", 1, "x"]]')
    assert isinstance(fill, Fill) and (fill.trade_id, fill.fee) == (7, 0)
    assert isinstance(event, EventState) and event.markets == ((2, "Yes"),)
    assert event.fee_rate == 0
    assert isinstance(unknown, Unknown) and to_wire(unknown) == ("teleport", 1, "x")


@pytest.mark.parametrize("wire", [b'[["balance", 1, 2]]', b'[["balance", 1, 2, 3, 4]]',
                                  b'[["fill", 1]]', b'[["event_deleted"]]'])
def test_an_event_with_the_wrong_number_of_fields_is_refused(wire: bytes):
    with pytest.raises(CodecError, match="fields"):
        decode_events(wire)


def test_events_travel_as_an_array_of_arrays():
    events = [BalanceState(1, 500, 0), EventDeleted(3)]

    assert orjson.loads(encode_events(events)) == [["balance", 1, 500, 0], ["event_deleted", 3]]
    assert decode_events(encode_events([])) == []


@pytest.mark.parametrize("wire", [b"{}", b"[1]", b"[[]]", b"[[1, 2]]", b"nope"])
def test_malformed_event_lists_are_refused(wire: bytes):
    with pytest.raises(CodecError):
        decode_events(wire)


def test_engine_fed_through_the_codec_emits_the_same_events():
    """Commands that crossed the wire drive an engine exactly like the originals."""
    buy = dict(market_id=1, side=c.Side.BUY, order_type=c.OrderType.LIMIT)
    script: list[c.Command] = [
        c.CreateEvent(title="Final", outcomes=("A", "B", "C"), slug="final"),
        c.Deposit(user_id=1, amount=10_000_000),
        c.Deposit(user_id=2, amount=10_000_000),
        c.PlaceOrder(user_id=1, outcome=c.Outcome.YES, quantity=10, price=4_000, **buy),
        c.PlaceOrder(user_id=2, outcome=c.Outcome.NO, quantity=4, price=6_000,
                     client_order_id="n-1", **buy),
        c.PlaceBatch(user_id=2, orders=(
            c.PlaceOrder(user_id=2, outcome=c.Outcome.NO, quantity=2, price=5_900, **buy),
            c.PlaceOrder(user_id=2, outcome=c.Outcome.YES, quantity=1, price=100,
                         tif=c.TimeInForce.IOC, **buy),
        )),
        c.SplitEvent(user_id=1, event_id=1, quantity=5),
        c.Convert(user_id=2, event_id=1, outcome_ids=(1,), quantity=4),
        c.CancelAll(user_id=1),
        c.ResolveEvent(event_id=1, winning_outcome_id=2),
    ]
    direct, wired = Engine(), Engine()
    kinds = set()
    for seq, command in enumerate(script, start=1):
        command.seq, command.ts_ms = seq, 1_000 + seq
        expected = direct.apply(command)
        received = decode_command(encode_command(command))
        events = wired.apply(received)
        assert events == expected
        assert decode_events(encode_events(events)) == expected
        kinds.update(e.kind for e in events)
    assert {"event", "fill", "order", "ledger", "resolved", "batch_item"} <= kinds
