"""The engine's state objects: orders and the book they rest in, accounts and
positions, markets and events, the treasury, and the timers' data.

They form one module because they point at one another (an order knows its market,
account and position; a market holds its book of orders). The functions that change
them live by concern beside it (``trading``, ``collateral``, ``admin``, ``timers``);
``state.State`` holds them all.

**The book.** The canonical YES order book of one market, and the orders resting in it.
Layout (measured fastest in docs/PERFORMANCE.md): one slot per tick on each side, each
slot a ``Level`` (a list of orders in time priority read from a moving head) plus a
running total of the live quantity at that price, and the best bid/ask tracked
incrementally. Prices here are *tick indexes* (YES price = index x tick). Cancelling is
O(1): the order is marked dead and stays in its level until matching reaches it, or
until the level is compacted.

Book invariants: ``bid_qty[i]`` / ``ask_qty[i]`` equal the remaining quantity of the
live orders in slot ``i``; ``best_bid`` is the highest slot with live quantity (0 if
none), ``best_ask`` the lowest (``n`` if none); the book is never crossed between
commands.

**The money.** Money invariant (DESIGN §1), checked by ``Engine.audit``:
    Σ account cash (available + reserved) + Σ event collateral + fees + rounding
        == Σ deposits - Σ withdrawals  (``Treasury.held``)  <= ``units.MAX_TOTAL_MONEY``.
Shares only come into existence in fully collateralised bundles (mint, split, event
split, convert), so every event's collateral equals what it will pay out under *any*
resolution.

Compiled with mypyc (see setup.py): classes here are native, with fixed, typed
attributes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, Final

from .events import BalanceState, DeadManState, EventState, OrderState, PositionState

# Order actions, i.e. what the owner does, and where it sits on the YES book.
BUY_YES: Final = 0  # bid
SELL_NO: Final = 1  # bid at 1 - p
SELL_YES: Final = 2  # ask
BUY_NO: Final = 3  # ask at 1 - p

ACTION_NAMES: Final = ("buy_yes", "sell_no", "sell_yes", "buy_no")
ACTION_OUTCOME: Final = ("yes", "no", "yes", "no")
ACTION_SIDE: Final = ("buy", "sell", "sell", "buy")

# Order statuses (the API's words).
OPEN: Final = "open"
PARTIALLY_FILLED: Final = "partially_filled"
FILLED: Final = "filled"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"

_COMPACT_MIN_DEAD: Final = 32
_TRIM_MIN_HEAD: Final = 64


class Order:
    """An order in its owner's terms, with its place on the YES book.

    ``price`` is the owner's limit (or a market order's protective price); ``slot`` is
    the YES-book tick index it rests at. A buy reserves exactly ``price x remaining``
    cash and a sell exactly ``remaining`` shares for as long as the order is open.
    ``position`` is None only for a fill-or-kill order refused before it could trade.
    """

    id: int
    # The id boxed once: the key of the open-order dicts (``State.orders``,
    # ``Account.orders``). Inserting and deleting with this one object spares a new int
    # per dict operation and makes the deletion's lookup an identity match.
    key: object
    user: int
    market: Market
    action: int
    is_bid: bool
    price: int
    slot: int
    quantity: int
    remaining: int
    filled: int
    status: str
    live: bool
    created_ms: int
    updated_ms: int
    account: Account
    position: Position | None
    order_type: str
    tif: str
    post_only: bool
    expires_at_ms: int | None
    client_order_id: str | None
    # with a client_order_id: the placement's parameters, so that a resend with other
    # parameters is told apart from a retry (trading.placement)
    placement: tuple[object, ...] | None
    stp: str
    reason: str | None
    touched: bool  # listed among what the current command changed
    next_touched: Order | None  # the next one listed (state.State._touch_*)
    view: OrderState | None  # its last ``snapshot`` while the owner caches views

    def __init__(self, oid: int, user: int, market: Market, action: int, price: int,
                 slot: int, quantity: int, ts_ms: int, account: Account,
                 position: Position | None) -> None:
        self.id = oid
        self.key = oid
        self.user = user
        self.market = market
        self.action = action
        self.is_bid = action < SELL_YES
        self.price = price
        self.slot = slot
        self.quantity = quantity
        self.remaining = quantity
        self.filled = 0
        self.status = OPEN
        self.live = False
        self.created_ms = ts_ms
        self.updated_ms = ts_ms
        self.account = account
        self.position = position
        self.order_type = "limit"
        self.tif = "gtc"
        self.post_only = False
        self.expires_at_ms = None
        self.client_order_id = None
        self.placement = None
        self.stp = "cancel_resting"
        self.reason = None
        self.touched = False
        self.next_touched = None
        self.view = None

    @property
    def is_buy(self) -> bool:
        """Whether the owner buys (YES or NO): the order reserves cash."""
        return self.action == BUY_YES or self.action == BUY_NO

    @property
    def is_open(self) -> bool:
        """Whether the order still rests (open or partially filled)."""
        return self.status == OPEN or self.status == PARTIALLY_FILLED

    def snapshot(self) -> OrderState:
        """The ``order`` event for this order's current state."""
        action = self.action
        market = self.market
        # Not ACTION_OUTCOME[action]: mypyc inlines a Final tuple, so indexing it would
        # build the tuple anew on every call (two allocations per order event).
        return OrderState(
            self.id, self.user, market.id, market.event.id,
            "yes" if action in (BUY_YES, SELL_YES) else "no",
            "buy" if action in (BUY_YES, BUY_NO) else "sell",
            self.order_type, self.price,
            self.quantity, self.filled, self.status, self.tif, self.post_only,
            self.expires_at_ms, self.client_order_id, self.created_ms, self.updated_ms,
            self.reason,
        )


