"""Operator routes (admin token only): events' lifecycle, users, and the money audit.

Event changes are engine commands; their answer is the event read back once projected.
The audit is computed from the database alone, so it works beside a remote engine: it
rebuilds the collateral every event must hold from the trades (mints lock $1 per share
pair, merges release it) and the ledger (splits, merges, conversions, payouts), and
checks the exchange's invariant
``deposits - withdrawals = user cash + collateral + fees + rounding`` (fees: what the
trades' takers paid) and, for each unresolved event, that its collateral pays every
possible resolution. ``/admin/fees`` sums the same trade fees per event.

Disabling a user (``/admin/users/{id}/disable``) refuses their tokens and keys at once
on every server (``sessions``) and cancels their open orders; enabling lets them sign
in again (their old tokens stay dead: disabling moved their session epoch on).

Invariant: nothing here returns a password hash; ``/admin/users`` selects public columns
only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from sqlalchemy import func, select, update

from pmarket import api
from pmarket.db import Balance, Event, LedgerEntry, Market, Position, Trade, User
from pmarket.db.types import to_ms
from pmarket.engine import (
    CancelAll,
    CreateEvent,
    DeleteEvent,
    EventStatus,
    ResolveEvent,
    UpdateEvent,
)
from pmarket.engine.events import EventState, Resolved
from pmarket.engine.units import SCALE, VALID_TICKS, format_money

from .. import views
from ..deps import CurrentAdmin, RuntimeDep
from ..errors import ApiError, not_found
from ..exactjson import ExactJSONRoute
from ..params import PathId
from ..sessions import next_auth_seq
from .common import ERRORS, PageParams, ok, page, read
from .events import read_event

log = logging.getLogger("pmarket.server.admin")

router = APIRouter(route_class=ExactJSONRoute, prefix="/admin", tags=["admin"], responses=ERRORS)

EventId = PathId
UserId = PathId
_USER_COLUMNS = (User.id, User.email, User.name, User.created_at, User.disabled_at)
_sweeps: set[asyncio.Task] = set()


@router.post("/events", status_code=201, response_model=api.Event)
async def create_event(body: api.EventCreate, _admin: CurrentAdmin, runtime: RuntimeDep):
    """Create an event: one market per outcome, or a single yes/no market."""
    if body.tick_size not in VALID_TICKS:
        raise ApiError(422, "invalid_field", "tick_size must be 0.01, 0.001 or 0.0001")
    if len(set(body.outcomes)) != len(body.outcomes):
        raise ApiError(422, "invalid_field", "outcomes: names must be distinct")
    events = await runtime.gateway.send(CreateEvent(
        title=body.title, outcomes=tuple(body.outcomes), tick=body.tick_size,
        description=body.description, category=body.category, slug=body.slug or "",
        close_time_ms=to_ms(body.close_time),
        fee_rate=runtime.settings.fee_rate if body.fee_rate is None else body.fee_rate))
    event_id = next(ev.event_id for ev in events if isinstance(ev, EventState))
    return ok(await read_event(runtime, event_id), 201)


@router.patch("/events/{event_id}", response_model=api.Event)
async def update_event(event_id: EventId, body: api.EventUpdate, _admin: CurrentAdmin,
                       runtime: RuntimeDep):
    """Edit an event or close/reopen it (closing cancels its open orders)."""
    await runtime.gateway.send(UpdateEvent(
        event_id=event_id, title=body.title, description=body.description,
        category=body.category, close_time_ms=to_ms(body.close_time),
        status=EventStatus(body.status) if body.status else None, fee_rate=body.fee_rate))
    return ok(await read_event(runtime, event_id))


@router.post("/events/{event_id}/resolve", response_model=api.Resolution)
async def resolve_event(event_id: EventId, body: api.EventResolve, _admin: CurrentAdmin,
                        runtime: RuntimeDep):
    """Resolve with a winner (null: a single-outcome event's NO wins) or void it."""
    if body.void and body.winning_outcome_id is not None:
        raise ApiError(422, "invalid_field", "give winning_outcome_id or void, not both")
    events = await runtime.gateway.send(ResolveEvent(
        event_id=event_id, winning_outcome_id=body.winning_outcome_id, void=body.void))
    payouts = next((ev.payouts_total for ev in events if isinstance(ev, Resolved)), 0)
    return ok({"event": await read_event(runtime, event_id),
               "payouts_total": format_money(payouts)})


@router.delete("/events/{event_id}", status_code=204, response_class=Response)
async def delete_event(event_id: EventId, _admin: CurrentAdmin, runtime: RuntimeDep):
    """Delete an event nothing ever traded or is held in (409 otherwise)."""
    await runtime.gateway.send(DeleteEvent(event_id=event_id))
    return Response(status_code=204)


@router.get("/users", response_model=api.Page[api.AdminUser])
async def list_users(_admin: CurrentAdmin, runtime: RuntimeDep, paging: PageParams):
    """Users, oldest first (public fields only)."""
    def query(conn):
        total = conn.execute(select(func.count()).select_from(User)).scalar_one()
        rows = conn.execute(select(*_USER_COLUMNS)
                            .order_by(User.id).limit(paging.limit).offset(paging.offset)).all()
        return total, rows

    total, rows = await read(runtime, query, consistent=False)
    return ok(page([_user_view(r) for r in rows], total))


def _user_view(row) -> dict:
    return {"id": row.id, "email": row.email, "name": row.name,
            "created_at": views.iso(row.created_at), "disabled": row.disabled_at is not None,
            "disabled_at": views.iso(row.disabled_at)}


async def _set_disabled(runtime, user_id: int, disabled: bool):
    """Write the user's new state with the next ``auth_seq`` and apply it here (404 if
    no such user). Disabling also moves the session epoch on: enabling later does not
    revive tokens issued before."""
    def run():
        with runtime.db.begin() as conn:
            seq = next_auth_seq(conn)  # first, as everywhere: one lock order
            row = conn.execute(select(*_USER_COLUMNS).where(User.id == user_id)
                               .with_for_update()).first()
            if row is None:
                return None
            values: dict = {"auth_seq": seq}
            if disabled:
                values["session_epoch"] = User.session_epoch + 1
                values["disabled_at"] = row.disabled_at or datetime.now(UTC)
            else:
                values["disabled_at"] = None
            conn.execute(update(User).where(User.id == user_id).values(**values))
            return conn.execute(select(*_USER_COLUMNS).where(User.id == user_id)).first()

    row = await asyncio.to_thread(run)
    if row is None:
        raise not_found(f"user {user_id}")
    await runtime.sessions.changed()
    return row


async def _cancel_orders_later(runtime, user_id: int) -> None:
    """Cancel again once every server has surely applied the disabling: an order that
    passed another server's check just before it learnt of the change may reach the
    engine after the first cancellation."""
    await asyncio.sleep(runtime.settings.auth_max_stale_s)
    if runtime.stopping.is_set():
        return
    try:
        state = await asyncio.to_thread(_disabled_at, runtime, user_id)
        if state is not None:
            await runtime.gateway.send(CancelAll(user_id=user_id, market_id=None))
    except Exception:
        log.exception("second cancellation of disabled user %s's orders failed", user_id)


def _disabled_at(runtime, user_id: int):
    with runtime.db.connect() as conn:
        return conn.execute(select(User.disabled_at).where(User.id == user_id)).scalar()


@router.post("/users/{user_id}/disable", response_model=api.AdminUser)
async def disable_user(user_id: UserId, _admin: CurrentAdmin, runtime: RuntimeDep):
    """Disable a user: their tokens and API keys stop working at once (401), on every
    server, and their open orders are cancelled. Disabling twice is harmless."""
    row = await _set_disabled(runtime, user_id, True)
    await runtime.gateway.send(CancelAll(user_id=user_id, market_id=None))
    if not runtime.settings.embedded:
        task = asyncio.create_task(_cancel_orders_later(runtime, user_id))
        _sweeps.add(task)
        task.add_done_callback(_sweeps.discard)
    return ok(_user_view(row))


@router.post("/users/{user_id}/enable", response_model=api.AdminUser)
async def enable_user(user_id: UserId, _admin: CurrentAdmin, runtime: RuntimeDep):
    """Enable a disabled user again: they may sign in (old tokens stay revoked) and
    their API keys work again."""
    return ok(_user_view(await _set_disabled(runtime, user_id, False)))


def audit(conn) -> dict:
    """The money audit of the projected database (see the module docstring)."""
    ledger = dict(conn.execute(select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
                               .group_by(LedgerEntry.kind)).all())
    cash = conn.execute(select(func.coalesce(func.sum(Balance.available + Balance.reserved),
                                             0))).scalar_one()
    events = {e.id: e for e in conn.execute(select(Event)).scalars()}
    markets = conn.execute(select(Market.id, Market.event_id, Market.position)
                           .order_by(Market.event_id, Market.position)).all()
    event_of = {m.id: m.event_id for m in markets}
    collateral: dict[int, int] = defaultdict(int)
    for market_id, kind, qty in conn.execute(
            select(Trade.market_id, Trade.kind, func.sum(Trade.quantity))
            .where(Trade.kind.in_(("mint", "merge"))).group_by(Trade.market_id, Trade.kind)):
        qty = int(qty)  # PostgreSQL sums are NUMERIC
        collateral[event_of.get(market_id, 0)] += (qty if kind == "mint" else -qty) * SCALE
    for event_id, amount in conn.execute(
            select(LedgerEntry.event_id, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.kind.notin_(("deposit", "withdrawal")))
            .group_by(LedgerEntry.event_id)):
        collateral[event_id or 0] -= int(amount)
    rounding = 0
    for e in events.values():
        rounding += e.rounding or 0
        collateral[e.id] -= e.rounding or 0
    supply = {row.market_id: (row.yes, row.no) for row in conn.execute(
        select(Position.market_id, func.sum(Position.yes).label("yes"),
               func.sum(Position.no).label("no")).group_by(Position.market_id))}
    problems, report = [], []
    by_event: dict[int, list[int]] = defaultdict(list)
    for m in markets:
        by_event[m.event_id].append(m.id)
    for event_id, ids in by_event.items():
        e = events[event_id]
        yes = [int(supply.get(i, (0, 0))[0] or 0) for i in ids]
        no = [int(supply.get(i, (0, 0))[1] or 0) for i in ids]
        held = collateral.get(event_id, 0)
        if e.status == "resolved":
            payouts = [] if not held else [held + 1]  # must be zero once resolved
        else:
            payouts = [(yes[k] + sum(no) - no[k]) * SCALE for k in range(len(ids))]
            if len(ids) == 1:
                payouts.append(no[0] * SCALE)
        if any(p != held for p in payouts):
            problems.append(event_id)
        for k, i in enumerate(ids):
            report.append({"market_id": i, "event_id": event_id, "status": e.status,
                           "yes_supply": yes[k], "no_supply": no[k],
                           "event_collateral": format_money(held)})
    deposits = int(ledger.get("deposit") or 0)
    withdrawals = -int(ledger.get("withdrawal") or 0)
    total_collateral = sum(collateral.values())
    fees = int(conn.execute(select(func.coalesce(func.sum(Trade.fee), 0))).scalar_one())
    difference = deposits - withdrawals - (int(cash) + total_collateral + fees + rounding)
    return {"ok": difference == 0 and not problems, "deposits": format_money(deposits),
            "withdrawals": format_money(withdrawals), "user_cash": format_money(int(cash)),
            "collateral": format_money(total_collateral), "fees": format_money(fees),
            "rounding": format_money(rounding), "difference": format_money(difference),
            "markets": report}


def fees_by_event(conn) -> dict:
    """What takers paid in fees, overall and per event, from the projected trades."""
    rows = conn.execute(
        select(Market.event_id, func.sum(Trade.fee))
        .join(Market, Market.id == Trade.market_id)
        .where(Trade.fee > 0).group_by(Market.event_id).order_by(Market.event_id)).all()
    by_event = [{"event_id": eid, "amount": format_money(int(amount))}
                for eid, amount in rows]
    return {"total": format_money(sum(int(amount) for _, amount in rows)),
            "by_event": by_event}


@router.get("/fees", response_model=api.Fees)
async def get_fees(_admin: CurrentAdmin, runtime: RuntimeDep):
    """Fees the exchange collected: the total and each event's part (taker fees only)."""
    return ok(await read(runtime, fees_by_event))


@router.get("/audit", response_model=api.Audit)
async def get_audit(_admin: CurrentAdmin, runtime: RuntimeDep):
    """Does every unit of money deposited sit somewhere it should?"""
    return ok(await read(runtime, audit))
