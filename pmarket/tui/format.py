"""Text for numbers, and order-entry arithmetic, shared by the terminal's screens.

Invariant: everything here works on ``Decimal`` and ``int`` only; a price is shown
with as many decimals as its market's tick has, money with two or more, and a missing
value (an empty side of a book) as a dash, never as zero. A stepped price stays on its
market's grid strictly inside (0, 1); a stepped quantity stays a whole number ≥ 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from pmarket.engine.limits import MAX_DIGITS
from pmarket.engine.units import (
    MAX_QUANTITY,
    SCALE,
    decimal_text_problem,
    taker_fee,
    to_units,
    worst_taker_fee,
)

ONE = Decimal(1)
DASH = "—"
LOT = 10
"""Shares in one lot: the step of the order form's quantity keys (``+``/``-``, ↑/↓)."""


def places(tick: Decimal) -> int:
    """Decimal places of a tick size (0.01 → 2, 0.001 → 3)."""
    exponent = tick.normalize().as_tuple().exponent
    return max(0, -int(exponent)) if isinstance(exponent, int) else 2


def price(value: Decimal | None, tick: Decimal = Decimal("0.01")) -> str:
    """A price on its market's grid, or a dash."""
    if value is None:
        return DASH
    return f"{value:.{places(tick)}f}"


def cents(value: Decimal | None, tick: Decimal = Decimal("0.01")) -> str:
    """A price as cents ("57¢", "57.5¢"), the way traders read probabilities."""
    if value is None:
        return DASH
    return f"{value * 100:.{max(0, places(tick) - 2)}f}¢"


def money(value: Decimal | None) -> str:
    """Money with thousands separators and at least two decimals."""
    if value is None:
        return DASH
    digits = max(2, places(value)) if value != value.to_integral_value() else 2
    return f"{value:,.{min(digits, 4)}f}"


def rate(value: Decimal | None) -> str:
    """A fee rate as a percentage: 0.07 -> "7%", 0.0125 -> "1.25%", 0 -> "-"."""
    if not value:
        return DASH
    return f"{value * 100:f}".rstrip("0").rstrip(".") + "%"


def signed(value: Decimal | None) -> str:
    """Money with an explicit sign (P&L)."""
    if value is None:
        return DASH
    return ("+" if value > 0 else "") + money(value)


_RESULT_STYLE = {"won": "bold green", "lost": "dim", "void": "yellow", "yes": "bold green",
                 "no": "bold red"}


def outcome_result(result: str | None, single: bool) -> tuple[str, str]:
    """What an outcome's ``result`` says, and its style: "won"/"lost"/"void" for an
    outcome of several; for a yes/no question (``single``), which side won ("YES won",
    "NO won") — its NO wins when its one outcome lost."""
    if result is None:
        return "", ""
    if single and result in ("won", "lost"):
        return ("YES won", _RESULT_STYLE["yes"]) if result == "won" else \
            ("NO won", _RESULT_STYLE["no"])
    return result, _RESULT_STYLE.get(result, "")


def resolution(event) -> str:
    """How an event (``client.Event``) resolved, in a few words ("" while open):
    "void", the winning outcome's name, or "YES" / "NO" for a yes/no question."""
    r = event.resolution
    if r is None:
        return ""
    if r.void:
        return "void"
    if len(event.outcomes) == 1:
        return "YES" if r.winning_outcome_id is not None else "NO"
    winner = event.winner()
    return winner.name if winner is not None else f"outcome {r.winning_outcome_id}"


def market_result(result: str | None) -> str:
    """A market's ``result`` ("yes"/"no"/"void") as words."""
    return {"yes": "YES won", "no": "NO won", "void": "void"}.get(result or "", "")


def when(value: datetime | None) -> str:
    """A timestamp as local-free ``HH:MM:SS`` (UTC, as the API sends it)."""
    return DASH if value is None else value.strftime("%H:%M:%S")


