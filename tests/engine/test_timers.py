"""Time-driven changes: an event closes at its close time, a dead-man switch fires.

Time only ever arrives inside commands; these tests move ``Exchange.now`` (the ``ts_ms``
of the next commands) and send ``Expire`` ticks as the runtime would.
"""

from __future__ import annotations

import orjson
import pytest

from pmarket.engine import (
    CreateEvent,
    DeleteEvent,
    DisarmHeartbeat,
    Engine,
    EventStatus,
    Expire,
    Heartbeat,
    ResolveEvent,
    Split,
    UpdateEvent,
)
from pmarket.engine.events import Clock, DeadManState, Reason, command_events
from pmarket.engine.timers import MAX_TIMEOUT_MS, MIN_TIMEOUT_MS

from .exchange import ALICE, BOB, Exchange, as_dict, of_kind, usd

START = 1_000_000
TIMEOUT = 10_000


@pytest.fixture
def ex():
    ex = Exchange()
    ex.now = START
    for user in (ALICE, BOB):
        ex.fund(user)
    return ex


def event_at(ex: Exchange, close_ms: int | None, **fields) -> tuple[int, int]:
    """A single-market event closing at ``close_ms``: (event id, market id)."""
    data = as_dict(ex.apply(CreateEvent(title="E", close_time_ms=close_ms, **fields))[0])
    return data["event_id"], data["markets"][0][0]


def status(ex: Exchange, event_id: int) -> str:
    return ex.engine.events[event_id].status


def open_ids(ex: Exchange, user: int) -> list[int]:
    return [o.order_id for o in ex.engine.open_orders(user)]


def at(ex: Exchange, ms: int, cmd) -> list[tuple]:
    ex.now = ms
    return ex.apply(cmd)


# --- close time ------------------------------------------------------------------------


def test_an_event_closes_at_its_close_time_and_its_open_orders_are_cancelled(ex):
    event_id, mid = event_at(ex, START + 5_000)
    resting = ex.placed(ex.buy_yes(ALICE, mid, "0.40"))["order_id"]
    at(ex, START + 4_999, Expire())
    assert status(ex, event_id) == "active"

    events = at(ex, START + 5_000, Expire())

    assert status(ex, event_id) == "closed"
    assert ex.engine.markets[mid].status == "closed"
    cancelled = of_kind(events, "order")
    assert [(o["order_id"], o["status"], o["reason"]) for o in cancelled] == [
        (resting, "cancelled", Reason.EVENT_CLOSED)]
    assert of_kind(events, "event")[0]["status"] == "closed"
    assert ex.cash(ALICE) == (usd(1000), 0)
    assert events[-1] == Clock(START + 5_000, 0)  # the close came before the command


def test_nothing_trades_past_the_close_time_even_before_a_tick(ex):
    """The first command past the close time closes the event before it is applied."""
    _, mid = event_at(ex, START + 5_000)
    ex.apply(Split(user_id=BOB, market_id=mid, quantity=10))
    ex.sell_yes(BOB, mid, "0.50")
    ex.now = START + 7_000
    events = ex.buy_yes(ALICE, mid, "0.50")
    assert ex.rejection(command_events(events)) == Reason.MARKET_NOT_ACTIVE
    assert not ex.fills(events)
    assert open_ids(ex, BOB) == []


def test_a_close_time_already_past_closes_the_event_at_once(ex):
    event_id, _ = event_at(ex, START - 1)
    assert status(ex, event_id) == "closed"
    other, mid = event_at(ex, START + 60_000)
    ex.buy_yes(ALICE, mid, "0.30")
    events = ex.apply(UpdateEvent(event_id=other, close_time_ms=START))
    assert status(ex, other) == "closed" and open_ids(ex, ALICE) == []
    assert of_kind(events, "event")[-1]["status"] == "closed"


def test_a_moved_close_time_fires_only_at_its_new_time(ex):
    event_id, _ = event_at(ex, START + 5_000)
    ex.apply(UpdateEvent(event_id=event_id, close_time_ms=START + 9_000))
    assert ex.engine.next_due_ms() == START + 9_000  # the old time is stale, not due
    at(ex, START + 8_000, Expire())
    assert status(ex, event_id) == "active"
    at(ex, START + 9_000, Expire())
    assert status(ex, event_id) == "closed"


