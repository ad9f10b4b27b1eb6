"""The canonical YES order book of one market, and the orders resting in it.

Layout (measured fastest in docs/PERFORMANCE.md): one slot per tick on each side, each
slot a ``deque`` of orders in time priority plus a running total of the live quantity
at that price, and the best bid/ask tracked incrementally. Prices here are *tick
indexes* (YES price = index x tick). Cancelling is O(1): the order is marked dead and
stays in its deque until matching reaches it, or until the level is compacted.

Invariants: ``bid_qty[i]`` / ``ask_qty[i]`` equal the remaining quantity of the live
orders in slot ``i``; ``best_bid`` is the highest slot with live quantity (0 if none),
``best_ask`` the lowest (``n`` if none); the book is never crossed between commands.
"""

from __future__ import annotations

from collections import deque

# Order actions, i.e. what the owner does, and where it sits on the YES book.
BUY_YES = 0  # bid
SELL_NO = 1  # bid at 1 - p
SELL_YES = 2  # ask
BUY_NO = 3  # ask at 1 - p

ACTION_NAMES = ("buy_yes", "sell_no", "sell_yes", "buy_no")
ACTION_OUTCOME = ("yes", "no", "yes", "no")
ACTION_SIDE = ("buy", "sell", "sell", "buy")

# Order statuses (the API's words).
OPEN = "open"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
EXPIRED = "expired"

_COMPACT_MIN_DEAD = 32


class Order:
    """An order in its owner's terms, with its place on the YES book.

    ``price`` is the owner's limit (or a market order's protective price); ``slot`` is
    the YES-book tick index it rests at. A buy reserves exactly ``price x remaining``
    cash and a sell exactly ``remaining`` shares for as long as the order is open.
    Options most orders leave at their defaults are class attributes, stored per order
    (in its ``__dict__``, created lazily) only when they differ.
    """

    __slots__ = (
        "__dict__", "account", "action", "created_ms", "filled", "id", "is_bid", "live",
        "market", "position", "price", "quantity", "remaining", "slot", "status",
        "updated_ms", "user",
    )
    order_type = "limit"
    tif = "gtc"
    post_only = False
    expires_at_ms: int | None = None
    client_order_id: str | None = None
    stp = "cancel_resting"
    reason: str | None = None

    def __init__(self, oid, user, market, action, price, slot, quantity, ts_ms,
                 account=None, position=None):
        self.id = oid
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

    @property
    def is_buy(self) -> bool:
        return self.action == BUY_YES or self.action == BUY_NO

    @property
    def is_open(self) -> bool:
        return self.status == OPEN or self.status == PARTIALLY_FILLED

    def snapshot(self) -> tuple:
        """The ``order`` event for this order's current state."""
        action = self.action
        return (
            "order", self.id, self.user, self.market.id, self.market.event.id,
            ACTION_OUTCOME[action], ACTION_SIDE[action], self.order_type, self.price,
            self.quantity, self.filled, self.status, self.tif, self.post_only,
            self.expires_at_ms, self.client_order_id, self.created_ms, self.updated_ms,
            self.reason,
        )


class Book:
    """Price-indexed YES book: slots ``1 .. n-1`` on each side, ``n = SCALE // tick``."""

    __slots__ = ("ask_dead", "ask_qty", "asks", "best_ask", "best_bid", "bid_dead", "bid_qty",
                 "bids", "dirty", "n")

    def __init__(self, n: int):
        self.n = n
        self.bids: list[deque | None] = [None] * (n + 1)
        self.asks: list[deque | None] = [None] * (n + 1)
        self.bid_qty = [0] * (n + 1)
        self.ask_qty = [0] * (n + 1)
        self.bid_dead = [0] * (n + 1)
        self.ask_dead = [0] * (n + 1)
        self.best_bid = 0
        self.best_ask = n
        # Levels changed by the current command: +slot for bids, -slot for asks.
        self.dirty: dict[int, None] = {}

    # --- resting and removing ----------------------------------------------------

    def rest(self, order: Order) -> None:
        """Append a live order at the back of its level."""
        i = order.slot
        order.live = True
        if order.is_bid:
            level = self.bids[i]
            if level is None:
                level = self.bids[i] = deque()
            level.append(order)
            self.bid_qty[i] += order.remaining
            if i > self.best_bid:
                self.best_bid = i
            self.dirty[i] = None
        else:
            level = self.asks[i]
            if level is None:
                level = self.asks[i] = deque()
            level.append(order)
            self.ask_qty[i] += order.remaining
            if i < self.best_ask:
                self.best_ask = i
            self.dirty[-i] = None

    def remove(self, order: Order) -> None:
        """Take a live order out of the book (tombstone; O(1) amortised)."""
        order.live = False
        i = order.slot
        if order.is_bid:
            self.bid_qty[i] -= order.remaining
            self.dirty[i] = None
            if self.bid_qty[i] == 0:
                self.bids[i] = None
                self.bid_dead[i] = 0
                if i == self.best_bid:
                    self.best_bid = self.next_bid(i)
            else:
                dead = self.bid_dead[i] = self.bid_dead[i] + 1
                if dead >= _COMPACT_MIN_DEAD and dead * 2 > len(self.bids[i]):
                    self.bids[i] = deque(o for o in self.bids[i] if o.live)
                    self.bid_dead[i] = 0
        else:
            self.ask_qty[i] -= order.remaining
            self.dirty[-i] = None
            if self.ask_qty[i] == 0:
                self.asks[i] = None
                self.ask_dead[i] = 0
                if i == self.best_ask:
                    self.best_ask = self.next_ask(i)
            else:
                dead = self.ask_dead[i] = self.ask_dead[i] + 1
                if dead >= _COMPACT_MIN_DEAD and dead * 2 > len(self.asks[i]):
                    self.asks[i] = deque(o for o in self.asks[i] if o.live)
                    self.ask_dead[i] = 0

    def reduce(self, order: Order, by: int) -> None:
        """Lower a live order's remaining quantity in place (keeps time priority)."""
        order.remaining -= by
        if order.is_bid:
            self.bid_qty[order.slot] -= by
            self.dirty[order.slot] = None
        else:
            self.ask_qty[order.slot] -= by
            self.dirty[-order.slot] = None

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
        out = []
        qty = self.bid_qty
        i = self.best_bid
        while i > 0 and (depth is None or len(out) < depth):
            if qty[i]:
                out.append((i, qty[i]))
            i -= 1
        return out

    def ask_levels(self, depth: int | None = None) -> list[tuple[int, int]]:
        """``[(slot, quantity)]`` of live ask levels, best (lowest) first."""
        out = []
        qty = self.ask_qty
        i, n = self.best_ask, self.n
        while i < n and (depth is None or len(out) < depth):
            if qty[i]:
                out.append((i, qty[i]))
            i += 1
        return out

    def orders(self):
        """Every live order, bids best-first then asks best-first, in time priority."""
        for i, _ in self.bid_levels():
            yield from (o for o in self.bids[i] if o.live)
        for i, _ in self.ask_levels():
            yield from (o for o in self.asks[i] if o.live)
