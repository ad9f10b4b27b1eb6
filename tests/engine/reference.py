"""A naive reference exchange: the engine's semantics, written to be obviously right.

This model re-implements DESIGN §1-3 from the domain rules, for the property tests to
hold the engine against. It is deliberately slow and plain: every order ever placed
sits in one list; the book is whatever open orders there are; matching sorts the
crossing candidates by (best price, arrival) before every single fill; cash and shares
are totals in dicts and what is *reserved* is never stored, only derived from the open
orders, so "reservations are exact" holds by construction here and is a real check on
the engine.

Conventions that DESIGN leaves open (reason codes, the validation order, that an
unfilled ioc remainder is ``cancelled`` with reason ``not_filled``, that outcome ids are
market ids, ...) follow the engine; the logic does not.

Fees are worked out in exact fractions of dollars, per fill, from the contract's formula
(``ceil_to_cent(rate x quantity x p x (1 - p))``, never more than the fill's value in the
taker's terms); a buy's worst-case fee is the maximum over every price up to its limit.

Where the engine is known to be wrong, this model stays right; the known bugs are pinned
by ``test_stateful_regressions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from math import ceil

from pmarket.engine import commands as c
from pmarket.engine.events import Reason
from pmarket.engine.units import MAX_AMOUNT, MAX_QUANTITY, MAX_TOTAL_MONEY, SCALE

MAX_FEE_RATE = 2_500  # 0.25 in units
CENT = Fraction(1, 100)

OPEN_STATUSES = ("open", "partially_filled")
MAX_OUTCOMES = 100
VALID_TICKS = (100, 10, 1)

# (bid is a buy of YES, ask is a sell of YES) -> settlement kind (DESIGN §1)
SETTLEMENT = {
    (True, True): "transfer_yes",
    (True, False): "mint",
    (False, True): "merge",
    (False, False): "transfer_no",
}


@dataclass
class RefOrder:
    """An order in its owner's terms; ``arrival`` orders the book (None: not resting)."""

    id: int
    user: int
    market: int
    event: int
    outcome: str  # "yes" | "no"
    side: str  # "buy" | "sell"
    price: int
    quantity: int
    order_type: str = "limit"
    tif: str = "gtc"
    post_only: bool = False
    expires_at: int | None = None
    coid: str | None = None
    stp: str = "cancel_resting"
    created: int = 0
    updated: int = 0
    filled: int = 0
    status: str = "open"
    reason: str | None = None
    arrival: int | None = None

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_buy(self) -> bool:
        return self.side == "buy"

    @property
    def is_bid(self) -> bool:
        """Buy YES and sell NO are bids on the YES book; sell YES and buy NO are asks."""
        return (self.side == "buy") == (self.outcome == "yes")

    @property
    def yes_price(self) -> int:
        return self.price if self.outcome == "yes" else SCALE - self.price

    def as_event(self) -> tuple:
        """The engine's ``order`` event layout."""
        return ("order", self.id, self.user, self.market, self.event, self.outcome,
                self.side, self.order_type, self.price, self.quantity, self.filled,
                self.status, self.tif, self.post_only, self.expires_at, self.coid,
                self.created, self.updated, self.reason)


@dataclass
class RefMarket:
    id: int
    event: int
    name: str
    tick: int
    status: str = "active"
    volume: int = 0
    last_price: int | None = None


@dataclass
class RefEvent:
    id: int
    title: str
    tick: int
    markets: list[int]
    status: str = "active"
    collateral: int = 0
    winner: int | None = None
    void: bool = False
    fee_rate: int = 0  # units: 700 is 7%
    fees: int = 0

    @property
    def is_multi(self) -> bool:
        return len(self.markets) > 1


@dataclass
class StepResult:
    """The facts one command produced, in the engine's event shapes (messages dropped)."""

    fills: list[tuple] = field(default_factory=list)
    rejections: list[tuple] = field(default_factory=list)  # (user, command, reason, oid, coid)
    duplicates: list[tuple] = field(default_factory=list)
    ledger: list[tuple] = field(default_factory=list)
    resolved: list[tuple] = field(default_factory=list)
    payouts: list[tuple] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    clock: list[tuple] = field(default_factory=list)  # ("clock", now, orders expired)
    dead_man: list[tuple] = field(default_factory=list)  # ("dead_man", user, ...) facts
    event_states: list[tuple] = field(default_factory=list)  # (id, status, title, ...)
    touched_orders: set[int] = field(default_factory=set)
    # per placement (each batch item) or modification: its order's id, None if refused
    primary_orders: list[int | None] = field(default_factory=list)


