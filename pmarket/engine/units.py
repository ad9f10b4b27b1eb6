"""Fixed-point money and prices.

Every price and every amount of money inside pmarket is an ``int`` counted in *units*
of 1/10,000 of a dollar: ``SCALE`` units are $1, which is also what one YES + NO pair is
worth. A price of 0.57 is 5,700 units; a tick size of 0.01 is 100 units. Floats never
touch these numbers: text is parsed with ``Decimal`` and must be exact.

Invariant: ``parse_*`` either returns an exact integer or raises ``ValueError`` with a
sentence saying what is wrong; nothing is ever rounded silently.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Final

SCALE: Final = 10_000
"""Units per dollar (and per share's full payout)."""

DECIMALS: Final = 4
"""Decimal places of one unit."""

VALID_TICKS: Final = (100, 10, 1)
"""Supported tick sizes in units: 0.01, 0.001 and 0.0001."""

MAX_QUANTITY: Final = 1_000_000_000
"""Largest quantity of shares in one order, split or merge."""

MAX_AMOUNT: Final = 10**15
"""Largest amount of money (units) in one deposit or withdrawal: $100 billion."""

MAX_TOTAL_MONEY: Final = 10**18
"""Most money (units) the whole exchange may hold at once: $100 trillion.

The exchange holds Σ deposits - Σ withdrawals (all cash, available and reserved, all
collateral, fees and rounding), and a deposit that would take it past this is refused.
Every balance, reservation and collateral is part of that sum and every share is backed
by $1 of it, so none can grow past it either: with 10**18 < 2**63 - 1 each fits a
PostgreSQL BIGINT column.
"""

def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a decimal number, not a boolean")
    if isinstance(value, float):
        # A float has already lost exactness; go through its shortest repr.
        value = repr(value)
    try:
        loose: Any = value  # Decimal() itself decides what it accepts
        number = value if isinstance(value, Decimal) else Decimal(loose)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{what} must be a decimal number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def to_units(value: object, what: str = "amount") -> int:
    """Convert a decimal dollar value (str, int, float or Decimal) to exact units.

    Raises:
        ValueError: if the value is not a number or has more than 4 decimal places.
    """
    number = _to_decimal(value, what) * SCALE
    if number != number.to_integral_value():
        raise ValueError(f"{what} {value} has more than {DECIMALS} decimal places")
    return int(number)


def parse_amount(value: object, what: str = "amount") -> int:
    """Parse a positive amount of money into units (at most ``MAX_AMOUNT``)."""
    units = to_units(value, what)
    if units <= 0:
        raise ValueError(f"{what} must be greater than 0, got {value}")
    if units > MAX_AMOUNT:
        raise ValueError(f"{what} must be at most {format_money(MAX_AMOUNT)}, got {value}")
    return units


def parse_tick(value: object) -> int:
    """Parse a tick size ("0.01", "0.001" or "0.0001") into units."""
    units = to_units(value, "tick_size")
    if units not in VALID_TICKS:
        raise ValueError(f"tick_size must be 0.01, 0.001 or 0.0001, got {value}")
    return units


def parse_price(value: object, tick: int = 100) -> int:
    """Parse a price that must lie on the ``tick`` grid strictly between 0 and 1."""
    units = to_units(value, "price")
    check_price(units, tick, value)
    return units


def check_price(units: int, tick: int, shown: object = None) -> None:
    """Raise ``ValueError`` unless ``units`` is a valid price on the ``tick`` grid."""
    shown = format_units(units) if shown is None else shown
    if not 0 < units < SCALE:
        raise ValueError(f"price must be strictly between 0 and 1, got {shown}")
    if units % tick:
        raise ValueError(f"price {shown} is not on the {format_units(tick, 4)} tick grid")


def tick_decimals(tick: int) -> int:
    """Decimal places needed to print prices of a market with this tick."""
    return {100: 2, 10: 3, 1: 4}.get(tick, DECIMALS)


def format_units(units: int, decimals: int = DECIMALS) -> str:
    """Format units as a decimal string with ``decimals`` places (exact; never rounds)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), SCALE)
    text = f"{frac:0{DECIMALS}d}"
    cut = text[:decimals]
    if text[decimals:].strip("0"):
        cut = text  # never drop significant digits
    return f"{sign}{whole}.{cut}" if cut else f"{sign}{whole}"


def format_money(units: int) -> str:
    """Money as a 4-decimal string: 1254000 -> "125.4000"."""
    return format_units(units, DECIMALS)


def format_price(units: int, tick: int = 100) -> str:
    """A price with the decimals of its tick: 5700 -> "0.57" for a 0.01 tick."""
    return format_units(units, tick_decimals(tick))


def price_problem(value: object, tick: int) -> str:
    """Why ``value`` (units, or anything a client sent) is not a valid price, in dollars."""
    shown = format_units(value) if type(value) is int else repr(value)
    return (f"price {shown} must lie on the {format_units(tick, tick_decimals(tick))} tick "
            f"grid strictly between 0 and 1")

