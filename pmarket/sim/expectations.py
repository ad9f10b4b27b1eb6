"""Expectations: reading ``expect:`` blocks into ``Check``s, and checking them.

An ``expect:`` block may sit on any step (checked right after that step) or be a step of
its own. On an order step it may state the step's own order (``status``, ``filled``,
``remaining``, ``price``, ``quantity``, ``reason``) and any step may state ``rejected:
<code>`` (without it, a refused scripted step is itself a failure). Anywhere:
``orders`` (named orders), ``trades`` (the step's trades; on an expect-only step, every
trade since the previous expect-only step), ``book`` (levels in the YES or NO view),
``balances``, ``holdings``, ``markets``, ``open_orders`` and ``audit: ok``.

``check`` compares one ``Check`` with what the target reports now and returns a
``Miss`` (expected vs found, both printed as a scenario author writes them) or None.
Prices and money are compared as exact integer units, never as floats or strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..engine import units
from .reader import Field
from .scenario import Action, Cancel, Check, MarketRef, Modify, Place, TradeExpect
from .targets import OrderState, Result, Target, Trader


class Loader(Protocol):
    """The names a scenario defined before the step being read (``loader.Loader``)."""

    orders: dict[str, tuple[str, MarketRef, int]]
    """Orders named by earlier steps: name -> (owner, market, tick)."""

    def user(self, f: Field, group: bool = False) -> str:
        """A defined user's name (or, with ``group``, a user group's)."""

    def order(self, f: Field) -> tuple[str, MarketRef, int]:
        """A named order placed by an earlier step: (owner, market, tick)."""

    def market(self, f: Field) -> tuple[MarketRef, int]:
        """A market reference (``event`` or ``event/outcome``) and the market's tick."""

ORDER_FIELDS = ("status", "filled", "remaining", "price", "quantity", "reason")
STATUSES = ("open", "partially_filled", "filled", "cancelled", "expired")
KINDS = ("transfer_yes", "mint", "merge", "transfer_no")
BOOK_PRICES = ("best_bid", "best_ask", "last_price")
MARKET_FIELDS = ("status", "result", "last_price", "best_bid", "best_ask", "volume",
                 "open_interest")
HOLDING_FIELDS = ("yes", "no", "yes_reserved", "no_reserved")
COMMON = ("orders", "trades", "book", "balances", "holdings", "markets", "open_orders", "audit")


# --- reading -------------------------------------------------------------------------


def parse(loader: Loader, block: Field, action: Action, standalone: bool) -> tuple[Check, ...]:
    """Read an ``expect:`` block of a step into checks (``loader`` resolves names).

    Raises:
        Invalid: at the first wrong key or value.
    """
    own = isinstance(action, Place | Modify | Cancel)
    allowed = COMMON + (ORDER_FIELDS if own else ()) + (() if standalone else ("rejected",))
    keys = block.keys((), allowed)
    if not keys:
        raise block.fail("an expect block needs at least one expectation")
    checks: list[Check] = []
    tick = _own_tick(loader, action)
    for key, f in keys.items():
        if key in ORDER_FIELDS:
            checks.append(_order_field("step", None, key, f, tick, key))
        elif key == "rejected":
            checks.append(Check("step", None, "rejected", f.name(), key, f.line))
        elif key == "orders":
            for name, spec in f.entries():
                _owner, _market, order_tick = loader.order(_key_field(spec, name))
                for fname, value in spec.keys((), ORDER_FIELDS).items():
                    checks.append(_order_field("order", name, fname, value, order_tick,
                                               value.path))
        elif key == "trades":
            checks.append(_trades(f, "since" if standalone else "step"))
        elif key == "book":
            specs = f.items() if f.is_sequence else [f]
            for spec in specs:
                checks.extend(_book(loader, spec))
        elif key == "balances":
            for user, spec in f.entries():
                name = loader.user(_key_field(spec, user))
                for fname, value in spec.keys((), ("available", "reserved", "total")).items():
                    checks.append(Check("balance", name, fname, value.money(), value.path,
                                        value.line, fmt="money"))
        elif key == "holdings":
            checks.extend(_holdings(loader, f))
        elif key == "markets":
            checks.extend(_markets(loader, f))
        elif key == "open_orders":
            for user, value in f.entries():
                name = loader.user(_key_field(value, user))
                checks.append(Check("open_orders", name, "count", value.integer(0), value.path,
                                    value.line))
        else:
            if f.choice(("ok",)) != "ok":
                raise f.fail("audit can only be expected to be ok")
            checks.append(Check("audit", None, "ok", True, f.path, f.line))
    return tuple(checks)


def _key_field(value: Field, key: str) -> Field:
    """A mapping key read as a name; a lookup error is located at the key's value."""
    return _KeyField(key, value)


