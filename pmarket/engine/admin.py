"""Operator commands: create, update, close/reopen, delete and resolve events.

Resolution cancels every open order of the event, pays each share what it is worth and
burns it, and leaves the event's collateral at zero: a winner's YES and every loser's NO
pay $1; a void event of N outcomes pays 1/N per YES and 1 - 1/N per NO, rounded down per
position, the remainder going to the exchange's rounding account.

Handlers are functions of the engine (see engine.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from . import commands as c
from .book import CANCELLED
from .collateral import ledger
from .commands import EventStatus
from .events import EVENT_DELETED, RESOLVED, Reason
from .ledger import Event, Market
from .trading import close
from .units import SCALE, VALID_TICKS

if TYPE_CHECKING:
    from .engine import Engine

MAX_OUTCOMES: Final = 100


def _names(outcomes: object) -> list[str]:
    """Outcome names as given (stripped; anything but a string counts as empty)."""
    items: Any = outcomes
    return [n.strip() if isinstance(n, str) else "" for n in items] or ["Yes"]


def create_event(eng: Engine, cmd: c.CreateEvent) -> None:
    """Create an event and one market per outcome."""
    raw: Any = cmd  # fields an operator controls: read unchecked, validated below
    title = raw.title.strip() if isinstance(raw.title, str) else ""
    names = _names(raw.outcomes)
    tick: int = raw.tick if type(raw.tick) is int else 0  # 0: not a valid tick either
    problem = None
    if not title:
        problem = "an event needs a title"
    elif tick not in VALID_TICKS:
        problem = "tick must be 100, 10 or 1 units (0.01, 0.001 or 0.0001)"
    elif not all(names) or len(set(names)) != len(names):
        problem = "outcome names must be distinct and not empty"
    elif len(names) > MAX_OUTCOMES:
        problem = f"an event has at most {MAX_OUTCOMES} outcomes"
    if problem:
        eng._reject(None, "CreateEvent", Reason.INVALID_EVENT, problem)
        return
    eng.last_event_id += eng.id_stride
    event = Event(eng.last_event_id, title, tick, eng.now_ms)
    event.description = cmd.description
    event.category = cmd.category
    event.slug = cmd.slug
    event.close_time_ms = cmd.close_time_ms
    for name in names:
        eng.last_market_id += eng.id_stride
        market = Market(eng.last_market_id, event, name, tick, SCALE)
        event.markets.append(market)
        eng.markets[market.id] = market
    eng.events[event.id] = event
    eng._out.append(event.snapshot())


def _event_or_reject(eng: Engine, event_id: int, command: str) -> Event | None:
    event = eng.events.get(event_id)
    if event is None:
        eng._reject(None, command, Reason.UNKNOWN_EVENT, f"event {event_id} does not exist")
        return None
    if event.status == "resolved":
        eng._reject(None, command, Reason.ALREADY_RESOLVED, f"event {event.id} is resolved")
        return None
    return event


def update_event(eng: Engine, cmd: c.UpdateEvent) -> None:
    """Change an event's descriptive fields; close (cancelling its orders) or reopen it."""
    event = _event_or_reject(eng, cmd.event_id, "UpdateEvent")
    if event is None:
        return
    if cmd.title is not None and not cmd.title.strip():
        eng._reject(None, "UpdateEvent", Reason.INVALID_EVENT, "an event needs a title")
        return
    status = cmd.status
    if status not in (None, EventStatus.ACTIVE, EventStatus.CLOSED):
        eng._reject(None, "UpdateEvent", Reason.INVALID_EVENT,
                    "status may only be set to active or closed (resolve to resolve)")
        return
    if cmd.title is not None:
        event.title = cmd.title.strip()
    if cmd.description is not None:
        event.description = cmd.description
    if cmd.category is not None:
        event.category = cmd.category
    if cmd.close_time_ms is not None:
        event.close_time_ms = cmd.close_time_ms
    if status is not None and status.value != event.status:
        event.status = status.value
        for market in event.markets:
            market.status = event.status
        if event.status == "closed":
            _cancel_event_orders(eng, event, Reason.EVENT_CLOSED)
    eng._out.append(event.snapshot())