class Level:
    """The orders of one price, oldest first: ``orders[head:]``, dead ones included.

    Popping the front only moves ``head``; the consumed prefix is trimmed once it is
    most of the list, so both ends stay O(1) amortised. ``dead`` counts the cancelled
    orders still inside ``orders[head:]``. ``key`` is +slot for a bid level, -slot for an
    ask level.
    """

    orders: list[Order]
    head: int
    dead: int
    key: int
    changed: bool  # listed among the levels the current command changed (Book.mark)
    next_changed: Level | None  # the next one listed

    def __init__(self, key: int) -> None:
        self.orders = []
        self.head = 0
        self.dead = 0
        self.key = key
        self.changed = False
        self.next_changed = None

    def pop_front(self) -> None:
        """Drop the front order (filled, or dead and skipped)."""
        head = self.head + 1
        if head >= _TRIM_MIN_HEAD and head * 2 >= len(self.orders):
            del self.orders[:head]
            head = 0
        self.head = head

    def clear(self) -> None:
        """Forget every order: the level has no live quantity left."""
        self.orders.clear()
        self.head = 0
        self.dead = 0

    def kill(self) -> None:
        """Count one more dead order; compact when they are most of the level."""
        dead = self.dead = self.dead + 1
        if dead >= _COMPACT_MIN_DEAD and dead * 2 > len(self.orders) - self.head:
            self.orders = [o for o in self.orders[self.head:] if o.live]
            self.head = 0
            self.dead = 0

    def live(self) -> list[Order]:
        """The live orders, in time priority."""
        return [o for o in self.orders[self.head:] if o.live]