def day(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM``."""
    return DASH if value is None else value.strftime("%Y-%m-%d %H:%M")


def parse_decimal(text: str) -> Decimal | None:
    """User input as a Decimal, or None when it is not a plain decimal number.

    The input limits apply before parsing (``units.decimal_text_problem``: at most 40
    characters, no exponent), so "1e999999" is refused instead of reaching Decimal
    arithmetic, where it would overflow.
    """
    if decimal_text_problem(text) is not None:
        return None
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def parse_quantity(text: str) -> int | None:
    """User input as a whole number of shares ≥ 1, or None."""
    text = text.strip().replace("_", "").replace(",", "")
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    value = int(text)
    return value if value >= 1 else None


def price_error(value: Decimal | None, tick: Decimal) -> str | None:
    """Why ``value`` is not a valid price on ``tick``'s grid (None when it is)."""
    if value is None:
        return "price must be a number"
    if not Decimal(0) < value < ONE:
        return "price must be strictly between 0 and 1"
    if value % tick != 0:
        return f"price must be a multiple of the tick {tick}"
    return None


@dataclass(frozen=True, slots=True)
class Estimate:
    """What an order would cost and pay.

    Attributes:
        cost: Cash reserved for a buy at its price (worst case for a market order).
        max_payout: What the shares pay if they win (quantity times $1) for a buy; for a
            sell, the proceeds at the price.
    """

    cost: Decimal
    max_payout: Decimal


def estimate(side: str, price_value: Decimal, quantity: int) -> Estimate:
    """Cost and payout of ``quantity`` shares bought or sold at ``price_value``."""
    notional = price_value * quantity
    if side == "buy":
        return Estimate(notional, Decimal(quantity))
    return Estimate(Decimal(0), notional)


def fee_bound(side: str, price_value: Decimal, quantity: int, fee_rate: Decimal) -> Decimal:
    """The most an order can pay in taker fees if it takes (makers pay none), at the
    event's ``fee_rate``: the engine's own rule, ``ceil_to_cent(rate x q x p x (1 - p))``
    per fill, at its worst.

    A fill rounds up on its own, so the worst case is one share per fill, each where
    ``p x (1 - p)`` is largest among the prices the order can fill at: a buy fills at
    its price or better (lower), a sell at its price or better (higher), and the product
    peaks at 1/2. For a buy this is exactly what the engine holds with its cash while it
    takes (``units.worst_taker_fee``); a sell's fee comes out of its proceeds.
    """
    if not fee_rate or quantity < 1:
        return Decimal(0)
    rate = to_units(fee_rate, "fee_rate")
    limit = to_units(price_value, "price")
    if side == "buy":
        units = worst_taker_fee(rate, quantity, limit)
    else:  # the fill's own price, the fee's cap, is at most 1
        units = taker_fee(rate, 1, max(limit, SCALE // 2), SCALE) * quantity
    return Decimal(units) / SCALE


def to_view(yes_price: Decimal | None, view: str) -> Decimal | None:
    """A YES-terms price in the ``view``'s terms ("no" mirrors it)."""
    if yes_price is None or view == "yes":
        return yes_price
    return ONE - yes_price


def step_price(value: Decimal, tick: Decimal, steps: int) -> Decimal:
    """``value`` moved by ``steps`` ticks, on the grid and strictly inside (0, 1).

    A value off the grid is first snapped down onto it, so one step up from 0.455 on a
    0.01 grid is 0.46 and one step down is 0.44.
    """
    on_grid = (value / tick).to_integral_value(rounding="ROUND_FLOOR") * tick
    if steps > 0 and on_grid < value:
        steps -= 1
        on_grid += tick
    moved = on_grid + tick * steps
    return min(max(moved, tick), ONE - tick)


def step_quantity(quantity: int, steps: int, lot: int = LOT) -> int:
    """``quantity`` moved ``steps`` lots: up to the next multiple of ``lot`` above it,
    down to the next below it; never under 1 nor over the largest order quantity.
    1 → 10 → 20 going up; 15 → 10 → 1 going down."""
    for _ in range(abs(steps)):
        if steps > 0:
            quantity = min((quantity // lot + 1) * lot, MAX_QUANTITY)
        else:
            quantity = max(1, (quantity - 1) // lot * lot)
    return quantity


def mirror(side: str, outcome: str, value: Decimal | None) -> tuple[str, str, Decimal | None]:
    """The equivalent order on the canonical YES book, in the other outcome's terms.

    Sell YES at p is an ask at p, and so is buy NO at 1 - p; buy YES at p is a bid at p,
    and so is sell NO at 1 - p. A market order's protective limit mirrors the same way.
    """
    return ("sell" if side == "buy" else "buy", "no" if outcome == "yes" else "yes",
            None if value is None else ONE - value)


def on_book(side: str, outcome: str, value: Decimal) -> tuple[str, Decimal]:
    """Where an order rests on the YES book: ``("bid" or "ask", YES price)``."""
    bid = (side == "buy") == (outcome == "yes")
    return ("bid" if bid else "ask", value if outcome == "yes" else ONE - value)
