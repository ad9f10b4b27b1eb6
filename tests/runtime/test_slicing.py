"""Big work in bounded slices (``runtime.slicing``): the sliced codecs write and read
exactly what the whole ones do, a slicer yields only once its budget is spent, and the
engine service encodes a big command's events in slices."""

from __future__ import annotations

import asyncio

from pmarket.bus import decode_events, encode_events
from pmarket.engine import CancelAll, CreateEvent, Deposit, Engine, Outcome, PlaceOrder, Side
from pmarket.runtime.eventlog import (
    decode_delivery,
    decode_delivery_sliced,
    encode_logged_delivery,
)
from pmarket.runtime.slicing import (
    CHUNK,
    SLICED_BYTES,
    SLICED_EVENTS,
    Slicer,
    decode_events_sliced,
    encode_events_sliced,
)

from .test_engine_service import Harness

N = 3_000


def wire(events) -> list[tuple]:
    return [e.wire() for e in events]


def cancel_all_events(n: int = N) -> list:
    """The events of a cancel-all of ``n`` one-share bids on 40 levels."""
    engine = Engine()
    commands = [CreateEvent(title="x"), Deposit(user_id=1, amount=10**12)]
    commands += [PlaceOrder(user_id=1, market_id=1, outcome=Outcome.YES, side=Side.BUY,
                            quantity=1, price=1000 + 100 * (i % 40)) for i in range(n)]
    for seq, cmd in enumerate(commands, 1):
        cmd.seq, cmd.ts_ms = seq, 1_700_000_000_000
        engine.apply(cmd)
    cmd = CancelAll(user_id=1)
    cmd.seq, cmd.ts_ms = len(commands) + 1, 1_700_000_000_001
    return engine.apply(cmd)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_slicer_yields_only_once_its_budget_is_spent():
    clock = FakeClock()
    slicer = Slicer(budget_s=0.002, clock=clock)
    held = []

    def steps():
        for _ in range(10):
            clock.now += 0.001  # each step costs 1 ms
            yield

    await slicer.run(steps(), lambda: held.append(clock.now))
    assert slicer.pauses == 5  # every second step ends a 2 ms slice
    assert len(held) == 5  # told before each pause
    slicer.restart()
    assert not slicer.due()
    clock.now += 0.002
    assert slicer.due()


async def test_sliced_codecs_write_and_read_what_the_whole_ones_do():
    events = cancel_all_events()
    assert len(events) > N >= SLICED_EVENTS
    slicer = Slicer(budget_s=0.0)  # a pause at every chunk
    data = await encode_events_sliced(events, slicer)
    assert data == encode_events(events)
    assert len(data) >= SLICED_BYTES
    assert slicer.pauses == -(-len(events) // CHUNK)
    decoded = await decode_events_sliced(data, slicer)
    assert wire(decoded) == wire(decode_events(data)) == wire(events)
    assert slicer.pauses == 2 * -(-len(events) // CHUNK)
    payload = encode_logged_delivery(7, 7, 123, data, [("1-1", b'{"type":"CancelAll"}')])
    whole = decode_delivery(payload, "5-0")
    sliced = await decode_delivery_sliced(payload, "5-0", slicer)
    assert (sliced.first_seq, sliced.last_seq, sliced.ts_ms, sliced.message_id) == (
        whole.first_seq, whole.last_seq, whole.ts_ms, whole.message_id)
    assert wire(sliced.events) == wire(whole.events)


async def test_small_payloads_take_the_whole_codecs_without_yielding():
    events = cancel_all_events(10)
    slicer = Slicer(budget_s=0.0)
    data = await encode_events_sliced(events, slicer)
    assert wire(await decode_events_sliced(data, slicer)) == wire(events)
    assert slicer.pauses == 0


async def test_the_engine_service_encodes_a_big_commands_events_in_slices():
    h = Harness()
    service = await h.start()
    service.slicer = Slicer(budget_s=0.0)
    try:
        await h.request(CreateEvent(title="x"))
        await h.request(Deposit(user_id=1, amount=10**12))
        for start in range(0, N, 500):
            await asyncio.gather(*(h.request(PlaceOrder(
                user_id=1, market_id=1, outcome=Outcome.YES, side=Side.BUY, quantity=1,
                price=1000 + 100 * (i % 40))) for i in range(start, start + 500)))
        pauses = service.slicer.pauses
        events = await h.request(CancelAll(user_id=1))
        assert service.slicer.pauses - pauses >= N // CHUNK
    finally:
        await h.stop()
    assert sum(1 for e in events if e.kind == "order" and e.status == "cancelled") == N
    last = decode_delivery((await h.log())[-1].payload)
    assert wire(last.events) == wire(events)


