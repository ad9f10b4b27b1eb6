"""The engine: a single-writer, deterministic state machine ``apply(command) -> events``.

It does no I/O and reads no clock: time and sequence numbers arrive inside commands.
Commands are applied strictly one at a time; a rejected command changes nothing and
returns a ``rejected`` event with a reason code. Handlers live in mixins by concern
(``trading``, ``collateral``, ``admin``, ``queries``, ``snapshot``); this module holds the
state, the dispatch and the end-of-command flush of touched state.
"""

from __future__ import annotations

import heapq

from . import commands as c
from .admin import AdminMixin
from .book import Order
from .collateral import CollateralMixin
from .events import BATCH_ITEM, CLOCK, REJECTED, Reason
from .ledger import Account, Event, Market, Position, Treasury
from .queries import QueryMixin
from .snapshot import SnapshotMixin
from .trading import TradingMixin


class Engine(TradingMixin, CollateralMixin, AdminMixin, QueryMixin, SnapshotMixin):
    """The matching engine and ledger of every event it owns.

    Args:
        id_offset, id_stride: ids the engine assigns (orders, trades, events, markets)
            are ``offset + k * stride``, so several engines sharded by event never
            assign the same id.
    """

    def __init__(self, id_offset: int = 0, id_stride: int = 1):
        self.id_offset = id_offset
        self.id_stride = id_stride
        self.events: dict[int, Event] = {}
        self.markets: dict[int, Market] = {}
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}  # open orders
        self.client_orders: dict[tuple[int, str], Order] = {}
        self.treasury = Treasury()
        # The last id assigned of each kind; the next is ``last + id_stride``.
        self.last_order_id = self.last_trade_id = id_offset
        self.last_event_id = self.last_market_id = id_offset
        self.now_ms = 0
        self.last_seq = 0
        self._expiry: list[tuple[int, int]] = []  # heap of (expires_at_ms, order_id)
        self._out: list[tuple] = []
        self._d_orders: dict[Order, None] = {}
        self._d_accounts: dict[Account, None] = {}
        self._d_positions: dict[Position, None] = {}
        self._d_markets: dict[Market, None] = {}
        self._handlers = {
            c.PlaceOrder: self._on_place,
            c.PlaceBatch: self._on_batch,
            c.ModifyOrder: self._on_modify,
            c.CancelOrder: self._on_cancel,
            c.CancelAll: self._on_cancel_all,
            c.Expire: lambda cmd: None,
            c.Deposit: self._on_deposit,
            c.Withdraw: self._on_withdraw,
            c.Split: self._on_split,
            c.Merge: self._on_merge,
            c.SplitEvent: self._on_split_event,
            c.MergeEvent: self._on_merge_event,
            c.Convert: self._on_convert,
            c.CreateEvent: self._on_create_event,
            c.UpdateEvent: self._on_update_event,
            c.DeleteEvent: self._on_delete_event,
            c.ResolveEvent: self._on_resolve,
        }

    # --- applying commands ---------------------------------------------------------

    def apply(self, cmd: c.Command) -> list[tuple]:
        """Apply one command and return the events it produced (see ``events``)."""
        out = self._out = []
        seq = cmd.seq
        if seq:
            if seq <= self.last_seq:
                out.append((REJECTED, None, type(cmd).__name__, Reason.DUPLICATE_COMMAND,
                            f"command {seq} was already applied (last is {self.last_seq})",
                            None, None))
                return out
            self.last_seq = seq
        if cmd.ts_ms > self.now_ms:
            self.now_ms = cmd.ts_ms
        if self._expiry and self._expiry[0][0] <= self.now_ms:
            expired = self._expire_due()
            if expired:
                self._flush()
                out.append((CLOCK, self.now_ms, expired))
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"not an engine command: {cmd!r}")
        handler(cmd)
        if self._d_orders or self._d_accounts or self._d_positions or self._d_markets:
            self._flush()
        return out

    def apply_all(self, cmds) -> list[tuple]:
        """Apply commands in order; all their events, concatenated."""
        out: list[tuple] = []
        for cmd in cmds:
            out.extend(self.apply(cmd))
        return out

    def _on_batch(self, cmd: c.PlaceBatch) -> None:
        out = self._out
        for index, item in enumerate(cmd.orders):
            out.append((BATCH_ITEM, index))
            if item.user_id != cmd.user_id:
                self._reject(item.user_id, "PlaceOrder", Reason.INVALID_ORDER,
                             "every order of a batch must belong to the batch's user",
                             coid=item.client_order_id)
                continue
            self._on_place(item)
            self._flush()

    def _flush(self) -> None:
        """Append the final state of everything the command touched, then forget it.

        Plain loops with the snapshots inlined: a comprehension or a method call per
        item is a new frame, and this runs for every command.
        """
        append = self._out.append
        d = self._d_orders
        if d:
            for o in d:
                append(o.snapshot())
            d.clear()
        d = self._d_positions
        if d:
            for p in d:
                append(("position", p.user, p.market_id, p.yes, p.no, p.yes_reserved,
                        p.no_reserved))
            d.clear()
        d = self._d_accounts
        if d:
            for a in d:
                append(("balance", a.user, a.available, a.reserved))
            d.clear()
        d = self._d_markets
        if d:
            for m in d:
                book = m.book
                tick, mid = m.tick, m.id
                bid_qty, ask_qty = book.bid_qty, book.ask_qty
                for key in book.dirty:
                    if key > 0:
                        append(("book", mid, "bid", key * tick, bid_qty[key]))
                    else:
                        append(("book", mid, "ask", -key * tick, ask_qty[-key]))
                book.dirty.clear()
            d.clear()

    # --- helpers shared by the handlers ----------------------------------------------

    def _next_id(self, kind: str) -> int:
        """Assign the next id of ``kind`` (order, trade, event or market)."""
        attr = f"last_{kind}_id"
        value = getattr(self, attr) + self.id_stride
        setattr(self, attr, value)
        return value

    def _reject(self, user_id, command: str, reason: str, message: str,
                order_id: int | None = None, coid: str | None = None) -> None:
        self._out.append((REJECTED, user_id, command, reason, message, order_id, coid))

    def _account(self, user_id: int) -> Account:
        acct = self.accounts.get(user_id)
        if acct is None:
            acct = self.accounts[user_id] = Account(user_id)
        return acct

    def _position(self, acct: Account, market: Market) -> Position:
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
                self._close(order, "expired", Reason.EXPIRED)
                expired += 1
        return expired