def test_an_event_reopened_after_its_close_time_stays_open(ex):
    event_id, _ = event_at(ex, START + 5_000)
    at(ex, START + 6_000, Expire())
    ex.apply(UpdateEvent(event_id=event_id, status=EventStatus.ACTIVE))
    at(ex, START + 60_000, Expire())
    assert status(ex, event_id) == "active"
    assert ex.engine.next_due_ms() is None


def test_an_event_closed_and_reopened_before_its_close_time_still_closes_then(ex):
    event_id, _ = event_at(ex, START + 5_000)
    ex.apply(UpdateEvent(event_id=event_id, status=EventStatus.CLOSED))
    ex.apply(UpdateEvent(event_id=event_id, status=EventStatus.ACTIVE))
    at(ex, START + 5_000, Expire())
    assert status(ex, event_id) == "closed"


def test_resolving_or_deleting_an_event_drops_its_pending_close(ex):
    resolved, _ = event_at(ex, START + 5_000)
    deleted, _ = event_at(ex, START + 6_000)
    ex.apply(ResolveEvent(event_id=resolved))
    ex.apply(DeleteEvent(event_id=deleted))
    assert ex.engine.timers.closes == {}
    assert ex.engine.next_due_ms() is None
    assert at(ex, START + 7_000, Expire()) == []


# --- dead-man switch -----------------------------------------------------------------------