class _KeyField(Field):
    """A mapping key read as a name, with errors located at the key's value."""

    __slots__ = ("key",)

    def __init__(self, key: str, value: Field):
        super().__init__(value.node, value.path, value.file)
        self.key = key

    def name(self) -> str:
        return self.key


def _own_tick(loader: Loader, action: Action) -> int:
    if isinstance(action, Place):
        return action.order.tick
    if isinstance(action, Modify | Cancel):
        return loader.orders[action.order][2]
    return 100


def _order_field(kind: str, subject: Any, name: str, f: Field, tick: int, label: str) -> Check:
    if name == "status":
        return Check(kind, subject, name, f.choice(STATUSES), label, f.line)
    if name == "price":
        return Check(kind, subject, name, f.price(tick), label, f.line, tick, "price")
    if name == "reason":
        return Check(kind, subject, name, None if f.is_null else f.name(), label, f.line)
    return Check(kind, subject, name, f.integer(0), label, f.line)


def _trades(f: Field, scope: str) -> Check:
    if not f.is_sequence:
        return Check("trades", scope, "count", f.integer(0), f.path, f.line)
    expected = []
    for item in f.items():
        keys = item.keys((), ("price", "quantity", "kind", "fee"))
        if not keys:
            raise item.fail("a trade needs price, quantity, kind or fee")
        expected.append(TradeExpect(
            price=keys["price"].price(1) if "price" in keys else None,
            quantity=keys["quantity"].integer(1) if "quantity" in keys else None,
            kind=keys["kind"].choice(KINDS) if "kind" in keys else None,
            fee=keys["fee"].money() if "fee" in keys else None))
    return Check("trades", scope, "list", tuple(expected), f.path, f.line, fmt="trades")


def _book(loader: Loader, f: Field) -> list[Check]:
    keys = f.keys(("market",), ("view", "bids", "asks", *BOOK_PRICES))
    market, tick = loader.market(keys["market"])
    view = keys["view"].choice(("yes", "no")) if "view" in keys else "yes"
    checks = []
    for side in ("bids", "asks"):
        if side in keys:
            levels = []
            for level in keys[side].items():
                pair = level.items()
                if len(pair) != 2:
                    raise level.fail("a book level is [price, quantity]")
                levels.append((pair[0].price(tick), pair[1].integer(1)))
            checks.append(Check("book", (market, view), side, tuple(levels), keys[side].path,
                                keys[side].line, tick, "levels"))
    for name in BOOK_PRICES:
        if name in keys:
            value = None if keys[name].is_null else keys[name].price(tick)
            checks.append(Check("book", (market, view), name, value, keys[name].path,
                                keys[name].line, tick, "price"))
    if len(checks) == 0:
        raise f.fail("a book expectation needs bids, asks, best_bid, best_ask or last_price")
    return checks


def _holdings(loader: Loader, f: Field) -> list[Check]:
    checks = []
    for user, per_market in f.entries():
        name = loader.user(_key_field(per_market, user))
        for market_text, spec in per_market.entries():
            market, _tick = loader.market(_key_field(spec, market_text))
            for fname, value in spec.keys((), HOLDING_FIELDS).items():
                checks.append(Check("holding", (name, market), fname, value.integer(0),
                                    value.path, value.line))
    return checks


def _markets(loader: Loader, f: Field) -> list[Check]:
    checks = []
    for market_text, spec in f.entries():
        market, tick = loader.market(_key_field(spec, market_text))
        for fname, value in spec.keys((), MARKET_FIELDS).items():
            if fname == "status":
                expected: Any = value.choice(("active", "closed", "resolved"))
                fmt = "plain"
            elif fname == "result":
                expected = None if value.is_null else value.choice(("yes", "no", "void"))
                fmt = "plain"
            elif fname in ("volume", "open_interest"):
                expected, fmt = value.integer(0), "plain"
            else:
                expected = None if value.is_null else value.price(tick)
                fmt = "price"
            checks.append(Check("market", market, fname, expected, value.path, value.line,
                                tick, fmt))
    return checks


# --- checking ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Miss:
    """A failed check: what the scenario expected and what the target reported."""

    expected: str
    found: str


class Facts(Protocol):
    """What checking needs from the runner."""

    target: Target
    step_result: Result | None

    def user(self, name: str) -> Trader:
        """The signed-up user of a scenario name."""

    def market_id(self, ref: MarketRef) -> int:
        """The target's id of a market reference."""

    def named_order(self, name: str) -> tuple[Trader, int] | None:
        """The owner and id of a named order (None if its placement was refused)."""

    def trades_since_mark(self) -> list[tuple[int, int, str]]:
        """(price, quantity, kind) of every trade since the last expect-only step."""