class Rejected(Exception):
    """Raised inside a handler to refuse a command; nothing has been changed yet."""

    def __init__(self, reason: str, order_id: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.order_id = order_id


class ReferenceExchange:
    """The reference model. ``apply(command) -> StepResult``."""

    def __init__(self) -> None:
        self.now = 0
        self.last_seq = 0
        self.events: dict[int, RefEvent] = {}
        self.markets: dict[int, RefMarket] = {}
        self.orders: dict[int, RefOrder] = {}  # every order ever created, by id
        # A superset of the open orders (closed ones are dropped between commands), only
        # so that long runs stay fast; ``open_orders`` still filters on the status.
        self.recent: dict[int, RefOrder] = {}
        # (user, coid) -> (order id, the placement's parameters)
        self.client_orders: dict[tuple[int, str], tuple[int, tuple]] = {}
        self.cash: dict[int, int] = {}  # user -> total cash (available + reserved)
        self.shares: dict[tuple[int, int, str], int] = {}  # (user, market, "yes"|"no")
        self.users: set[int] = set()  # users with an account (first deposit)
        self.deposits = 0
        self.withdrawals = 0
        self.rounding = 0
        self.fees = 0
        self.last_id = {"order": 0, "trade": 0, "event": 0, "market": 0}
        self.arrivals = 0
        self.closes: dict[int, int] = {}  # event -> pending close time
        # user -> [deadline (0: fired, off), timeout, fired at (0: not since last beat)]
        self.switches: dict[int, list[int]] = {}
        self.result = StepResult()

    # --- derived state ---------------------------------------------------------------

    def open_orders(self, market: int | None = None) -> list[RefOrder]:
        return [o for o in self.recent.values()
                if o.is_open and (market is None or o.market == market)]

    def reserved_cash(self, user: int) -> int:
        return sum(o.price * o.remaining for o in self.open_orders()
                   if o.user == user and o.is_buy)

    def reserved_shares(self, user: int, market: int, outcome: str) -> int:
        return sum(o.remaining for o in self.open_orders(market)
                   if o.user == user and not o.is_buy and o.outcome == outcome)

    def balance(self, user: int) -> tuple[int, int]:
        """(available, reserved) cash."""
        reserved = self.reserved_cash(user)
        return self.cash.get(user, 0) - reserved, reserved

    def money_held(self) -> int:
        """All the money in the exchange, counted where it is: cash, collateral, fees,
        rounding."""
        return (sum(self.cash.values()) + sum(e.collateral for e in self.events.values())
                + self.fees + self.rounding)

    def held(self, user: int, market: int, outcome: str) -> int:
        return self.shares.get((user, market, outcome), 0)

    def free(self, user: int, market: int, outcome: str) -> int:
        return self.held(user, market, outcome) - self.reserved_shares(user, market, outcome)

    def positions(self) -> dict[tuple[int, int], tuple[int, int, int, int]]:
        """(user, market) -> (yes, no, yes_reserved, no_reserved), non-zero ones only."""
        reserved: dict[tuple[int, int, str], int] = {}
        for o in self.open_orders():
            if not o.is_buy:
                key = (o.user, o.market, o.outcome)
                reserved[key] = reserved.get(key, 0) + o.remaining
        out = {}
        for user, market in {(user, market) for user, market, _ in self.shares}:
            row = (self.held(user, market, "yes"), self.held(user, market, "no"),
                   reserved.get((user, market, "yes"), 0), reserved.get((user, market, "no"), 0))
            if any(row):
                out[(user, market)] = row
        return out

    def all_levels(self) -> dict[tuple[int, str, int], int]:
        """(market, "bid"|"ask", YES price) -> quantity, for every level of every book."""
        out: dict[tuple[int, str, int], int] = {}
        for o in self.open_orders():
            key = (o.market, "bid" if o.is_bid else "ask", o.yes_price)
            out[key] = out.get(key, 0) + o.remaining
        return out

    def levels(self, market: int, view: str = "yes") -> tuple[list, list]:
        """Aggregated (bids, asks) of a market, best first, in the YES or NO view.

        In the NO view an order's price is its price *as a NO order*: buy NO and sell
        YES orders are NO bids; sell NO and buy YES orders are NO asks.
        """
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for o in self.open_orders(market):
            if view == "yes":
                price, is_bid = o.yes_price, o.is_bid
            else:
                price, is_bid = SCALE - o.yes_price, not o.is_bid
            side = bids if is_bid else asks
            side[price] = side.get(price, 0) + o.remaining
        return (sorted(bids.items(), reverse=True), sorted(asks.items()))

    # --- applying commands -------------------------------------------------------------

    def apply(self, cmd: c.Command) -> StepResult:
        self.result = StepResult()
        self.recent = {o.id: o for o in self.recent.values() if o.is_open}
        if cmd.seq:
            if cmd.seq <= self.last_seq:
                self.result.rejections.append(
                    (None, type(cmd).__name__, Reason.DUPLICATE_COMMAND, None, None))
                return self.result
            self.last_seq = cmd.seq
        self.now = max(self.now, cmd.ts_ms)
        self._time_passes()
        handler = getattr(self, f"_on_{type(cmd).__name__}")
        handler(cmd)
        return self.result

    def _guarded(self, user, command: str, action, coid: str | None = None) -> None:
        """Run ``action``; a ``Rejected`` becomes a rejection fact."""
        try:
            action()
        except Rejected as r:
            self.result.rejections.append((user, command, r.reason, r.order_id, coid))

    def _next(self, kind: str) -> int:
        self.last_id[kind] += 1
        return self.last_id[kind]

    def _time_passes(self) -> None:
        """Expire due gtd orders, then fire due close times and dead-man switches in
        (time, close before switch, id) order; the engine marks the end of all that (if
        anything happened: a close time of an event no longer active changes nothing)
        with one ``clock`` event counting the expired orders."""
        due = [o for o in self.open_orders() if o.tif == "gtd" and self.now >= o.expires_at]
        for o in due:
            self._close(o, "expired", Reason.EXPIRED)
        timers = sorted([(at, 0, eid) for eid, at in self.closes.items() if at <= self.now]
                        + [(s[0], 1, user) for user, s in self.switches.items()
                           if 0 < s[0] <= self.now])
        fired = 0
        for _, kind, key in timers:
            if kind == 0:
                del self.closes[key]
                event = self.events.get(key)
                if event is not None and event.status == "active":
                    self._close_event(event)
                    self._report_event(event)
                    fired += 1
            else:
                fired += 1
                for o in self.open_orders():
                    if o.user == key:
                        self._close(o, "cancelled", Reason.DEAD_MAN_SWITCH)
                switch = self.switches[key]
                switch[0], switch[2] = 0, self.now
                self.result.dead_man.append(("dead_man", key, None, switch[1], self.now))
        if due or fired:
            self.result.clock.append(("clock", self.now, len(due)))

    def _close(self, o: RefOrder, status: str, reason: str) -> None:
        o.status, o.reason, o.updated, o.arrival = status, reason, self.now, None
        self.result.touched_orders.add(o.id)

    # --- placing -----------------------------------------------------------------------

    def _on_PlaceOrder(self, cmd: c.PlaceOrder) -> None:
        self._with_primary(
            lambda: self._guarded(cmd.user_id, "PlaceOrder", lambda: self._place(cmd),
                                  cmd.client_order_id))

    def _with_primary(self, action) -> None:
        """Run a placement or modification; note its order id, or None if refused."""
        primary = self.result.primary_orders
        count = len(primary)
        action()
        if len(primary) == count:
            primary.append(None)

    def _on_PlaceBatch(self, cmd: c.PlaceBatch) -> None:
        for item in cmd.orders:
            if item.user_id != cmd.user_id:
                self.result.rejections.append((item.user_id, "PlaceOrder",
                                               Reason.INVALID_ORDER, None,
                                               item.client_order_id))
                self.result.primary_orders.append(None)
            else:
                self._on_PlaceOrder(item)

    def _place(self, cmd: c.PlaceOrder) -> None:
        user, coid = cmd.user_id, cmd.client_order_id
        if coid is not None and (user, coid) in self.client_orders:
            oid, params = self.client_orders[(user, coid)]
            if params != _params(cmd):
                raise Rejected(Reason.CLIENT_ORDER_ID_REUSED, oid)
            self.result.duplicates.append(("duplicate", oid, user, coid))
            self.result.touched_orders.add(oid)
            self.result.primary_orders.append(oid)
            return
        order = self._validated_order(cmd)
        self.orders[order.id] = self.recent[order.id] = order
        if coid is not None:
            self.client_orders[(user, coid)] = (order.id, _params(cmd))
        self.result.touched_orders.add(order.id)
        self.result.primary_orders.append(order.id)
        if order.tif == "fok" and not self._fok_fillable(order):
            order.status, order.reason = "cancelled", Reason.NOT_FILLED
            return
        self._take(order)
        self._finish_taker(order, rests=order.tif in ("gtc", "gtd"))

    def _validated_order(self, cmd: c.PlaceOrder) -> RefOrder:
        """The new order ``cmd`` describes, or ``Rejected`` in the engine's check order."""
        market = self.markets.get(cmd.market_id)
        if market is None:
            raise Rejected(Reason.UNKNOWN_MARKET)
        if market.status != "active":
            raise Rejected(Reason.MARKET_NOT_ACTIVE)
        if cmd.max_open_orders and sum(
                o.user == cmd.user_id for o in self.open_orders()) >= cmd.max_open_orders:
            raise Rejected(Reason.OPEN_ORDER_LIMIT)
        if not _whole(cmd.quantity, 1, MAX_QUANTITY):
            raise Rejected(Reason.INVALID_QUANTITY)
        is_market = cmd.order_type is c.OrderType.MARKET
        buy = cmd.side is c.Side.BUY
        price = cmd.price
        if price is None and is_market:
            price = SCALE - market.tick if buy else market.tick  # worst price on the grid
        if not _on_grid(price, market.tick):
            raise Rejected(Reason.INVALID_PRICE)
        tif = cmd.tif.value
        if is_market and tif == "gtd":
            raise Rejected(Reason.INVALID_ORDER)
        if is_market and tif == "gtc":
            tif = "ioc"  # a market order never rests
        if tif == "gtd":
            if type(cmd.expires_at_ms) is not int or cmd.expires_at_ms <= self.now:
                raise Rejected(Reason.INVALID_EXPIRY)
        elif cmd.expires_at_ms is not None:
            raise Rejected(Reason.INVALID_EXPIRY)
        if cmd.post_only and tif not in ("gtc", "gtd"):
            raise Rejected(Reason.INVALID_ORDER)
        order = RefOrder(
            id=self.last_id["order"] + 1, user=cmd.user_id, market=market.id,
            event=market.event, outcome=cmd.outcome.value, side=cmd.side.value, price=price,
            quantity=cmd.quantity, order_type=cmd.order_type.value, tif=tif,
            post_only=cmd.post_only, expires_at=cmd.expires_at_ms if tif == "gtd" else None,
            coid=cmd.client_order_id, stp=cmd.stp.value, created=self.now, updated=self.now)
        self._check_affordable(order, order.quantity)
        if order.post_only and self._crossing(order):
            raise Rejected(Reason.POST_ONLY_WOULD_CROSS)
        self._next("order")
        return order

    def _check_affordable(self, order: RefOrder, new_remaining: int, old_remaining: int = 0,
                          old_price: int = 0, order_id: int | None = None) -> None:
        """Can the user reserve what ``order`` needs beyond what it already holds?"""
        if order.is_buy:
            extra = order.price * new_remaining - old_price * old_remaining
            if self._crossing(order):  # it takes: its worst-case fee must be there too
                extra += self._worst_fee(order, new_remaining)
            if extra > self.balance(order.user)[0]:
                raise Rejected(Reason.INSUFFICIENT_CASH, order_id)
        elif new_remaining - old_remaining > self.free(order.user, order.market,
                                                         order.outcome):
            raise Rejected(Reason.INSUFFICIENT_SHARES, order_id)

    # --- fees --------------------------------------------------------------------------

    def _rate(self, order: RefOrder) -> Fraction:
        return Fraction(self.events[order.event].fee_rate, SCALE)

    @staticmethod
    def _fee(rate: Fraction, qty: int, own_price: int) -> int:
        """ceil_to_cent(rate x qty x p x (1 - p)) in units, at most the fill's own value."""
        p = Fraction(own_price, SCALE)
        dollars = ceil(rate * qty * p * (1 - p) / CENT) * CENT
        return min(int(dollars * SCALE), qty * own_price)

    def _worst_fee(self, order: RefOrder, qty: int) -> int:
        """The most ``qty`` of a buy can pay taking: every fill a single share, each at
        the own price up to the limit where p x (1 - p) peaks."""
        rate = self._rate(order)
        if not rate:
            return 0
        return qty * _worst_single_share_fee(rate, self.markets[order.market].tick,
                                             order.price)

    # --- matching ----------------------------------------------------------------------

    def _crossing(self, taker: RefOrder) -> list[RefOrder]:
        """Resting orders ``taker`` would trade with, best price first, then arrival."""
        if taker.is_bid:
            found = [o for o in self.open_orders(taker.market)
                     if o.arrival is not None and not o.is_bid
                     and o.yes_price <= taker.yes_price]
            return sorted(found, key=lambda o: (o.yes_price, o.arrival))
        found = [o for o in self.open_orders(taker.market)
                 if o.arrival is not None and o.is_bid and o.yes_price >= taker.yes_price]
        return sorted(found, key=lambda o: (-o.yes_price, o.arrival))

    def _fok_fillable(self, taker: RefOrder) -> bool:
        """Would matching fill all of ``taker``? Own orders are skipped (cancel_resting)
        or end the matching (cancel_taker / cancel_both)."""
        available = 0
        for maker in self._crossing(taker):
            if maker.user == taker.user:
                if taker.stp == "cancel_resting":
                    continue
                break
            available += maker.remaining
        return available >= taker.remaining

    def _take(self, taker: RefOrder) -> None:
        """Trade ``taker`` against the book, one fill at a time, best maker first."""
        while taker.remaining:
            makers = self._crossing(taker)
            if not makers:
                return
            maker = makers[0]
            if maker.user == taker.user:  # self-trade prevention
                if taker.stp != "cancel_taker":
                    self._close(maker, "cancelled", Reason.SELF_TRADE)
                if taker.stp != "cancel_resting":
                    taker.reason = Reason.SELF_TRADE
                    return
                continue
            self._trade(taker, maker, min(taker.remaining, maker.remaining))

    def _trade(self, taker: RefOrder, maker: RefOrder, qty: int) -> None:
        """Settle one fill at the maker's (YES) price ``p``; DESIGN §1's four kinds."""
        p = maker.yes_price
        bid, ask = (taker, maker) if taker.is_bid else (maker, taker)
        m = bid.market
        if bid.outcome == "yes":  # buy YES: pays p, gets YES
            self._move_cash(bid.user, -p * qty)
            self._move_shares(bid.user, m, "yes", qty)
        else:  # sell NO: delivers NO, gets 1 - p
            self._move_shares(bid.user, m, "no", -qty)
            self._move_cash(bid.user, (SCALE - p) * qty)
        if ask.outcome == "yes":  # sell YES: delivers YES, gets p
            self._move_shares(ask.user, m, "yes", -qty)
            self._move_cash(ask.user, p * qty)
        else:  # buy NO: pays 1 - p, gets NO
            self._move_cash(ask.user, -(SCALE - p) * qty)
            self._move_shares(ask.user, m, "no", qty)
        kind = SETTLEMENT[(bid.outcome == "yes", ask.outcome == "yes")]
        event = self.events[self.markets[m].event]
        own = p if taker.outcome == "yes" else SCALE - p
        fee = self._fee(self._rate(taker), qty, own)
        self._move_cash(taker.user, -fee)
        event.fees += fee
        self.fees += fee
        if kind == "mint":
            event.collateral += SCALE * qty
        elif kind == "merge":
            event.collateral -= SCALE * qty
        for o in (taker, maker):
            o.filled += qty
            o.updated = self.now
            self.result.touched_orders.add(o.id)
        if not maker.remaining:
            maker.status, maker.arrival = "filled", None
        else:
            maker.status = "partially_filled"
        self.markets[m].volume += qty
        self.markets[m].last_price = p
        self.result.fills.append((
            "fill", self._next("trade"), m, p, qty, kind, "buy" if taker.is_bid else "sell",
            taker.id, taker.user, maker.id, maker.user, self.now, fee))

    def _finish_taker(self, order: RefOrder, rests: bool) -> None:
        """After matching: filled, or rest what is left, or cancel it."""
        if not order.remaining:
            order.status = "filled"
        elif order.reason is not None or not rests:
            order.status = "cancelled"
            order.reason = order.reason or Reason.NOT_FILLED
        else:
            order.status = "partially_filled" if order.filled else "open"
            self.arrivals += 1
            order.arrival = self.arrivals

    def _move_cash(self, user: int, amount: int) -> None:
        self.cash[user] = self.cash.get(user, 0) + amount

    def _move_shares(self, user: int, market: int, outcome: str, qty: int) -> None:
        key = (user, market, outcome)
        self.shares[key] = self.shares.get(key, 0) + qty

    # --- modify and cancel -------------------------------------------------------------

    def _owned_open(self, user: int, order_id: int) -> RefOrder:
        o = self.orders.get(order_id)
        if o is None or not o.is_open or o.user != user:
            raise Rejected(Reason.UNKNOWN_ORDER, order_id)
        return o

    def _on_ModifyOrder(self, cmd: c.ModifyOrder) -> None:
        self._with_primary(
            lambda: self._guarded(cmd.user_id, "ModifyOrder", lambda: self._modify(cmd)))

    def _modify(self, cmd: c.ModifyOrder) -> None:
        o = self._owned_open(cmd.user_id, cmd.order_id)
        market = self.markets[o.market]
        price = o.price if cmd.price is None else cmd.price
        qty = o.quantity if cmd.quantity is None else cmd.quantity
        if market.status != "active":
            raise Rejected(Reason.MARKET_NOT_ACTIVE, o.id)
        if not _on_grid(price, market.tick):
            raise Rejected(Reason.INVALID_PRICE, o.id)
        if not _whole(qty, o.filled + 1, MAX_QUANTITY):
            raise Rejected(Reason.INVALID_QUANTITY, o.id)
        if price == o.price and qty == o.quantity:
            self._report(o)
            return
        if price == o.price and qty < o.quantity:  # smaller: keeps its place in the queue
            o.quantity, o.updated = qty, self.now
            self._report(o)
            return
        moved = RefOrder(**{**o.__dict__, "price": price, "quantity": qty})
        if o.post_only and self._crossing(moved):
            raise Rejected(Reason.POST_ONLY_WOULD_CROSS, o.id)
        self._check_affordable(moved, moved.remaining, o.remaining, o.price, o.id)
        self._report(o)
        o.price, o.quantity, o.updated, o.arrival = price, qty, self.now, None
        self._take(o)
        self._finish_taker(o, rests=True)

    def _report(self, o: RefOrder) -> None:
        self.result.touched_orders.add(o.id)
        self.result.primary_orders.append(o.id)

    def _on_CancelOrder(self, cmd: c.CancelOrder) -> None:
        def cancel() -> None:
            self._close(self._owned_open(cmd.user_id, cmd.order_id), "cancelled", Reason.USER)

        self._guarded(cmd.user_id, "CancelOrder", cancel)

    def _on_CancelAll(self, cmd: c.CancelAll) -> None:
        for o in self.open_orders(cmd.market_id):
            if o.user == cmd.user_id:
                self._close(o, "cancelled", Reason.USER)

    def _on_Expire(self, cmd: c.Expire) -> None:
        pass  # the clock moved and what fell due happened in apply()

    # --- dead-man switch ---------------------------------------------------------------

    def _on_Heartbeat(self, cmd: c.Heartbeat) -> None:
        def heartbeat() -> None:
            if not _whole(cmd.user_id, 1, 2**62):
                raise Rejected(Reason.INVALID_FIELD)
            if not _whole(cmd.timeout_ms, 5_000, 300_000):
                self.result.rejections.append(
                    (cmd.user_id, "Heartbeat", Reason.INVALID_FIELD, None, None))
                return
            fired = self.switches.get(cmd.user_id, [0, 0, 0])[2]
            self.switches[cmd.user_id] = [self.now + cmd.timeout_ms, cmd.timeout_ms, 0]
            self.result.dead_man.append(("dead_man", cmd.user_id, self.now + cmd.timeout_ms,
                                         cmd.timeout_ms, fired or None))

        self._guarded(None, "Heartbeat", heartbeat)

    def _on_DisarmHeartbeat(self, cmd: c.DisarmHeartbeat) -> None:
        def disarm() -> None:
            if not _whole(cmd.user_id, 1, 2**62):
                raise Rejected(Reason.INVALID_FIELD)
            switch = self.switches.pop(cmd.user_id, [0, 0, 0])
            self.result.dead_man.append(("dead_man", cmd.user_id, None, switch[1], None))

        self._guarded(None, "DisarmHeartbeat", disarm)

    # --- money and collateral ----------------------------------------------------------

    def _ledger(self, user, kind, amount, event=None, market=None, qty=0) -> None:
        self.result.ledger.append(("ledger", user, kind, amount, event, market, qty, self.now))

    def _on_Deposit(self, cmd: c.Deposit) -> None:
        def deposit() -> None:
            if not _whole(cmd.amount, 1, MAX_AMOUNT):
                raise Rejected(Reason.INVALID_AMOUNT)
            if self.money_held() + cmd.amount > MAX_TOTAL_MONEY:
                raise Rejected(Reason.EXCHANGE_MONEY_LIMIT)
            if cmd.max_balance and self.cash.get(cmd.user_id, 0) + cmd.amount > cmd.max_balance:
                raise Rejected(Reason.BALANCE_LIMIT)
            self.users.add(cmd.user_id)
            self._move_cash(cmd.user_id, cmd.amount)
            self.deposits += cmd.amount
            self._ledger(cmd.user_id, "deposit", cmd.amount)

        self._guarded(cmd.user_id, "Deposit", deposit)

    def _on_Withdraw(self, cmd: c.Withdraw) -> None:
        def withdraw() -> None:
            if not _whole(cmd.amount, 1, MAX_AMOUNT):
                raise Rejected(Reason.INVALID_AMOUNT)
            self._need_cash(cmd.user_id, cmd.amount)
            self._move_cash(cmd.user_id, -cmd.amount)
            self.withdrawals += cmd.amount
            self._ledger(cmd.user_id, "withdrawal", -cmd.amount)

        self._guarded(cmd.user_id, "Withdraw", withdraw)

    def _need_cash(self, user: int, amount: int) -> None:
        if self.balance(user)[0] < amount:
            raise Rejected(Reason.INSUFFICIENT_CASH)

    def _need_free(self, user: int, market: int, outcome: str, qty: int) -> None:
        if self.free(user, market, outcome) < qty:
            raise Rejected(Reason.INSUFFICIENT_SHARES)

    def _unresolved_market(self, market_id: int) -> RefMarket:
        market = self.markets.get(market_id)
        if market is None:
            raise Rejected(Reason.UNKNOWN_MARKET)
        if market.status == "resolved":
            raise Rejected(Reason.MARKET_NOT_ACTIVE)
        return market

    def _on_Split(self, cmd: c.Split) -> None:
        def split() -> None:
            market = self._unresolved_market(cmd.market_id)
            q = _quantity(cmd.quantity)
            self._need_cash(cmd.user_id, q * SCALE)
            self._move_cash(cmd.user_id, -q * SCALE)
            self._move_shares(cmd.user_id, market.id, "yes", q)
            self._move_shares(cmd.user_id, market.id, "no", q)
            self.events[market.event].collateral += q * SCALE
            self._ledger(cmd.user_id, "split", -q * SCALE, market.event, market.id, q)

        self._guarded(cmd.user_id, "Split", split)

    def _on_Merge(self, cmd: c.Merge) -> None:
        def merge() -> None:
            market = self._unresolved_market(cmd.market_id)
            q = _quantity(cmd.quantity)
            self._need_free(cmd.user_id, market.id, "yes", q)
            self._need_free(cmd.user_id, market.id, "no", q)
            self._move_shares(cmd.user_id, market.id, "yes", -q)
            self._move_shares(cmd.user_id, market.id, "no", -q)
            self._move_cash(cmd.user_id, q * SCALE)
            self.events[market.event].collateral -= q * SCALE
            self._ledger(cmd.user_id, "merge", q * SCALE, market.event, market.id, q)

        self._guarded(cmd.user_id, "Merge", merge)

    def _multi_event(self, event_id: int, quantity) -> tuple[RefEvent, int]:
        event = self.events.get(event_id)
        if event is None:
            raise Rejected(Reason.UNKNOWN_EVENT)
        if not event.is_multi:
            raise Rejected(Reason.SINGLE_OUTCOME_EVENT)
        if event.status == "resolved":
            raise Rejected(Reason.EVENT_NOT_ACTIVE)
        return event, _quantity(quantity)

    def _on_SplitEvent(self, cmd: c.SplitEvent) -> None:
        def split_event() -> None:
            event, q = self._multi_event(cmd.event_id, cmd.quantity)
            self._need_cash(cmd.user_id, q * SCALE)
            self._move_cash(cmd.user_id, -q * SCALE)
            for m in event.markets:
                self._move_shares(cmd.user_id, m, "yes", q)
            event.collateral += q * SCALE
            self._ledger(cmd.user_id, "split_event", -q * SCALE, event.id, None, q)

        self._guarded(cmd.user_id, "SplitEvent", split_event)

    def _on_MergeEvent(self, cmd: c.MergeEvent) -> None:
        def merge_event() -> None:
            event, q = self._multi_event(cmd.event_id, cmd.quantity)
            for m in event.markets:
                self._need_free(cmd.user_id, m, "yes", q)
            for m in event.markets:
                self._move_shares(cmd.user_id, m, "yes", -q)
            self._move_cash(cmd.user_id, q * SCALE)
            event.collateral -= q * SCALE
            self._ledger(cmd.user_id, "merge_event", q * SCALE, event.id, None, q)

        self._guarded(cmd.user_id, "MergeEvent", merge_event)

    def _on_Convert(self, cmd: c.Convert) -> None:
        def convert() -> None:
            event, q = self._multi_event(cmd.event_id, cmd.quantity)
            chosen = list(cmd.outcome_ids)
            if not chosen or len(set(chosen)) != len(chosen) or \
                    not set(chosen) <= set(event.markets):
                raise Rejected(Reason.UNKNOWN_OUTCOME)
            for m in chosen:
                self._need_free(cmd.user_id, m, "no", q)
            for m in event.markets:
                if m in chosen:
                    self._move_shares(cmd.user_id, m, "no", -q)
                else:
                    self._move_shares(cmd.user_id, m, "yes", q)
            # k NOs pay k - 1 more than the YES of the other outcomes in every resolution
            released = (len(chosen) - 1) * q * SCALE
            self._move_cash(cmd.user_id, released)
            event.collateral -= released
            self._ledger(cmd.user_id, "convert", released, event.id, None, q)

        self._guarded(cmd.user_id, "Convert", convert)

    # --- admin -------------------------------------------------------------------------

    def _on_CreateEvent(self, cmd: c.CreateEvent) -> None:
        def create() -> None:
            title = cmd.title.strip() if isinstance(cmd.title, str) else ""
            names = [n.strip() if isinstance(n, str) else "" for n in cmd.outcomes] or ["Yes"]
            if not title:
                raise Rejected(Reason.INVALID_EVENT)
            _check_fee_rate(cmd.fee_rate)
            if cmd.tick not in VALID_TICKS or not all(names) \
                    or len(set(names)) != len(names) or len(names) > MAX_OUTCOMES:
                raise Rejected(Reason.INVALID_EVENT)
            event = RefEvent(self._next("event"), title, cmd.tick, [],
                             fee_rate=cmd.fee_rate)
            for name in names:
                market = RefMarket(self._next("market"), event.id, name, cmd.tick)
                self.markets[market.id] = market
                event.markets.append(market.id)
            self.events[event.id] = event
            self._schedule_close(event, cmd.close_time_ms)
            self._report_event(event)

        self._guarded(None, "CreateEvent", create)

    def _schedule_close(self, event: RefEvent, close_ms: int | None) -> None:
        """A close time yet to come is pending; one already come closes an active event."""
        self.closes.pop(event.id, None)
        if close_ms is None:
            return
        if close_ms > self.now:
            self.closes[event.id] = close_ms
        elif event.status == "active":
            self._close_event(event)

    def _close_event(self, event: RefEvent) -> None:
        event.status = "closed"
        for m in event.markets:
            self.markets[m].status = "closed"
        self._cancel_event_orders(event, Reason.EVENT_CLOSED)

    def _live_event(self, event_id: int) -> RefEvent:
        event = self.events.get(event_id)
        if event is None:
            raise Rejected(Reason.UNKNOWN_EVENT)
        if event.status == "resolved":
            raise Rejected(Reason.ALREADY_RESOLVED)
        return event

    def _cancel_event_orders(self, event: RefEvent, reason: str) -> None:
        for o in self.open_orders():
            if o.event == event.id:
                self._close(o, "cancelled", reason)

    def _on_UpdateEvent(self, cmd: c.UpdateEvent) -> None:
        def update() -> None:
            event = self._live_event(cmd.event_id)
            if cmd.title is not None and not cmd.title.strip():
                raise Rejected(Reason.INVALID_EVENT)
            if cmd.fee_rate is not None:
                _check_fee_rate(cmd.fee_rate)
            if cmd.status not in (None, c.EventStatus.ACTIVE, c.EventStatus.CLOSED):
                raise Rejected(Reason.INVALID_EVENT)
            if cmd.title is not None:
                event.title = cmd.title.strip()
            if cmd.fee_rate is not None:
                event.fee_rate = cmd.fee_rate
            if cmd.status is not None and cmd.status.value != event.status:
                event.status = cmd.status.value
                for m in event.markets:
                    self.markets[m].status = event.status
                if event.status == "closed":
                    self._cancel_event_orders(event, Reason.EVENT_CLOSED)
            if cmd.close_time_ms is not None:
                self._schedule_close(event, cmd.close_time_ms)
            self._report_event(event)

        self._guarded(None, "UpdateEvent", update)

    def _report_event(self, e: RefEvent) -> None:
        markets = tuple((m, self.markets[m].name) for m in e.markets)
        self.result.event_states.append(
            (e.id, e.status, e.title, e.tick, markets, e.winner, e.void, e.fee_rate))

    def _on_DeleteEvent(self, cmd: c.DeleteEvent) -> None:
        def delete() -> None:
            event = self.events.get(cmd.event_id)
            if event is None:
                raise Rejected(Reason.UNKNOWN_EVENT)
            if event.collateral or any(self.markets[m].volume for m in event.markets):
                raise Rejected(Reason.EVENT_NOT_DELETABLE)
            self._cancel_event_orders(event, Reason.EVENT_DELETED)
            self.closes.pop(event.id, None)
            for key, (oid, _) in list(self.client_orders.items()):
                if self.orders[oid].event == event.id:
                    del self.client_orders[key]
            for key in [k for k in self.shares if k[1] in event.markets]:
                assert self.shares[key] == 0, "collateral 0 means no shares are outstanding"
                del self.shares[key]
            for m in event.markets:
                del self.markets[m]
            del self.events[event.id]
            self.result.deleted.append(event.id)

        self._guarded(None, "DeleteEvent", delete)

    def _on_ResolveEvent(self, cmd: c.ResolveEvent) -> None:
        self._guarded(None, "ResolveEvent", lambda: self._resolve(cmd))

    def _resolve(self, cmd: c.ResolveEvent) -> None:
        event = self._live_event(cmd.event_id)
        winner = cmd.winning_outcome_id
        if cmd.void and winner is not None:
            raise Rejected(Reason.UNKNOWN_OUTCOME)
        if not cmd.void and winner is None and event.is_multi:
            raise Rejected(Reason.UNKNOWN_OUTCOME)
        if winner is not None and winner not in event.markets:
            raise Rejected(Reason.UNKNOWN_OUTCOME)
        self._cancel_event_orders(event, Reason.EVENT_RESOLVED)
        self.closes.pop(event.id, None)
        n = len(event.markets) if event.is_multi else 2
        paid = 0
        for m in event.markets:
            for user in sorted({k[0] for k in self.shares if k[1] == m}):
                yes, no = self.held(user, m, "yes"), self.held(user, m, "no")
                if not (yes or no):
                    continue
                if cmd.void:  # 1/N per YES, 1 - 1/N per NO, rounded down per position
                    amount = (yes + no * (n - 1)) * SCALE // n
                else:
                    amount = (yes if m == winner else no) * SCALE
                self.shares[(user, m, "yes")] = self.shares[(user, m, "no")] = 0
                self._move_cash(user, amount)
                paid += amount
                self._ledger(user, "payout", amount, event.id, m, yes + no)
                self.result.payouts.append(("payout", user, event.id, m, yes, no, amount,
                                            self.now))
            self.markets[m].status = "resolved"
        assert paid <= event.collateral, "collateral must cover every resolution"
        assert cmd.void or paid == event.collateral, "a decided event pays out exactly"
        self.rounding += event.collateral - paid
        self.result.resolved.append(("resolved", event.id, winner, bool(cmd.void), paid,
                                     event.collateral - paid, self.now))
        event.collateral = 0
        event.status, event.winner, event.void = "resolved", winner, bool(cmd.void)
        self._report_event(event)


def _whole(value, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


@cache
def _worst_single_share_fee(rate: Fraction, tick: int, limit: int) -> int:
    """The largest fee of one share at any own price from ``tick`` up to ``limit``.

    Remembered: a pure function of its arguments, and the maximum over up to 10,000
    prices in exact fractions is most of what the state machine's runs would otherwise
    spend in this model (a buy at 0.50 on a 0.0001 tick)."""
    prices = range(tick, limit + 1, tick)
    return max(ReferenceExchange._fee(rate, 1, p) for p in prices)


def _check_fee_rate(value) -> None:
    if not _whole(value, 0, MAX_FEE_RATE):
        raise Rejected(Reason.INVALID_FIELD)


def _quantity(value) -> int:
    if not _whole(value, 1, MAX_QUANTITY):
        raise Rejected(Reason.INVALID_QUANTITY)
    return value


def _on_grid(price, tick: int) -> bool:
    return type(price) is int and 0 < price < SCALE and price % tick == 0


def _params(cmd: c.PlaceOrder) -> tuple:
    """What a placement with a client_order_id must repeat to be a retry (API.md)."""
    return (cmd.market_id, cmd.outcome, cmd.side, cmd.price, cmd.quantity, cmd.order_type,
            cmd.tif, cmd.expires_at_ms, cmd.post_only, cmd.stp)