def _cancel_event_orders(eng: Engine, event: Event, reason: str) -> None:
    ids = {m.id for m in event.markets}
    for order in [o for o in eng.orders.values() if o.market.id in ids]:
        close(eng, order, CANCELLED, reason)


def delete_event(eng: Engine, cmd: c.DeleteEvent) -> None:
    """Delete an event nobody traded or holds shares in (its open orders are cancelled)."""
    event = eng.events.get(cmd.event_id)
    if event is None:
        eng._reject(None, "DeleteEvent", Reason.UNKNOWN_EVENT,
                    f"event {cmd.event_id} does not exist")
        return
    if event.collateral or any(m.volume for m in event.markets):
        eng._reject(None, "DeleteEvent", Reason.EVENT_NOT_DELETABLE,
                    f"event {event.id} has traded or has shares outstanding")
        return
    _cancel_event_orders(eng, event, Reason.EVENT_DELETED)
    eng._flush()  # the cancellations refer to markets that are about to go
    gone = set(event.markets)
    for key in [k for k, o in eng.client_orders.items() if o.market in gone]:
        del eng.client_orders[key]
    for market in event.markets:
        del eng.markets[market.id]
        for pos in market.holders.values():
            eng.accounts[pos.user].positions.pop(market.id, None)
    del eng.events[event.id]
    eng._out.append((EVENT_DELETED, event.id))


def _resolve_problem(event: Event, winner: int | None, void: bool) -> str | None:
    """Why the resolution cannot apply to ``event``, or None."""
    if void and winner is not None:
        return "a void resolution has no winning outcome"
    if not void and winner is None and event.is_multi:
        return f"event {event.id} has several outcomes: name the winner or void it"
    if winner is not None and winner not in [m.id for m in event.markets]:
        return f"outcome {winner} is not an outcome of event {event.id}"
    return None


def resolve(eng: Engine, cmd: c.ResolveEvent) -> None:
    """Cancel the event's open orders, pay every share what it is worth and burn it."""
    event = _event_or_reject(eng, cmd.event_id, "ResolveEvent")
    if event is None:
        return
    raw: Any = cmd
    winner = cmd.winning_outcome_id
    void = bool(raw.void)
    problem = _resolve_problem(event, winner, void)
    if problem is not None:
        eng._reject(None, "ResolveEvent", Reason.UNKNOWN_OUTCOME, problem)
        return
    _cancel_event_orders(eng, event, Reason.EVENT_RESOLVED)
    n = len(event.markets) if event.is_multi else 2
    paid = 0
    for market in event.markets:
        won = market.id == winner
        for pos in market.holders.values():
            if pos.is_empty:
                continue
            if void:
                amount = (pos.yes * SCALE + pos.no * SCALE * (n - 1)) // n
            else:
                amount = (pos.yes if won else pos.no) * SCALE
            quantity = pos.yes + pos.no
            pos.yes = pos.no = 0
            eng._touch_position(pos)
            if amount:
                acct = eng.accounts[pos.user]
                acct.available += amount
                eng._touch_account(acct)
            paid += amount
            ledger(eng, pos.user, "payout", amount, event.id, market.id, quantity)
        market.status = "resolved"
    rounding = event.collateral - paid
    if rounding < 0 or (rounding and not void):
        raise AssertionError(
            f"event {event.id}: collateral {event.collateral} does not cover payouts {paid}")
    eng.treasury.rounding += rounding
    event.collateral = 0
    event.status = "resolved"
    event.winning_outcome_id = winner
    event.void = void
    eng._out.append((RESOLVED, event.id, winner, event.void, paid, rounding, eng.now_ms))
    eng._out.append(event.snapshot())
