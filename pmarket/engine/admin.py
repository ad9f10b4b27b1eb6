"""Operator commands: create, update, close/reopen, delete and resolve events.

Resolution cancels every open order of the event, pays each share what it is worth and
burns it, and leaves the event's collateral at zero: a winner's YES and every loser's NO
pay $1; a void event of N outcomes pays 1/N per YES and 1 - 1/N per NO, rounded down per
position, the remainder going to the exchange's rounding account.

Setting a close time (creation or update) schedules the event's close with ``timers``,
which also owns closing itself (``close_event``), so an operator's close and a close
time's are the same change.

Handlers are functions of the engine (see engine.py). Every text and time an operator
sends is checked against the input limits (``limits``) before anything changes, so an
event the engine accepts is one every database can store; a breach is rejected with
reason ``invalid_field``.
"""

from __future__ import annotations

from typing import Any

from . import commands as c
from .collateral import ledger
from .commands import EventStatus
from .events import EventDeleted, Payout, Reason, Resolved
from .limits import (
    MAX_CATEGORY,
    MAX_DESCRIPTION,
    MAX_OUTCOME_NAME,
    MAX_OUTCOMES,
    MAX_TITLE,
    slug_problem,
    text_problem,
    time_ms_problem,
)
from .model import Event, Market
from .state import State
from .timers import cancel_event_orders, close_event, forget_event, schedule_close
from .units import MAX_FEE_RATE, SCALE, VALID_TICKS


def _descriptive_problem(raw: Any, create: bool) -> tuple[str, str] | None:
    """(reason, message) for the first of title, description, category, close time and
    fee rate that breaks the input limits (``limits``), or None. ``None`` means "unchanged" in an
    update; a creation needs every text field as a string."""
    title = raw.title
    if create or title is not None:
        problem = text_problem(title, MAX_TITLE)
        if problem is not None:
            return Reason.INVALID_FIELD, f"title {problem}"
        if not title.strip():
            return Reason.INVALID_EVENT, "an event needs a title"
    description = raw.description
    if create or description is not None:
        problem = text_problem(description, MAX_DESCRIPTION)
        if problem is not None:
            return Reason.INVALID_FIELD, f"description {problem}"
    category = raw.category
    if create or category is not None:
        problem = text_problem(category, MAX_CATEGORY)
        if problem is not None:
            return Reason.INVALID_FIELD, f"category {problem}"
    close_time_ms = raw.close_time_ms
    if close_time_ms is not None:
        problem = time_ms_problem(close_time_ms)
        if problem is not None:
            return Reason.INVALID_FIELD, f"close_time_ms {problem}"
    fee_rate = raw.fee_rate
    if (create or fee_rate is not None) and (
            type(fee_rate) is not int or not 0 <= fee_rate <= MAX_FEE_RATE):
        return (Reason.INVALID_FIELD,
                f"fee_rate must be from 0 to {MAX_FEE_RATE} units (0 to 0.25)")
    return None


def _outcomes_problem(outcomes: Any) -> tuple[str, str] | None:
    """(reason, message) if the outcome names are not storable, distinct and not empty."""
    if not isinstance(outcomes, tuple | list):
        return Reason.INVALID_FIELD, "outcomes must be a list of names"
    if len(outcomes) > MAX_OUTCOMES:
        return Reason.INVALID_EVENT, f"an event has at most {MAX_OUTCOMES} outcomes"
    seen: set[str] = set()
    for i, name in enumerate(outcomes):
        problem = text_problem(name, MAX_OUTCOME_NAME)
        if problem is not None:
            return Reason.INVALID_FIELD, f"outcomes[{i}] {problem}"
        stripped: str = name.strip()
        if not stripped or stripped in seen:
            return Reason.INVALID_EVENT, "outcome names must be distinct and not empty"
        seen.add(stripped)
    return None


def _create_problem(raw: Any) -> tuple[str, str] | None:
    """(reason, message) why a ``CreateEvent`` cannot apply, or None."""
    found = _descriptive_problem(raw, True)
    if found is not None:
        return found
    problem = slug_problem(raw.slug)
    if problem is not None:
        return Reason.INVALID_FIELD, f"slug {problem}"
    if type(raw.tick) is not int or raw.tick not in VALID_TICKS:
        return Reason.INVALID_EVENT, "tick must be 100, 10 or 1 units (0.01, 0.001 or 0.0001)"
    return _outcomes_problem(raw.outcomes)


