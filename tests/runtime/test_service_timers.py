"""The engine service's clock: close times and dead-man switches fire without traffic,
through a logged ``Expire`` tick, and at recovery when they fell due while it was down.

The service runs on the memory bus with a clock the test moves (``Clock``), so a
five-second timeout costs no waiting.
"""

from __future__ import annotations

import asyncio

import pytest

from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    Heartbeat,
    Outcome,
    PlaceOrder,
    Side,
)
from pmarket.engine.events import Reason, as_dict
from pmarket.runtime.eventlog import decode_delivery, decode_logged_delivery
from pmarket.runtime.runner import now_ms

from .test_engine_service import Harness

TIMEOUT = 5_000


class Clock:
    """Wall time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return now_ms() + self.offset


async def logged_commands(h: Harness) -> list:
    """Every command of the log, in order."""
    return [cmd for entry in await h.log()
            for _, cmd in decode_logged_delivery(entry.id, entry.payload).commands]


async def logged_events(h: Harness) -> list[tuple]:
    """Every event of the log, in order."""
    return [e for entry in await h.log() for e in decode_delivery(entry.payload).events]


async def until(predicate, what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def setup(h: Harness, clock: Clock) -> tuple[int, int]:
    """An event closing in a minute, an order resting in it, the owner's switch armed:
    (event id, order id)."""
    created = await h.request(CreateEvent(title="x", close_time_ms=clock() + 60_000))
    event_id = created[0][1]
    market_id = as_dict(created[0])["markets"][0][0]
    await h.request(Deposit(user_id=1, amount=100_000))
    placed = await h.request(PlaceOrder(user_id=1, market_id=market_id, outcome=Outcome.YES,
                                        side=Side.BUY, quantity=1, price=5000))
    await h.request(Heartbeat(user_id=1, timeout_ms=TIMEOUT))
    return event_id, placed[0][1]


@pytest.mark.parametrize("what", ["dead_man", "close_time"])
async def test_a_due_timer_fires_without_any_other_traffic(what):
    clock = Clock()
    h = Harness(expire_every_s=0.01, clock=clock)
    service = await h.start()
    event_id, order_id = await setup(h, clock)
    if what == "close_time":
        await h.request(Heartbeat(user_id=1, timeout_ms=300_000))  # out of the way
    clock.offset = TIMEOUT if what == "dead_man" else 60_000
    await until(lambda: order_id not in service.engine.orders, "the order to go")
    await h.stop()
    closed = service.engine.events[event_id].status == "closed"
    assert closed is (what == "close_time")
    cancelled = [e for e in await logged_events(h) if e[0] == "order" and e[1] == order_id]
    assert cancelled[-1][18] == (Reason.DEAD_MAN_SWITCH if what == "dead_man"
                                 else Reason.EVENT_CLOSED)
    commands = await logged_commands(h)
    assert type(commands[-1]).__name__ == "Expire"  # logged, so a replay fires it too
    replica = Engine()
    replica.apply_all(commands)
    assert replica.digest() == service.engine.digest()


async def test_timers_due_while_the_engine_was_down_fire_at_recovery(tmp_path):
    """Crash with a switch armed and a close time ahead; come back after both: the
    recovered service ticks at once, before any request arrives."""
    clock = Clock()
    h = Harness(tmp_path, expire_every_s=60.0, clock=clock)  # only the check at start
    await h.start()
    event_id, order_id = await setup(h, clock)
    await h.crash()
    clock.offset = 61_000
    service = await h.start()
    await until(lambda: service.engine.events[event_id].status == "closed",
                "the close at recovery")
    await h.stop()
    assert order_id not in service.engine.orders
    assert service.stats.expiry_ticks == 1
    switch = service.engine.timers.switches[1]
    assert switch.deadline_ms == 0 and switch.fired_ms >= clock() - 5_000
    # The tick is in the log: the same timers fire in the same place on every replay.
    assert type((await logged_commands(h))[-1]).__name__ == "Expire"


async def test_a_heartbeat_racing_the_tick_at_the_deadline_reports_the_firing():
    """Heartbeats sent as the deadline passes, the service's tick among them: whichever
    the engine applies first, a heartbeat stamped at or after the deadline reports the
    firing, and an order is cancelled by the switch if and only if it was."""
    clock = Clock()
    h = Harness(expire_every_s=0.0, clock=clock)  # the service checks every round
    service = await h.start()
    _, order_id = await setup(h, clock)
    deadline = service.engine.timers.switches[1].deadline_ms
    clock.offset = deadline - now_ms()  # the service's time is now the deadline
    replies = await asyncio.gather(*(h.request(Heartbeat(user_id=1, timeout_ms=TIMEOUT))
                                     for _ in range(5)))
    await h.stop()
    beats = [next(e for e in reply if e[0] == "dead_man") for reply in replies]
    fired = [b[4] for b in beats if b[4] is not None]
    assert len(fired) == 1 and fired[0] >= deadline  # exactly one heartbeat learns it
    assert order_id not in service.engine.orders
    events = await logged_events(h)
    assert [e[18] for e in events if e[0] == "order" and e[1] == order_id][-1] == \
        Reason.DEAD_MAN_SWITCH
    assert [e for e in events if e[0] == "dead_man" and e[2] is None] == [
        ("dead_man", 1, None, TIMEOUT, fired[0])]  # it fired once, and is armed again
    assert service.engine.timers.switches[1].deadline_ms == beats[-1][2]
