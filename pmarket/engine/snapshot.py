"""Snapshots: the engine's whole state as plain data, and back.

``restore(snapshot())`` yields an engine that behaves exactly like the original: the
same events for the same following commands. Open orders are stored in the order they
rested, which is also their time priority within each price level, so resting them
again rebuilds every queue. ``digest()`` hashes the snapshot: two engines fed the same
command log have the same digest.
"""

from __future__ import annotations

import hashlib
import heapq
from typing import Any, Final

import orjson

from .model import Account, Event, Market, Order, Position, Timers
from .state import State
from .units import SCALE

SNAPSHOT_VERSION: Final = 5
"""Version 3 added client_order_id placements, 4 ``timers``, 5 each event's ``fee_rate``
and ``fees``. Older snapshots restore without what they lacked: no placement to check a
resend against (2), every unresolved event's close time pending (2 and 3), fee rates and
fees 0 (2 to 4), which is what they described."""

_READABLE_VERSIONS: Final = (2, 3, 4, SNAPSHOT_VERSION)


def _order_data(o: Order) -> dict[str, object]:
    return {
        "id": o.id, "user": o.user, "action": o.action, "price": o.price,
        "quantity": o.quantity, "remaining": o.remaining, "filled": o.filled,
        "status": o.status, "created_ms": o.created_ms, "updated_ms": o.updated_ms,
        "reason": o.reason, "order_type": o.order_type, "tif": o.tif,
        "post_only": o.post_only, "expires_at_ms": o.expires_at_ms,
        "client_order_id": o.client_order_id, "stp": o.stp, "market": o.market.id,
    }


def _event_data(e: Event) -> dict[str, object]:
    return {
        "id": e.id, "title": e.title, "tick": e.tick, "created_ms": e.created_ms,
        "description": e.description, "category": e.category, "slug": e.slug,
        "close_time_ms": e.close_time_ms, "status": e.status, "collateral": e.collateral,
        "winning_outcome_id": e.winning_outcome_id, "void": e.void,
        "fee_rate": e.fee_rate, "fees": e.fees,
        "markets": [[m.id, m.name, m.status, m.last_price, m.volume, list(m.holders)]
                    for m in e.markets],
    }


def snapshot(eng: State) -> dict[str, Any]:
    """The complete state as JSON-ready plain data."""
    t = eng.treasury
    return {
        "version": SNAPSHOT_VERSION,
        "ids": {"offset": eng.id_offset, "stride": eng.id_stride,
                "order": eng.last_order_id, "trade": eng.last_trade_id,
                "event": eng.last_event_id, "market": eng.last_market_id},
        "now_ms": eng.now_ms,
        "last_seq": eng.last_seq,
        "treasury": [t.deposits, t.withdrawals, t.fees, t.rounding],
        "events": [_event_data(e) for e in eng.events.values()],
        "accounts": [
            [a.user, a.available, a.reserved,
             [[p.market_id, p.yes, p.no, p.yes_reserved, p.no_reserved]
              for p in a.positions.values()]]
            for a in eng.accounts.values()
        ],
        "orders": [_order_data(o) for o in eng.orders.values()],
        "timers": eng.timers.data(),
        "client_orders": [
            [user, coid, o.id if eng.orders.get(o.id) is o else _order_data(o),
             None if o.placement is None else list(o.placement)]
            for (user, coid), o in eng.client_orders.items()
        ],
    }


def digest(eng: State) -> str:
    """SHA-256 of the snapshot: equal digests mean equal state."""
    return hashlib.sha256(orjson.dumps(snapshot(eng))).hexdigest()