class Book:
    """Price-indexed YES book: slots ``1 .. n-1`` on each side, ``n = SCALE // tick``."""

    n: int
    bids: list[Level | None]
    asks: list[Level | None]
    bid_qty: list[int]
    ask_qty: list[int]
    best_bid: int
    best_ask: int
    changed: Level | None
    changed_last: Level | None

    def __init__(self, n: int) -> None:
        self.n = n
        self.bids = [None] * (n + 1)
        self.asks = [None] * (n + 1)
        self.bid_qty = [0] * (n + 1)
        self.ask_qty = [0] * (n + 1)
        self.best_bid = 0
        self.best_ask = n
        # Levels changed by the current command, in the order first changed: a chain
        # from ``changed`` (None: none) through ``Level.next_changed`` to
        # ``changed_last`` (allocates nothing, like ``state.State``'s touched chains).
        self.changed = None
        self.changed_last = None

    def mark(self, level: Level) -> None:
        """Note that ``level`` changed in this command."""
        if not level.changed:
            level.changed = True
            last = self.changed_last
            if last is None:
                self.changed = level
            else:
                last.next_changed = level
            self.changed_last = level

    def clear_dirty(self) -> None:
        """Forget which levels changed (after their ``book`` events were emitted)."""
        level = self.changed
        self.changed = self.changed_last = None
        while level is not None:
            following = level.next_changed
            level.changed = False
            level.next_changed = None
            level = following

    # --- resting and removing ----------------------------------------------------

    def rest(self, order: Order) -> None:
        """Append a live order at the back of its level."""
        i = order.slot
        order.live = True
        if order.is_bid:
            level = self.bids[i]
            if level is None:
                level = self.bids[i] = Level(i)
            level.orders.append(order)
            # not +=, which mypyc compiles to a generic number op on a list item
            self.bid_qty[i] = self.bid_qty[i] + order.remaining
            if i > self.best_bid:
                self.best_bid = i
            self.mark(level)
        else:
            level = self.asks[i]
            if level is None:
                level = self.asks[i] = Level(-i)
            level.orders.append(order)
            self.ask_qty[i] = self.ask_qty[i] + order.remaining
            if i < self.best_ask:
                self.best_ask = i
            self.mark(level)

    def remove(self, order: Order) -> None:
        """Take a live order out of the book (tombstone; O(1) amortised)."""
        order.live = False
        i = order.slot
        if order.is_bid:
            left = self.bid_qty[i] - order.remaining
            self.bid_qty[i] = left
            level = self.bids[i]
            assert level is not None
            self.mark(level)
            if left == 0:
                level.clear()
                if i == self.best_bid:
                    self.best_bid = self.next_bid(i)
            else:
                level.kill()
        else:
            left = self.ask_qty[i] - order.remaining
            self.ask_qty[i] = left
            level = self.asks[i]
            assert level is not None
            self.mark(level)
            if left == 0:
                level.clear()
                if i == self.best_ask:
                    self.best_ask = self.next_ask(i)
            else:
                level.kill()

    def reduce(self, order: Order, by: int) -> None:
        """Lower a live order's remaining quantity in place (keeps time priority)."""
        order.remaining -= by
        i = order.slot
        level = self.bids[i] if order.is_bid else self.asks[i]
        assert level is not None
        if order.is_bid:
            self.bid_qty[i] = self.bid_qty[i] - by
        else:
            self.ask_qty[i] = self.ask_qty[i] - by
        self.mark(level)

    def next_bid(self, below: int) -> int:
        """Highest slot under ``below`` with live quantity, or 0."""
        qty = self.bid_qty
        i = below - 1
        while i > 0 and not qty[i]:
            i -= 1
        return i

    def next_ask(self, above: int) -> int:
        """Lowest slot over ``above`` with live quantity, or ``n``."""
        qty = self.ask_qty
        n = self.n
        i = above + 1
        while i < n and not qty[i]:
            i += 1
        return i

    # --- reading -------------------------------------------------------------------

    def bid_levels(self, depth: int | None = None) -> list[tuple[int, int]]:
        """``[(slot, quantity)]`` of live bid levels, best (highest) first."""
        out: list[tuple[int, int]] = []
        qty = self.bid_qty
        i = self.best_bid
        while i > 0 and (depth is None or len(out) < depth):
            if qty[i]:
                out.append((i, qty[i]))
            i -= 1
        return out

    def ask_levels(self, depth: int | None = None) -> list[tuple[int, int]]:
        """``[(slot, quantity)]`` of live ask levels, best (lowest) first."""
        out: list[tuple[int, int]] = []
        qty = self.ask_qty
        i, n = self.best_ask, self.n
        while i < n and (depth is None or len(out) < depth):
            if qty[i]:
                out.append((i, qty[i]))
            i += 1
        return out

    def orders(self) -> Iterator[Order]:
        """Every live order, bids best-first then asks best-first, in time priority."""
        found: list[Order] = []
        for i, _ in self.bid_levels():
            level = self.bids[i]
            if level is not None:
                found.extend(level.live())
        for i, _ in self.ask_levels():
            level = self.asks[i]
            if level is not None:
                found.extend(level.live())
        return iter(found)


