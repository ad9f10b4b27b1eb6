"""Fixed-point money and prices.

Every price and every amount of money inside pmarket is an ``int`` counted in *units*
of 1/10,000 of a dollar: ``SCALE`` units are $1, which is also what one YES + NO pair is
worth. A price of 0.57 is 5,700 units; a tick size of 0.01 is 100 units. Floats never
touch these numbers: text is parsed with ``Decimal`` and must be exact.

Every parser goes through ``to_units``, which checks a value's size before any
arithmetic (the rules are in ``limits``): a decimal string of more than 40 characters or
with an exponent, a number with more than 40 digits, NaN or an infinity is refused at
once, so the HTTP API, the CLI, the simulator and the TUI all refuse ``"1e999999"`` the
same way, in microseconds.

Invariant: ``parse_*`` either returns an exact integer or raises ``ValueError`` with a
sentence saying what is wrong; nothing is ever rounded silently.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Final

from .limits import MAX_DECIMAL_CHARS, MAX_DIGITS

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

CENT: Final = 100
"""Units per cent: fees are rounded up to whole cents."""

MAX_FEE_RATE: Final = 2_500
"""Highest fee rate (units of ``SCALE``, i.e. basis points): 0.25."""

_FEE_DIVISOR: Final = SCALE * SCALE * CENT
"""rate x quantity x p x (1 - p) in units is ``rate*q*P*(SCALE-P) / SCALE**2`` with every
factor in units; dividing by one more ``CENT`` counts it in cents."""

_SCALE_DECIMAL: Final = Decimal(SCALE)
_INF: Final = float("inf")
_INT_BOUND: Final = 10**MAX_DIGITS
_WHITESPACE: Final = " \t\n\r\f\v"
_NOT_FINITE: Final = frozenset(("nan", "snan", "inf", "infinity"))
_EXACT: Final = Context(prec=2 * MAX_DIGITS + DECIMALS,
                        traps=[InvalidOperation, Inexact, Overflow])
"""Arithmetic on size-checked numbers in this context is exact: nothing is ever rounded
(the traps turn a broken promise into an exception instead of a silently wrong number)."""


def decimal_text_problem(text: str) -> str | None:
    """Why ``text`` is not a plain decimal string (at most 40 characters), or None.

    Accepted: optional surrounding ASCII whitespace, an optional sign, ASCII digits with
    at most one decimal point ("12", "0.57", ".5", "-3."). Refused before any parsing:
    anything longer than ``MAX_DECIMAL_CHARS``, exponents ("1e999999" would make
    Decimal arithmetic overflow or run for seconds), NaN and infinities, digit
    separators and non-ASCII digits.
    """
    if len(text) > MAX_DECIMAL_CHARS:
        return (f"is {len(text)} characters long; a decimal string has at most "
                f"{MAX_DECIMAL_CHARS}")
    body = text.strip(_WHITESPACE)
    if body[:1] == "+" or body[:1] == "-":
        body = body[1:]
    whole, _, frac = body.partition(".")
    if ((whole or frac) and (not whole or (whole.isascii() and whole.isdigit()))
            and (not frac or (frac.isascii() and frac.isdigit()))):
        return None
    lowered = body.lower()
    if lowered in _NOT_FINITE:
        return "must be a finite number"
    if "e" in lowered:
        return "must be written without an exponent (e.g. 1500, not 1.5e3)"
    return "must be a decimal number"


def _text_units(text: str, what: str) -> int:
    """A plain decimal string as exact units, in integer arithmetic (no Decimal needed)."""
    problem = decimal_text_problem(text)
    if problem is not None:
        shown = "" if len(text) > MAX_DECIMAL_CHARS else f" ({text!r})"
        raise ValueError(f"{what}{shown} {problem}")
    body = text.strip(_WHITESPACE)
    sign = body[:1]
    digits = body[1:] if sign == "+" or sign == "-" else body
    whole, _, frac = digits.partition(".")
    if len(frac) > DECIMALS and frac[DECIMALS:].strip("0"):
        raise ValueError(f"{what} {body} has more than {DECIMALS} decimal places")
    units = int(whole or "0") * SCALE + int(frac[:DECIMALS].ljust(DECIMALS, "0"))
    return -units if sign == "-" else units


def _decimal_units(value: Decimal, what: str) -> int:
    """A Decimal as exact units, after checking its size (nothing big reaches arithmetic)."""
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number")
    _, digits, exponent = value.as_tuple()
    if len(digits) > MAX_DIGITS or not -MAX_DIGITS <= int(exponent) <= MAX_DIGITS:
        raise ValueError(f"{what} is out of range for a decimal number "
                         f"(at most {MAX_DIGITS} digits)")
    number = _EXACT.multiply(value, _SCALE_DECIMAL)
    if number != number.to_integral_value(context=_EXACT):
        raise ValueError(f"{what} {value} has more than {DECIMALS} decimal places")
    return int(number)


def to_units(value: object, what: str = "amount") -> int:
    """Convert a decimal dollar value (str, int, float or Decimal) to exact units.

    The value's size is checked before any arithmetic (see ``decimal_text_problem``),
    so a hostile value costs microseconds, never seconds, and never overflows. A float
    is read by its shortest repr, which uses an exponent exactly for the magnitudes no
    price or amount has (>= 1e16, < 1e-4): those are refused.

    Raises:
        ValueError: if the value is not a number, is too large (a string over 40
            characters, an exponent, more than 40 digits) or has more than 4 decimal
            places.
    """
    if isinstance(value, str):
        return _text_units(value, what)
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a decimal number, not a boolean")
    if isinstance(value, int):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise ValueError(f"{what} has more than {MAX_DIGITS} digits")
        return value * SCALE
    if isinstance(value, float):
        if value != value or value in (_INF, -_INF):
            raise ValueError(f"{what} must be a finite number")
        text = repr(value)
        if "e" in text:
            raise ValueError(f"{what} ({text}) is out of range for a decimal number")
        return _text_units(text, what)
    if isinstance(value, Decimal):
        return _decimal_units(value, what)
    raise ValueError(f"{what} must be a decimal number, got a {type(value).__name__}")


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


def taker_fee(rate: int, quantity: int, yes_price: int, own_price: int) -> int:
    """The fee a taker pays on one fill: ``ceil_to_cent(rate x quantity x p x (1 - p))``.

    Exact integer arithmetic with every factor in units (``rate`` too: 700 is 7%).
    ``p x (1 - p)`` is the same for a YES price and its NO complement, so a mint, a merge
    and a transfer at one price charge the same. The fee never exceeds the fill's value
    in the taker's own terms (``quantity x own_price``): rounding up to a cent could
    otherwise charge more than a sub-cent fill is worth (and more than a sell's proceeds).
    """
    fee = -(-rate * quantity * yes_price * (SCALE - yes_price) // _FEE_DIVISOR) * CENT
    cap = quantity * own_price
    return fee if fee < cap else cap


def worst_taker_fee(rate: int, quantity: int, limit: int) -> int:
    """The most a buy of ``quantity`` at ``limit`` (own terms) can pay in taker fees.

    Fills happen at own prices up to ``limit``, where ``p x (1 - p)`` is largest at
    ``min(limit, 1/2)``; and as each fill rounds up on its own, the worst case is one
    share per fill: ``quantity x`` the fee of one share there, each at most ``limit``.
    """
    worst = limit if limit < SCALE // 2 else SCALE // 2
    return taker_fee(rate, 1, worst, limit) * quantity


def parse_fee_rate(value: object) -> int:
    """Parse a fee rate (a decimal from 0 to 0.25, at most 4 places) into units."""
    units = to_units(value, "fee_rate")
    if not 0 <= units <= MAX_FEE_RATE:
        raise ValueError(f"fee_rate must be from 0 to {format_units(MAX_FEE_RATE, 2)}, "
                         f"got {value}")
    return units


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

