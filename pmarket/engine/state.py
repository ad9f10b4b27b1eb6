"""The engine's state: every object it holds, what the current command touched, and
the helpers every handler shares (``_touch_*``, ``_flush``, ``_reject``, ``_account``,
``_position``).

The handlers take a ``State``, never the ``Engine`` that extends it with ``apply``
and the dispatch, so the dependencies point one way: ``model`` <- ``state`` <-
handlers <- ``engine``.
"""

from __future__ import annotations

from .events import BalanceState, BookLevel, EngineEvent, PositionState, Rejected
from .model import Account, Event, Market, Order, Position, Timers, Treasury


class State:
    """Everything the engine knows, and the helpers every handler shares.

    The handlers (``trading``, ``collateral``, ``admin``, ``timers``) take a ``State``;
    ``engine.Engine`` extends it with ``apply``, the dispatch to those handlers, and the
    queries and snapshots.

    Args:
        id_offset: first id base: ids the engine assigns (orders, trades, events,
            markets) are ``offset + k * stride``.
        id_stride: step between two ids of a kind, so several engines sharded by event
            never assign the same id.

    Attributes:
        events, markets, accounts: state by id; ``orders`` holds the open orders only.
        client_orders: every order placed with a client_order_id, by (user, coid).
        now_ms, last_seq: the clock and the last sequence number applied.
        timers: pending close times and dead-man switches (``timers``).
    """

    id_offset: int
    id_stride: int
    events: dict[int, Event]
    markets: dict[int, Market]
    accounts: dict[int, Account]
    orders: dict[object, Order]  # by id (Order.key)
    client_orders: dict[tuple[int, str], Order]
    treasury: Treasury
    last_order_id: int
    last_trade_id: int
    last_event_id: int
    last_market_id: int
    now_ms: int
    last_seq: int
    timers: Timers
    _expiry: list[tuple[int, int]]
    _out: list[EngineEvent]
    _t_orders: Order | None
    _t_orders_last: Order | None
    _t_accounts: Account | None
    _t_accounts_last: Account | None
    _t_positions: Position | None
    _t_positions_last: Position | None
    _t_markets: Market | None
    _t_markets_last: Market | None

    def __init__(self, id_offset: int = 0, id_stride: int = 1) -> None:
        self.id_offset = id_offset
        self.id_stride = id_stride
        self.events = {}
        self.markets = {}
        self.accounts = {}
        self.orders = {}
        self.client_orders = {}
        self.treasury = Treasury()
        # The last id assigned of each kind; the next is ``last + id_stride``.
        self.last_order_id = id_offset
        self.last_trade_id = id_offset
        self.last_event_id = id_offset
        self.last_market_id = id_offset
        self.now_ms = 0
        self.last_seq = 0
        self.timers = Timers()
        self._expiry = []  # heap of (expires_at_ms, order_id)
        self._out = []
        # What the current command touched, in the order first touched, flushed as
        # state events at its end; each object's ``touched`` flag says it is listed.
        # Each kind is a chain through the objects' ``next_touched``, from ``_t_<kind>``
        # (None: nothing touched) to ``_t_<kind>_last``: listing an object allocates
        # nothing, where a list per kind was emptied and grown again on every command.
        self._t_orders = None
        self._t_orders_last = None
        self._t_accounts = None
        self._t_accounts_last = None
        self._t_positions = None
        self._t_positions_last = None
        self._t_markets = None
        self._t_markets_last = None

    # --- what the current command touched -----------------------------------------

    def _flush(self) -> None:
        """Append the final state of everything the command touched, then forget it."""
        out = self._out
        o = self._t_orders
        if o is not None:
            self._t_orders = self._t_orders_last = None
            while o is not None:
                o.touched = False
                snap = o.snapshot()
                out.append(snap)
                acct = o.account
                if acct.caches_views:  # keep its open-orders view exact (queries.py)
                    o.view = snap
                    acct.open_view = None
                next_order = o.next_touched
                o.next_touched = None
                o = next_order
        p = self._t_positions
        if p is not None:
            self._t_positions = self._t_positions_last = None
            while p is not None:
                p.touched = False
                out.append(PositionState(p.user, p.market_id, p.yes, p.no, p.yes_reserved,
                                         p.no_reserved))
                next_position = p.next_touched
                p.next_touched = None
                p = next_position
        a = self._t_accounts
        if a is not None:
            self._t_accounts = self._t_accounts_last = None
            while a is not None:
                a.touched = False
                out.append(BalanceState(a.user, a.available, a.reserved))
                next_account = a.next_touched
                a.next_touched = None
                a = next_account
        m = self._t_markets
        if m is not None:
            self._t_markets = self._t_markets_last = None
            while m is not None:
                m.touched = False
                book = m.book
                tick = m.tick
                mid = m.id
                level = book.changed
                while level is not None:
                    key = level.key
                    if key > 0:
                        out.append(BookLevel(mid, "bid", key * tick, book.bid_qty[key]))
                    else:
                        out.append(BookLevel(mid, "ask", -key * tick, book.ask_qty[-key]))
                    level = level.next_changed
                book.clear_dirty()
                next_market = m.next_touched
                m.next_touched = None
                m = next_market

    def _touch_order(self, o: Order) -> None:
        """Emit the order's final state at the end of this command."""
        if not o.touched:
            o.touched = True
            last = self._t_orders_last
            if last is None:
                self._t_orders = o
            else:
                last.next_touched = o
            self._t_orders_last = o

    def _touch_account(self, a: Account) -> None:
        """Emit the account's final balance at the end of this command."""
        if not a.touched:
            a.touched = True
            last = self._t_accounts_last
            if last is None:
                self._t_accounts = a
            else:
                last.next_touched = a
            self._t_accounts_last = a

    def _touch_position(self, p: Position) -> None:
        """Emit the position's final state at the end of this command."""
        if not p.touched:
            p.touched = True
            last = self._t_positions_last
            if last is None:
                self._t_positions = p
            else:
                last.next_touched = p
            self._t_positions_last = p

    def _touch_market(self, m: Market) -> None:
        """Emit the changed levels of the market's book at the end of this command."""
        if not m.touched:
            m.touched = True
            last = self._t_markets_last
            if last is None:
                self._t_markets = m
            else:
                last.next_touched = m
            self._t_markets_last = m

    # --- helpers shared by the handlers ----------------------------------------------

    def _reject(self, user_id: object, command: str, reason: str, message: str,
                order_id: object = None, coid: object = None) -> None:
        """Report a command (or one order of a batch) that changes nothing."""
        self._out.append(Rejected(user_id, command, reason, message, order_id, coid))

    def _account(self, user_id: int) -> Account:
        """The user's account, opened on first use."""
        acct = self.accounts.get(user_id)
        if acct is None:
            acct = self.accounts[user_id] = Account(user_id)
        return acct

    def _position(self, acct: Account, market: Market) -> Position:
        """The user's position in ``market``, created (and registered as a holder) on
        first use."""
        pos = acct.positions.get(market.id)
        if pos is None:
            pos = acct.positions[market.id] = Position(acct.user, market.id)
            market.holders[acct.user] = pos
        return pos