# --- accounts, positions, markets, events: where the money lives -----------------


class Position:
    """A user's shares of one market: held (reserved included) and locked by sells."""

    user: int
    market_id: int
    yes: int
    no: int
    yes_reserved: int
    no_reserved: int
    touched: bool  # listed among what the current command changed
    next_touched: Position | None  # the next one listed (state.State._touch_*)

    def __init__(self, user: int, market_id: int) -> None:
        self.user = user
        self.market_id = market_id
        self.yes = 0
        self.no = 0
        self.yes_reserved = 0
        self.no_reserved = 0
        self.touched = False
        self.next_touched = None

    @property
    def is_empty(self) -> bool:
        """Whether the user holds no share of this market."""
        return not (self.yes or self.no)

    def snapshot(self) -> PositionState:
        """The ``position`` event for this position's current state."""
        return PositionState(self.user, self.market_id, self.yes, self.no,
                             self.yes_reserved, self.no_reserved)


class Account:
    """A user's cash and positions, and the index of their open orders."""

    user: int
    available: int
    reserved: int
    positions: dict[int, Position]
    orders: dict[object, Order]  # open orders by id (Order.key), in placement order
    touched: bool  # listed among what the current command changed
    next_touched: Account | None  # the next one listed (state.State._touch_*)
    open_view: list[OrderState] | None  # cached open orders (queries.open_orders)
    caches_views: bool  # whether flushes keep its orders' ``view`` current

    def __init__(self, user: int) -> None:
        self.user = user
        self.available = 0
        self.reserved = 0
        self.positions = {}
        self.orders = {}
        self.touched = False
        self.next_touched = None
        self.open_view = None
        self.caches_views = False

    def snapshot(self) -> BalanceState:
        """The ``balance`` event for this account's current state."""
        return BalanceState(self.user, self.available, self.reserved)