def create_event(eng: State, cmd: c.CreateEvent) -> None:
    """Create an event and one market per outcome (no outcomes: a single "Yes" market)."""
    raw: Any = cmd  # fields an operator controls: read unchecked, validated first
    found = _create_problem(raw)
    if found is not None:
        eng._reject(None, "CreateEvent", found[0], found[1])
        return
    title: str = raw.title
    tick: int = raw.tick
    names = [n.strip() for n in raw.outcomes] or ["Yes"]
    eng.last_event_id += eng.id_stride
    event = Event(eng.last_event_id, title.strip(), tick, eng.now_ms)
    event.description = cmd.description
    event.category = cmd.category
    event.slug = cmd.slug
    event.close_time_ms = cmd.close_time_ms
    event.fee_rate = cmd.fee_rate
    for name in names:
        eng.last_market_id += eng.id_stride
        market = Market(eng.last_market_id, event, name, tick, SCALE)
        event.markets.append(market)
        eng.markets[market.id] = market
    eng.events[event.id] = event
    schedule_close(eng, event)
    eng._out.append(event.snapshot())


def _event_or_reject(eng: State, event_id: int, command: str) -> Event | None:
    event = eng.events.get(event_id)
    if event is None:
        eng._reject(None, command, Reason.UNKNOWN_EVENT, f"event {event_id} does not exist")
        return None
    if event.status == "resolved":
        eng._reject(None, command, Reason.ALREADY_RESOLVED, f"event {event.id} is resolved")
        return None
    return event


def update_event(eng: State, cmd: c.UpdateEvent) -> None:
    """Change an event's descriptive fields; close (cancelling its orders) or reopen it."""
    event = _event_or_reject(eng, cmd.event_id, "UpdateEvent")
    if event is None:
        return
    found = _descriptive_problem(cmd, False)
    if found is not None:
        eng._reject(None, "UpdateEvent", found[0], found[1])
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
    if cmd.fee_rate is not None:
        event.fee_rate = cmd.fee_rate
    if status is not None and status.value != event.status:
        if status is EventStatus.CLOSED:
            close_event(eng, event, Reason.EVENT_CLOSED)
        else:
            event.status = status.value
            for market in event.markets:
                market.status = event.status
    if cmd.close_time_ms is not None:
        schedule_close(eng, event)  # after a reopen: a close time already past closes
    eng._out.append(event.snapshot())


def delete_event(eng: State, cmd: c.DeleteEvent) -> None:
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
    cancel_event_orders(eng, event, Reason.EVENT_DELETED)
    forget_event(eng, event.id)
    eng._flush()  # the cancellations refer to markets that are about to go
    gone = set(event.markets)
    for key in [k for k, o in eng.client_orders.items() if o.market in gone]:
        del eng.client_orders[key]
    for market in event.markets:
        del eng.markets[market.id]
        for pos in market.holders.values():
            eng.accounts[pos.user].positions.pop(market.id, None)
    del eng.events[event.id]
    eng._out.append(EventDeleted(event.id))


def _resolve_problem(event: Event, winner: int | None, void: bool) -> str | None:
    """Why the resolution cannot apply to ``event``, or None."""
    if void and winner is not None:
        return "a void resolution has no winning outcome"
    if not void and winner is None and event.is_multi:
        return f"event {event.id} has several outcomes: name the winner or void it"
    if winner is not None and winner not in [m.id for m in event.markets]:
        return f"outcome {winner} is not an outcome of event {event.id}"
    return None


def resolve(eng: State, cmd: c.ResolveEvent) -> None:
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
    cancel_event_orders(eng, event, Reason.EVENT_RESOLVED)
    forget_event(eng, event.id)
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
            yes, no = pos.yes, pos.no
            pos.yes = pos.no = 0
            eng._touch_position(pos)
            if amount:
                acct = eng.accounts[pos.user]
                acct.available += amount
                eng._touch_account(acct)
            paid += amount
            ledger(eng, pos.user, "payout", amount, event.id, market.id, yes + no)
            eng._out.append(Payout(pos.user, event.id, market.id, yes, no, amount,
                                  eng.now_ms))
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
    eng._out.append(Resolved(event.id, winner, event.void, paid, rounding, eng.now_ms))
    eng._out.append(event.snapshot())