def check(c: Check, facts: Facts) -> Miss | None:
    """Compare one expectation with the target's current state; None when it holds."""
    try:
        found = _found(c, facts)
    except LookupError:  # a market or user the target no longer knows
        found = "nothing (it does not exist)"
    if c.fmt == "trades":
        ok = _trades_match(c.expected, found)
    else:
        ok = found == c.expected
    if ok:
        return None
    return Miss(show(c.expected, c.fmt), show(found, c.fmt))


def _found(c: Check, facts: Facts) -> Any:
    kind, target = c.kind, facts.target
    if kind == "step":
        result = facts.step_result
        if c.field == "rejected":
            error = result and (result.error or next(
                (item.error for item in result.items if item.error), None))
            return error.code if error else "nothing (it succeeded)"
        return _order_value(result.order if result else None, c.field)
    if kind == "order":
        ref = facts.named_order(c.subject)
        state = target.order(*ref) if ref else None
        return _order_value(state, c.field)
    if kind == "trades":
        if c.subject == "step":
            own = facts.step_result.trades if facts.step_result else []
            trades = [(units.to_units(t.price), t.quantity, t.kind, units.to_units(t.fee))
                      for t in own]
        else:
            trades = facts.trades_since_mark()
        return len(trades) if c.field == "count" else trades
    if kind == "book":
        market, view = c.subject
        book = target.book(facts.market_id(market), view)
        if c.field in ("bids", "asks"):
            return tuple((units.to_units(p), q) for p, q in getattr(book, c.field))
        return _units_or_none(getattr(book, c.field))
    if kind == "balance":
        bal = target.balance(facts.user(c.subject))
        available, reserved = units.to_units(bal.available), units.to_units(bal.reserved)
        return {"available": available, "reserved": reserved,
                "total": available + reserved}[c.field]
    if kind == "holding":
        user, market = c.subject
        market_id = facts.market_id(market)
        for h in target.holdings(facts.user(user)):
            if h.market_id == market_id:
                return getattr(h, c.field)
        return 0
    if kind == "market":
        info = target.market(facts.market_id(c.subject))
        value = getattr(info, c.field)
        return _units_or_none(value) if c.fmt == "price" else value
    if kind == "open_orders":
        return len(target.open_orders(facts.user(c.subject)))
    audit = target.audit()
    return True if audit.ok else "; ".join(audit.problems) or f"off by {audit.difference}"


def _order_value(state: OrderState | None, name: str) -> Any:
    if state is None:
        return "no such order"
    if name == "filled":
        return state.filled_quantity
    if name == "remaining":
        return state.remaining_quantity if state.status in ("open", "partially_filled") else 0
    if name == "price":
        return units.to_units(state.price)
    return getattr(state, name)


def _units_or_none(text: str | None) -> int | None:
    return None if text is None else units.to_units(text)


def _trades_match(expected: Any, found: list) -> bool:
    if isinstance(expected, int):
        return expected == found
    if len(expected) != len(found):
        return False
    for want, (price, quantity, kind, fee) in zip(expected, found, strict=True):
        if want.price is not None and want.price != price:
            return False
        if want.quantity is not None and want.quantity != quantity:
            return False
        if want.kind is not None and want.kind != kind:
            return False
        if want.fee is not None and want.fee != fee:
            return False
    return True


# --- printing ------------------------------------------------------------------------


def show_price(value: int | None) -> str:
    """A price as written in scenarios: at least two decimals, no trailing zeros beyond."""
    if value is None:
        return "none"
    text = units.format_units(value, units.DECIMALS)
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac:0<2}"


def show(value: Any, fmt: str) -> str:
    """Print an expected or found value the way the scenario file writes it."""
    if isinstance(value, str):
        return value
    if fmt == "price":
        return show_price(value)
    if fmt == "money":
        return units.format_money(value)
    if fmt == "levels":
        return "[" + ", ".join(f"{show_price(p)} x {q}" for p, q in value) + "]" \
            if value else "no levels"
    if fmt == "trades":
        if isinstance(value, int):
            return f"{value} trades"
        parts = []
        for t in value:
            if isinstance(t, TradeExpect):
                bits = [show_price(t.price) if t.price is not None else "any price",
                        f"x {t.quantity}" if t.quantity is not None else "x any",
                        t.kind or "any kind"]
                if t.fee is not None:
                    bits.append(f"fee {units.format_money(t.fee)}")
            else:
                bits = [show_price(t[0]), f"x {t[1]}", t[2]]
                if t[3]:
                    bits.append(f"fee {units.format_money(t[3])}")
            parts.append(" ".join(bits))
        return "[" + ", ".join(parts) + "]" if parts else "no trades"
    if value is None:
        return "none"
    return str(value)