class Market:
    """One binary market (one outcome of an event) with its canonical YES book."""

    id: int
    event: Event
    name: str
    tick: int
    status: str
    book: Book
    last_price: int | None
    volume: int  # shares traded
    holders: dict[int, Position]  # by user, in the order they first held
    touched: bool  # listed among what the current command changed
    next_touched: Market | None  # the next one listed (state.State._touch_*)

    def __init__(self, market_id: int, event: Event, name: str, tick: int,
                 scale: int) -> None:
        self.id = market_id
        self.event = event
        self.name = name
        self.tick = tick
        self.status = "active"
        self.book = Book(scale // tick)
        self.last_price = None
        self.volume = 0
        self.holders = {}
        self.touched = False
        self.next_touched = None

    def best_bid(self) -> int | None:
        """Best YES bid in units, or None."""
        best = self.book.best_bid
        return best * self.tick if best else None

    def best_ask(self) -> int | None:
        """Best YES ask in units, or None."""
        b = self.book
        return b.best_ask * self.tick if b.best_ask < b.n else None


class Event:
    """A question with one market per outcome, and the collateral backing its shares."""

    id: int
    title: str
    tick: int
    created_ms: int
    description: str
    category: str
    slug: str
    close_time_ms: int | None
    status: str
    markets: list[Market]
    collateral: int
    winning_outcome_id: int | None
    void: bool
    fee_rate: int  # units of SCALE (700 = 7%): what takers pay (units.taker_fee)
    fees: int  # fees its takers paid, all of them in the treasury's fee account

    def __init__(self, event_id: int, title: str, tick: int, created_ms: int) -> None:
        self.id = event_id
        self.title = title
        self.tick = tick
        self.created_ms = created_ms
        self.description = ""
        self.category = ""
        self.slug = ""
        self.close_time_ms = None
        self.status = "active"
        self.markets = []
        self.collateral = 0
        self.winning_outcome_id = None
        self.void = False
        self.fee_rate = 0
        self.fees = 0

    @property
    def is_multi(self) -> bool:
        """Whether the event has several outcomes (and so several markets)."""
        return len(self.markets) > 1

    def snapshot(self) -> EventState:
        """The ``event`` event for this event's current state."""
        return EventState(
            self.id, self.status, self.title, self.description, self.category,
            self.slug, self.close_time_ms, self.tick,
            tuple((m.id, m.name) for m in self.markets), self.created_ms,
            self.winning_outcome_id, self.void, self.fee_rate,
        )


class Treasury:
    """Money that crossed the exchange's boundary, and what the exchange itself keeps."""

    deposits: int
    withdrawals: int
    fees: int
    rounding: int

    def __init__(self) -> None:
        self.deposits = 0
        self.withdrawals = 0
        self.fees = 0
        self.rounding = 0

    @property
    def held(self) -> int:
        """Money the exchange holds: Σ deposits - Σ withdrawals, which the money
        invariant equates with all cash + all collateral + fees + rounding. Kept by the
        two running totals (O(1)), so snapshots and the digest carry it with them;
        deposits keep it at most ``units.MAX_TOTAL_MONEY``."""
        return self.deposits - self.withdrawals


# --- timers: pending close times and dead-man switches (``timers``) -------------

NEVER: Final = 2**62 - 1
"""``next_due`` when nothing is scheduled: far past any valid time (``limits``), and the
largest int mypyc keeps unboxed, so the check ``apply`` makes on every command is a
machine compare (2**63 - 1 was a boxed comparison each time)."""

CLOSE: Final = 0
"""Heap entry kind: an event's close time (key: event id)."""
DEAD_MAN_SWITCH: Final = 1
"""Heap entry kind: a dead-man switch's deadline (key: user id)."""

class Switch:
    """A user's dead-man switch.

    Attributes:
        deadline_ms: when it fires; 0 once it has fired (off until the next heartbeat).
        timeout_ms: the timeout of the last heartbeat.
        fired_ms: when it last fired since the last heartbeat, else 0.
    """

    user: int
    deadline_ms: int
    timeout_ms: int
    fired_ms: int

    def __init__(self, user: int, deadline_ms: int, timeout_ms: int, fired_ms: int) -> None:
        self.user = user
        self.deadline_ms = deadline_ms
        self.timeout_ms = timeout_ms
        self.fired_ms = fired_ms

    def event(self) -> DeadManState:
        """The ``dead_man`` event of the switch's current state."""
        return DeadManState(self.user, self.deadline_ms or None, self.timeout_ms,
                            self.fired_ms or None)


class Timers:
    """The engine's pending close times and dead-man switches (their rules: ``timers``)."""

    closes: dict[int, int]
    switches: dict[int, Switch]
    heap: list[tuple[int, int, int]]
    next_due: int

    def __init__(self) -> None:
        self.closes = {}
        self.switches = {}
        self.heap = []
        self.next_due = NEVER

    def push(self, due_ms: int, kind: int, key: int) -> None:
        heapq.heappush(self.heap, (due_ms, kind, key))
        if due_ms < self.next_due:
            self.next_due = due_ms

    def data(self) -> dict[str, Any]:
        """The timers as JSON-ready plain data (part of ``Engine.snapshot``)."""
        return {
            "closes": [[event_id, due] for event_id, due in self.closes.items()],
            "switches": [[s.user, s.deadline_ms, s.timeout_ms, s.fired_ms]
                         for s in self.switches.values()],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Timers:
        """Timers as ``data`` described them, their heap rebuilt."""
        t = cls()
        for event_id, due in data["closes"]:
            t.closes[event_id] = due
            t.push(due, CLOSE, event_id)
        for user, deadline, timeout, fired in data["switches"]:
            t.switches[user] = Switch(user, deadline, timeout, fired)
            if deadline:
                t.push(deadline, DEAD_MAN_SWITCH, user)
        return t