def restore(eng: State, data: dict[str, Any]) -> None:
    """Put a new engine (``Engine.restore`` makes it) in exactly the state ``data``
    (from ``snapshot``) describes.

    Raises:
        ValueError: if the snapshot has another format version.
    """
    version = data.get("version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(f"unsupported snapshot version {version!r}")
    ids = data["ids"]
    eng.id_offset = ids["offset"]
    eng.id_stride = ids["stride"]
    eng.last_order_id = ids["order"]
    eng.last_trade_id = ids["trade"]
    eng.last_event_id = ids["event"]
    eng.last_market_id = ids["market"]
    eng.now_ms = data["now_ms"]
    eng.last_seq = data["last_seq"]
    t = eng.treasury
    t.deposits, t.withdrawals, t.fees, t.rounding = data["treasury"]
    holder_order: dict[int, list[int]] = {}
    for ed in data["events"]:
        _restore_event(eng, ed, holder_order)
    for user, available, reserved, positions in data["accounts"]:
        a = eng.accounts[user] = Account(user)
        a.available, a.reserved = available, reserved
        for mid, yes, no, yes_res, no_res in positions:
            p = a.positions[mid] = Position(user, mid)
            p.yes, p.no, p.yes_reserved, p.no_reserved = yes, no, yes_res, no_res
    # Holders in their original order: resolution pays out in that order.
    for mid, holders in holder_order.items():
        eng.markets[mid].holders = {u: eng.accounts[u].positions[mid] for u in holders}
    for od in data["orders"]:
        o = order_from(eng, od)
        o.market.book.rest(o)
        eng.orders[o.key] = o
        o.account.orders[o.key] = o
        if o.expires_at_ms is not None:
            heapq.heappush(eng._expiry, (o.expires_at_ms, o.id))
    for user, coid, ref, *rest in data["client_orders"]:
        o = eng.orders[ref] if isinstance(ref, int) else order_from(eng, ref)
        # Version 2 kept no placement: a resend of such an order answers it, unchecked.
        placement = rest[0] if rest else None
        o.placement = None if placement is None else tuple(placement)
        eng.client_orders[(user, coid)] = o
    for m in eng.markets.values():
        m.book.clear_dirty()
    eng.timers = Timers.from_data(data["timers"] if version >= 4 else {
        "closes": [[e.id, e.close_time_ms] for e in eng.events.values()
                   if e.close_time_ms is not None and e.status != "resolved"],
        "switches": []})


def _restore_event(eng: State, ed: dict[str, Any], holder_order: dict[int, list[int]]) -> None:
    e = Event(ed["id"], ed["title"], ed["tick"], ed["created_ms"])
    e.description = ed["description"]
    e.category = ed["category"]
    e.slug = ed["slug"]
    e.close_time_ms = ed["close_time_ms"]
    e.status = ed["status"]
    e.collateral = ed["collateral"]
    e.winning_outcome_id = ed["winning_outcome_id"]
    e.void = ed["void"]
    e.fee_rate = ed.get("fee_rate", 0)
    e.fees = ed.get("fees", 0)
    for mid, name, status, last, volume, holders in ed["markets"]:
        m = Market(mid, e, name, e.tick, SCALE)
        m.status, m.last_price, m.volume = status, last, volume
        holder_order[mid] = holders
        e.markets.append(m)
        eng.markets[mid] = m
    eng.events[e.id] = e


def order_from(eng: State, od: dict[str, Any]) -> Order:
    """An order as ``_order_data`` stored it, tied to its market, account and position."""
    market = eng.markets[od["market"]]
    yes = od["action"] in (0, 2)
    slot = (od["price"] if yes else SCALE - od["price"]) // market.tick
    acct = eng.accounts[od["user"]]
    o = Order(od["id"], od["user"], market, od["action"], od["price"], slot,
              od["quantity"], od["created_ms"], acct, acct.positions.get(market.id))
    o.remaining = od["remaining"]
    o.filled = od["filled"]
    o.status = od["status"]
    o.updated_ms = od["updated_ms"]
    o.reason = od["reason"]
    o.order_type = od["order_type"]
    o.tif = od["tif"]
    o.post_only = od["post_only"]
    o.expires_at_ms = od["expires_at_ms"]
    o.client_order_id = od["client_order_id"]
    o.stp = od["stp"]
    return o
