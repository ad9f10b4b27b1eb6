"""The API's objects built from database rows (plain dicts), and the formatting helpers.

Engine events become API objects in ``pmarket.api.convert`` (the one conversion, shared
with the simulator), re-exported here for the routes: ``order_event``, ``own_trade``,
``public_trade``, ``balance``, ``iso``, ``iso_ms``. Database rows hold integer units
too; everything leaving here holds decimal strings for money and prices, ISO-8601 UTC
strings for times, and prices in the owner's terms for the owner's own orders and
trades (a fill is YES-terms in the engine; a NO order's trade is reported at
``1 - price``).

Invariant: these functions only format — they never round a price or an amount (a value
that is not a whole number of units, such as a mid price, is printed exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pmarket.api import convert
from pmarket.api.convert import TRADE_KINDS, ZERO_FEE, order_values, own_price
from pmarket.api.convert import iso as iso
from pmarket.api.convert import iso_ms as iso_ms
from pmarket.api.convert import own_trade as own_trade
from pmarket.api.convert import public_trade as public_trade
from pmarket.engine import queries
from pmarket.engine.units import SCALE, format_money, format_price, format_units

balance = convert.balance_values
"""A Balance from ``(available, reserved)`` units (the read model's and the events')."""
order_event = convert.order
"""An Order from an engine ``order`` event."""


@lru_cache(maxsize=256)
def format_rate(rate: int) -> str:
    """A fee rate in units as a decimal: 700 -> "0.07", 25 -> "0.0025" (memoized: a
    handful of rates, formatted on every event read)."""
    return format_units(rate, 2)


@lru_cache(maxsize=8)
def price_formatter(tick: int) -> Callable[[int], str]:
    """A function printing prices with the decimals of ``tick``."""
    return lambda units: format_price(units, tick)


def opt_price(units: int | None, tick: int) -> str | None:
    return None if units is None else format_price(units, tick)


def half_units(units_x2: int, tick: int = 1) -> str:
    """``units_x2 / 2`` units as an exact decimal string (a mid price), with at least
    the decimals of ``tick``."""
    if units_x2 % 2 == 0:
        return format_price(units_x2 // 2, tick)
    return str(Decimal(units_x2) / (2 * SCALE))


def money(units: int) -> str:
    return format_money(units)


def order_row(o: Any, tick: int) -> dict[str, Any]:
    """An Order from a ``db.Order`` row."""
    return order_values(o.id, o.client_order_id, o.market_id, o.event_id, o.outcome,
                        o.side, o.order_type, o.price, o.quantity, o.filled, o.status, o.tif,
                        o.post_only, iso(o.expires_at), iso(o.created_at),
                        iso(o.updated_at), tick)


def own_trade_row(t: Any, order_id: int, outcome: str, side: str, role: str,
                  tick: int) -> dict[str, Any]:
    """A Trade from a ``db.Trade`` row and the owner's order's outcome and side."""
    return {
        "id": t.id, "market_id": t.market_id, "order_id": order_id, "outcome": outcome,
        "side": side, "price": format_price(own_price(t.price, outcome), tick),
        "quantity": t.quantity, "role": role, "kind": TRADE_KINDS.get(t.kind, "transfer"),
        "fee": format_money(t.fee) if role == "taker" else ZERO_FEE,
        "executed_at": iso(t.executed_at),
    }


def public_trade_row(t: Any, tick: int) -> dict[str, Any]:
    """A public trade from a ``db.Trade`` row."""
    return {"id": t.id, "market_id": t.market_id, "price": format_price(t.price, tick),
            "quantity": t.quantity, "taker_side": t.taker_side,
            "executed_at": iso(t.executed_at)}


@lru_cache(maxsize=65_536)  # positions are read far more often than they change
def avg_cost(cost: int, qty: int) -> str | None:
    """The average cost of ``qty`` shares that cost ``cost`` units in all, in dollars to
    the unit (4 decimals), halves rounded to even; None without shares. Integers only."""
    if not qty:
        return None
    units, rest = divmod(abs(cost), qty)
    if 2 * rest > qty or (2 * rest == qty and units % 2):
        units += 1
    text = format_money(units)
    return "-" + text if cost < 0 else text  # "-0.0000" as Decimal wrote it


Valued = tuple[dict[str, Any], int, int]
"""A Position as the API shows it, with its value and its total P&L in units (what a
portfolio adds up)."""


def position(p: Any, event_id: int, name: str, mark: int | None,
             settled: bool = False) -> Valued:
    """A Position from a ``db.Position`` row; ``mark`` is the YES mark price (units)."""
    return position_values(p.market_id, (p.yes, p.no, p.yes_reserved, p.no_reserved,
                                         p.yes_cost, p.no_cost, p.yes_realized_pnl,
                                         p.no_realized_pnl), event_id, name, mark, settled)


def position_values(market_id: int, row: tuple, event_id: int, name: str,
                    mark: int | None, settled: bool = False) -> Valued:
    """A Position from a position's values ``(yes, no, yes_reserved, no_reserved,
    yes_cost, no_cost, yes_realized_pnl, no_realized_pnl, ...)`` — the column order of
    ``db.Position`` and of the read model's rows. A ``settled`` position's mark is what
    a YES share paid (``queries.yes_payout``), never a stale last price."""
    yes, no, yes_res, no_res, yes_cost, no_cost, yes_pnl, no_pnl = row[:8]
    cost = yes_cost + no_cost
    if mark is None:
        value = cost  # nothing to mark against: carry at cost
    else:
        value = yes * mark + no * (SCALE - mark)
    view = {
        "market_id": market_id, "event_id": event_id, "outcome_id": market_id,
        "outcome_name": name, "yes_quantity": yes, "no_quantity": no,
        "yes_reserved": yes_res, "no_reserved": no_res,
        "avg_cost_yes": avg_cost(yes_cost, yes), "avg_cost_no": avg_cost(no_cost, no),
        "mark_price": None if mark is None else format_money(mark),
        "value": format_money(value), "unrealized_pnl": format_money(value - cost),
        "realized_pnl": format_money(yes_pnl + no_pnl), "settled": settled,
    }
    return view, value, value - cost + yes_pnl + no_pnl


# --- resolution ----------------------------------------------------------------------
# ``e`` is an event as the ``events`` table holds it (a ``db.Event`` row or the read
# model's ``EventRow``): ``status``, ``winning_outcome_id``, ``void``, ``resolved_at``.


def resolution(e: Any) -> dict[str, Any] | None:
    """An event's ``resolution`` object, or None while it is not resolved."""
    if e.status != "resolved":
        return None
    return {"winning_outcome_id": None if e.void else e.winning_outcome_id,
            "void": bool(e.void), "resolved_at": iso(e.resolved_at)}


def outcome_result(e: Any, market_id: int) -> str | None:
    """An outcome's ``result``: None (not resolved), "won", "lost" or "void"."""
    return queries.outcome_result(e.status, market_id, e.winning_outcome_id, bool(e.void))


def market_result(e: Any, market_id: int) -> str | None:
    """A market's ``result``: None (not resolved), "yes", "no" or "void"."""
    return queries.market_result(e.status, market_id, e.winning_outcome_id, bool(e.void))


def payout(market_id: int, event_id: int, name: str, yes: int, no: int, amount: int,
           paid_at: str | None) -> dict[str, Any]:
    """A Payout: what a resolution paid one position."""
    return {"event_id": event_id, "market_id": market_id, "outcome_name": name,
            "yes_quantity": yes, "no_quantity": no, "amount": format_money(amount),
            "paid_at": paid_at}