def armed(ex: Exchange) -> tuple[int, list[int]]:
    """ALICE with two resting orders and a switch armed at START: (market, order ids)."""
    _, mid = event_at(ex, None)
    ids = [ex.placed(ex.buy_yes(ALICE, mid, p))["order_id"] for p in ("0.30", "0.31")]
    events = ex.apply(Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    assert events == [DeadManState(ALICE, START + TIMEOUT, TIMEOUT, None)]
    return mid, ids


def test_a_heartbeat_in_time_keeps_the_orders(ex):
    armed(ex)
    events = at(ex, START + TIMEOUT - 1, Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    assert events == [DeadManState(ALICE, START + 2 * TIMEOUT - 1, TIMEOUT, None)]
    at(ex, START + 2 * TIMEOUT - 2, Expire())
    assert len(open_ids(ex, ALICE)) == 2


def test_a_missed_deadline_cancels_every_open_order_and_turns_the_switch_off(ex):
    mid, ids = armed(ex)
    ex.buy_yes(BOB, mid, "0.20")
    events = at(ex, START + TIMEOUT, Expire())
    cancelled = of_kind(events, "order")
    assert [(o["order_id"], o["status"], o["reason"]) for o in cancelled] == [
        (i, "cancelled", Reason.DEAD_MAN_SWITCH) for i in ids]
    assert DeadManState(ALICE, None, TIMEOUT, START + TIMEOUT) in events
    assert ex.cash(ALICE) == (usd(1000), 0)
    assert len(open_ids(ex, BOB)) == 1  # only the owner's orders
    # Off now: a later order stays, however much time passes.
    ex.buy_yes(ALICE, mid, "0.25")
    at(ex, START + 100 * TIMEOUT, Expire())
    assert len(open_ids(ex, ALICE)) == 1


@pytest.mark.parametrize("late_by", [0, 1, 5_000])
@pytest.mark.parametrize("tick_first", [False, True])
def test_a_heartbeat_at_or_past_the_deadline_is_too_late_whatever_the_order(ex, late_by,
                                                                             tick_first):
    """The race: a heartbeat and the runtime's tick stamped with the same time (one
    batch), in either order, or a heartbeat alone. The switch fires before the heartbeat
    is applied; the heartbeat then arms it again and says it fired."""
    mid, _ = armed(ex)
    now = START + TIMEOUT + late_by
    ex.now = now
    if tick_first:
        ex.apply(Expire())
    events = ex.apply(Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    if not tick_first:
        ex.apply(Expire())
    assert open_ids(ex, ALICE) == []
    assert command_events(events) == [DeadManState(ALICE, now + TIMEOUT, TIMEOUT, now)]
    # Armed again: the orders placed since go at the new deadline.
    ex.buy_yes(ALICE, mid, "0.10")
    at(ex, now + TIMEOUT, Expire())
    assert open_ids(ex, ALICE) == []
    # The next heartbeat reports that second firing, and only that one.
    events = at(ex, now + TIMEOUT + 1, Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    assert command_events(events)[0].fired_ms == now + TIMEOUT
    events = at(ex, now + TIMEOUT + 2, Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    assert command_events(events)[0].fired_ms is None


def test_a_disarmed_switch_never_cancels_anything(ex):
    mid, ids = armed(ex)
    events = at(ex, START + 1, DisarmHeartbeat(user_id=ALICE))
    assert events == [DeadManState(ALICE, None, TIMEOUT, None)]
    later = ex.placed(ex.buy_yes(ALICE, mid, "0.20"))["order_id"]
    at(ex, START + TIMEOUT, Expire())
    at(ex, START + 10 * TIMEOUT, Expire())
    assert open_ids(ex, ALICE) == [*ids, later]
    assert ex.engine.next_due_ms() is None
    assert ex.apply(DisarmHeartbeat(user_id=ALICE)) == [DeadManState(ALICE, None, 0, None)]


def test_a_rearmed_switch_keeps_only_its_own_deadline(ex):
    """Disarm, then arm with a longer timeout: the first deadline must not fire."""
    armed(ex)
    at(ex, START + 1, DisarmHeartbeat(user_id=ALICE))
    at(ex, START + 2, Heartbeat(user_id=ALICE, timeout_ms=3 * TIMEOUT))
    at(ex, START + TIMEOUT, Expire())
    assert len(open_ids(ex, ALICE)) == 2
    at(ex, START + 2 + 3 * TIMEOUT, Expire())
    assert open_ids(ex, ALICE) == []


def test_a_switch_fires_for_a_user_without_orders_or_account(ex):
    at(ex, START, Heartbeat(user_id=77, timeout_ms=MIN_TIMEOUT_MS))
    events = at(ex, START + MIN_TIMEOUT_MS, Expire())
    assert events == [DeadManState(77, None, MIN_TIMEOUT_MS, START + MIN_TIMEOUT_MS),
                      Clock(START + MIN_TIMEOUT_MS, 0)]


@pytest.mark.parametrize(("user", "timeout"), [
    (ALICE, MIN_TIMEOUT_MS - 1), (ALICE, MAX_TIMEOUT_MS + 1), (ALICE, 0), (ALICE, "5000"),
    (ALICE, 5000.0), (ALICE, True), (0, TIMEOUT), (-1, TIMEOUT), (2**63, TIMEOUT),
    ("1", TIMEOUT)])
def test_a_bad_heartbeat_is_rejected_and_changes_nothing(ex, user, timeout):
    before = ex.engine.digest()
    events = ex.apply(Heartbeat(user_id=user, timeout_ms=timeout))
    assert [e.reason for e in events] == [Reason.INVALID_FIELD]
    assert ex.engine.digest() == before


def test_next_due_is_the_earliest_live_timer(ex):
    assert ex.engine.next_due_ms() is None
    event_at(ex, START + 50_000)
    ex.apply(Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    at(ex, START + 1_000, Heartbeat(user_id=ALICE, timeout_ms=TIMEOUT))
    assert ex.engine.next_due_ms() == START + 1_000 + TIMEOUT
    ex.apply(DisarmHeartbeat(user_id=ALICE))
    assert ex.engine.next_due_ms() == START + 50_000


# --- snapshots and replay --------------------------------------------------------------------


def test_a_restored_engine_fires_the_same_timers(ex):
    armed(ex)
    event_at(ex, START + 3_000)
    ex.apply(Heartbeat(user_id=BOB, timeout_ms=MIN_TIMEOUT_MS))
    at(ex, START + MIN_TIMEOUT_MS, Expire())  # BOB's fires: a fired switch is state too
    restored = Engine.restore(orjson.loads(orjson.dumps(ex.engine.snapshot())))
    assert restored.digest() == ex.engine.digest()
    later = [Expire(ts_ms=START + TIMEOUT), Heartbeat(user_id=BOB, timeout_ms=TIMEOUT,
                                                       ts_ms=START + TIMEOUT + 1)]
    for cmd in later:
        assert restored.apply(cmd) == ex.engine.apply(cmd)
    assert restored.digest() == ex.engine.digest()


def test_a_version_2_snapshot_keeps_the_close_times_of_unresolved_events(ex):
    open_event, _ = event_at(ex, START + 5_000)
    resolved, _ = event_at(ex, START + 5_000)
    ex.apply(ResolveEvent(event_id=resolved))
    data = ex.engine.snapshot()
    data["version"] = 2
    del data["timers"]
    restored = Engine.restore(data)
    assert restored.timers.closes == {open_event: START + 5_000}
    restored.apply(Expire(ts_ms=START + 5_000))
    assert restored.events[open_event].status == "closed"
