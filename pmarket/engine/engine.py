"""The engine: a single-writer, deterministic state machine ``apply(command) -> events``.

It does no I/O and reads no clock: time and sequence numbers arrive inside commands.
Commands are applied strictly one at a time; a rejected command changes nothing and
returns a ``rejected`` event with a reason code.

``Engine`` is one class holding all state; its handlers live by concern in plain
functions taking the engine (``trading``: orders and matching, ``collateral``: money
and share bundles, ``admin``: event lifecycle, ``timers``: close times and dead-man
switches, ``queries``: read-only views, ``snapshot``: state as data). This module holds
the state, the dispatch, the helpers every handler shares, and the end-of-command flush
of touched state. The whole core is compiled with mypyc when it can be (see setup.py and
``compiled``), so the state is declared with exact types and handlers are direct native
calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from . import admin, collateral, queries, snapshot, timers, trading
from . import commands as c
from .book import EXPIRED, Order
from .events import (
    BalanceState,
    BookLevel,
    Clock,
    EngineEvent,
    OrderState,
    PositionState,
    Reason,
    Rejected,
)
from .ledger import Account, Event, Market, Position, Treasury
from .timers import NEVER, Timers

Handler = Callable[["Engine", Any], object]
"""A command handler: ``handler(engine, command)``; its result is ignored."""

_PLACE: Final = c.PlaceOrder
_CANCEL: Final = c.CancelOrder


def _advance_clock(eng: Engine, cmd: c.Expire) -> None:
    """``Expire`` does nothing itself: ``apply`` already did what its time made due."""


class Engine:
    """The matching engine and ledger of every event it owns.

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
    orders: dict[int, Order]
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
    _t_orders: list[Order]
    _t_accounts: list[Account]
    _t_positions: list[Position]
    _t_markets: list[Market]
    _handlers: dict[type, Handler]

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
        self._t_orders = []
        self._t_accounts = []
        self._t_positions = []
        self._t_markets = []
        # Every command but PlaceOrder and CancelOrder, which ``apply`` calls directly.
        self._handlers = {
            c.PlaceBatch: trading.place_batch,
            c.ModifyOrder: trading.modify,
            c.CancelAll: trading.cancel_all,
            c.Expire: _advance_clock,
            c.Heartbeat: timers.heartbeat,
            c.DisarmHeartbeat: timers.disarm,
            c.Deposit: collateral.deposit,
            c.Withdraw: collateral.withdraw,
            c.Split: collateral.split,
            c.Merge: collateral.merge,
            c.SplitEvent: collateral.split_event,
            c.MergeEvent: collateral.merge_event,
            c.Convert: collateral.convert,
            c.CreateEvent: admin.create_event,
            c.UpdateEvent: admin.update_event,
            c.DeleteEvent: admin.delete_event,
            c.ResolveEvent: admin.resolve,
        }

    # --- applying commands ---------------------------------------------------------

    def apply(self, cmd: c.Command) -> list[EngineEvent]:
        """Apply one command and return the events it produced (see ``events``).

        Raises:
            TypeError: if ``cmd`` is not one of the engine's commands.
        """
        out: list[EngineEvent] = []
        self._out = out
        seq = cmd.seq
        if seq:
            if seq <= self.last_seq:
                out.append(Rejected(None, type(cmd).__name__, Reason.DUPLICATE_COMMAND,
                                    f"command {seq} was already applied (last is "
                                    f"{self.last_seq})", None, None))
                return out
            self.last_seq = seq
        ts_ms = cmd.ts_ms
        if ts_ms > self.now_ms:
            self.now_ms = ts_ms
        now = self.now_ms
        if (self._expiry and self._expiry[0][0] <= now) or self.timers.next_due <= now:
            expired = self._expire_due() if self._expiry else 0
            fired = timers.fire_due(self) if self.timers.next_due <= now else 0
            if expired or fired:
                self._flush()
                out.append(Clock(now, expired))
        kind = type(cmd)
        if kind is _PLACE:
            trading.place(self, cast(c.PlaceOrder, cmd))
        elif kind is _CANCEL:
            trading.cancel(self, cast(c.CancelOrder, cmd))
        else:
            handler = self._handlers.get(kind)
            if handler is None:
                raise TypeError(f"not an engine command: {cmd!r}")
            handler(self, cmd)
        if self._t_orders or self._t_accounts or self._t_positions or self._t_markets:
            self._flush()
        return out

    def apply_all(self, cmds: Iterable[c.Command]) -> list[EngineEvent]:
        """Apply commands in order; all their events, concatenated."""
        out: list[EngineEvent] = []
        for cmd in cmds:
            out.extend(self.apply(cmd))
        return out

    def _flush(self) -> None:
        """Append the final state of everything the command touched, then forget it."""
        out = self._out
        if self._t_orders:
            for o in self._t_orders:
                o.touched = False
                snap = o.snapshot()
                out.append(snap)
                acct = o.account
                if acct.caches_views:  # keep its open-orders view exact (queries.py)
                    o.view = snap
                    acct.open_view = None
            self._t_orders = []
        if self._t_positions:
            for p in self._t_positions:
                p.touched = False
                out.append(PositionState(p.user, p.market_id, p.yes, p.no, p.yes_reserved,
                                         p.no_reserved))
            self._t_positions = []
        if self._t_accounts:
            for a in self._t_accounts:
                a.touched = False
                out.append(BalanceState(a.user, a.available, a.reserved))
            self._t_accounts = []
        if self._t_markets:
            for m in self._t_markets:
                m.touched = False
                book = m.book
                tick = m.tick
                mid = m.id
                bid_qty = book.bid_qty
                ask_qty = book.ask_qty
                for key in book.dirty:
                    if key > 0:
                        out.append(BookLevel(mid, "bid", key * tick, bid_qty[key]))
                    else:
                        out.append(BookLevel(mid, "ask", -key * tick, ask_qty[-key]))
                book.clear_dirty()
            self._t_markets = []

    def _touch_order(self, o: Order) -> None:
        """Emit the order's final state at the end of this command."""
        if not o.touched:
            o.touched = True
            self._t_orders.append(o)

    def _touch_account(self, a: Account) -> None:
        """Emit the account's final balance at the end of this command."""
        if not a.touched:
            a.touched = True
            self._t_accounts.append(a)

    def _touch_position(self, p: Position) -> None:
        """Emit the position's final state at the end of this command."""
        if not p.touched:
            p.touched = True
            self._t_positions.append(p)

    def _touch_market(self, m: Market) -> None:
        """Emit the changed levels of the market's book at the end of this command."""
        if not m.touched:
            m.touched = True
            self._t_markets.append(m)

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

    def _expire_due(self) -> int:
        """Expire every gtd order due by now; how many there were."""
        heap = self._expiry
        now = self.now_ms
        expired = 0
        while heap and heap[0][0] <= now:
            expires_at, oid = heapq.heappop(heap)
            order = self.orders.get(oid)
            if order is not None and order.expires_at_ms == expires_at:
                trading.close(self, order, EXPIRED, Reason.EXPIRED)
                expired += 1
        return expired

    def next_due_ms(self) -> int | None:
        """When the earliest gtd expiry, close time or dead-man deadline falls due (it
        may have passed), or None: the runtime sends an ``Expire`` tick from then on."""
        due = timers.next_due(self)
        heap = self._expiry
        while heap:  # drop the entries of orders no longer open (stale) first
            expires_at, oid = heap[0]
            order = self.orders.get(oid)
            if order is not None and order.expires_at_ms == expires_at:
                due = min(due, expires_at)
                break
            heapq.heappop(heap)
        return None if due == NEVER else due

    # --- queries (queries.py) ----------------------------------------------------------

    def best_bid(self, market_id: int) -> int | None:
        """Best YES bid in units, or None."""
        m = self.markets[market_id]
        best = m.book.best_bid
        return best * m.tick if best else None

    def best_ask(self, market_id: int) -> int | None:
        """Best YES ask in units, or None."""
        m = self.markets[market_id]
        b = m.book
        return b.best_ask * m.tick if b.best_ask < b.n else None

    def book(self, market_id: int, view: str = "yes",
             depth: int | None = None) -> queries.BookView:
        """Aggregated levels of a market's book in the YES or the NO view."""
        return queries.book(self, market_id, view, depth)

    def market_view(self, market_id: int) -> queries.MarketView:
        """A market's trading state (prices in YES terms)."""
        return queries.market_view(self, market_id)

    def balance(self, user_id: int) -> tuple[int, int]:
        """``(available, reserved)`` cash of a user, in units."""
        acct = self.accounts.get(user_id)
        return (acct.available, acct.reserved) if acct else (0, 0)

    def positions(self, user_id: int) -> list[PositionState]:
        """``position`` events of every market the user holds shares in."""
        return queries.positions(self, user_id)

    def open_orders(self, user_id: int,
                    market_id: int | None = None) -> list[OrderState]:
        """``order`` events of a user's open orders, oldest first."""
        return queries.open_orders(self, user_id, market_id)

    def order(self, order_id: int) -> OrderState | None:
        """An open order's ``order`` event (closed orders live in the database)."""
        o = self.orders.get(order_id)
        return o.snapshot() if o else None

    def audit(self) -> queries.AuditReport:
        """Check the money invariant and every internal invariant; never raises."""
        return queries.audit(self)

    # --- snapshots (snapshot.py) -------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The complete state as JSON-ready plain data."""
        return snapshot.snapshot(self)

    def digest(self) -> str:
        """SHA-256 of the snapshot: equal digests mean equal state."""
        return snapshot.digest(self)

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Engine:
        """A new engine in exactly the state ``data`` (from ``snapshot``) describes."""
        return snapshot.restore(data)
