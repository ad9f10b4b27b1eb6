"""The one conversion from engine events to the API's objects.

The engine speaks integer units, YES-terms fills and millisecond timestamps; the API
(docs/API.md) speaks decimal strings for money and prices, ISO-8601 UTC times, and the
owner's terms for the owner's own orders and trades (a NO order's trade is reported at
``1 - price``). Every engine event that becomes an API object becomes it here: the
server's replies, its read model and WebSocket pushes (``server.views`` and its users)
and the simulator's in-process target all call these functions, so the two can never
disagree on a field.

The objects are JSON-ready dicts with the API's field names (what the server sends as
is); rows of the database become the same objects in ``server.views``, which shares the
formatting helpers below.

Invariant: these functions only format — they never round a price or an amount.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from pmarket.engine.events import BalanceState, DeadManState, Fill, OrderState, Rejected
from pmarket.engine.limits import MAX_TIME_MS, MIN_TIME_MS
from pmarket.engine.units import SCALE, format_money, format_price

__all__ = [
    "TRADE_KINDS", "ZERO_FEE", "balance", "balance_values", "dead_man", "iso", "iso_ms",
    "order", "order_values", "own_price", "own_trade", "public_trade", "rejection",
]

TRADE_KINDS = {"transfer_yes": "transfer", "transfer_no": "transfer", "mint": "mint",
               "merge": "merge"}
"""A fill's settlement (engine) as the API's trade ``kind``."""
ZERO_FEE = format_money(0)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=8192)
def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO-8601 UTC (``...Z``); memoized: the read model's rows
    (an event's creation and close times, say) are formatted again on every read."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_ISO_MS: dict[int, str | None] = {}


def iso_ms(ms: int | None) -> str | None:
    """Engine milliseconds as ISO-8601 UTC (memoized: a batch shares its timestamp).

    Raises:
        ValueError: ``ms`` lies outside 1970-01-01 .. 9999-12-31 UTC (``limits``), which
            the engine never stamps.
    """
    if ms is None:
        return None
    text = _ISO_MS.get(ms)
    if text is None:
        if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
            raise ValueError(f"timestamp {ms} ms is outside 1970-01-01..9999-12-31 UTC")
        if len(_ISO_MS) >= 4096:
            _ISO_MS.clear()
        text = _ISO_MS[ms] = iso(_EPOCH + timedelta(milliseconds=ms))
    return text


def own_price(yes_price: int, outcome: str) -> int:
    """A YES-terms price in the terms of an owner trading ``outcome``."""
    return yes_price if outcome == "yes" else SCALE - yes_price


def balance_values(available: int, reserved: int) -> dict[str, str]:
    """A Balance from its two amounts (units)."""
    return {"available": format_money(available), "reserved": format_money(reserved),
            "total": format_money(available + reserved)}


def balance(e: BalanceState) -> dict[str, str]:
    """A Balance from a ``balance`` event."""
    return balance_values(e.available, e.reserved)


def order_values(oid: int, cid: str | None, mid: int, eid: int, outcome: str, side: str,
                 otype: str, price: int | None, qty: int, filled: int, status: str,
                 tif: str, post_only: bool, expires: str | None, created: str | None,
                 updated: str | None, tick: int) -> dict[str, Any]:
    """An Order from its values (prices in units, times already ISO)."""
    return {
        "id": oid, "client_order_id": cid, "market_id": mid, "event_id": eid,
        "outcome": outcome, "side": side, "type": otype,
        "price": None if price is None else format_price(price, tick),
        "quantity": qty, "filled_quantity": filled, "remaining_quantity": qty - filled,
        "time_in_force": tif, "post_only": post_only, "expires_at": expires,
        "status": status, "created_at": created, "updated_at": updated,
    }


def order(e: OrderState, tick: int) -> dict[str, Any]:
    """An Order from an ``order`` event; ``tick`` is its market's price grid."""
    return order_values(e.order_id, e.client_order_id, e.market_id, e.event_id, e.outcome,
                        e.side, e.order_type, e.price, e.quantity, e.filled, e.status, e.tif,
                        e.post_only, iso_ms(e.expires_at_ms), iso_ms(e.created_ms),
                        iso_ms(e.updated_ms), tick)


def own_trade(fill: Fill, owner: OrderState, role: str, tick: int) -> dict[str, Any]:
    """A Trade (one's own fill, in the owner's terms) from a ``fill`` event and the
    owner's ``order`` event; ``role`` is ``"taker"`` or ``"maker"`` (only takers pay)."""
    outcome = owner.outcome
    return {
        "id": fill.trade_id, "market_id": fill.market_id, "order_id": owner.order_id,
        "outcome": outcome, "side": owner.side,
        "price": format_price(own_price(fill.price, outcome), tick),
        "quantity": fill.quantity, "role": role,
        "kind": TRADE_KINDS.get(fill.settlement, "transfer"),
        "fee": format_money(fill.fee) if role == "taker" else ZERO_FEE,
        "executed_at": iso_ms(fill.ts_ms),
    }


def public_trade(fill: Fill, tick: int) -> dict[str, Any]:
    """A public trade (YES terms) from a ``fill`` event."""
    return {"id": fill.trade_id, "market_id": fill.market_id,
            "price": format_price(fill.price, tick), "quantity": fill.quantity,
            "taker_side": fill.taker_side, "executed_at": iso_ms(fill.ts_ms)}


def dead_man(e: DeadManState) -> dict[str, Any]:
    """The dead-man switch object (``POST /heartbeat``) from a ``dead_man`` event."""
    return {"expires_at": iso_ms(e.expires_at_ms), "timeout_s": e.timeout_ms // 1000,
            "fired_at": iso_ms(e.fired_ms)}


def rejection(e: Rejected) -> tuple[str, str]:
    """The error ``(code, message)`` of a ``rejected`` event: the engine's reason code is
    the API's error code (the server adds the HTTP status, ``server.gateway``)."""
    return e.reason, e.message
