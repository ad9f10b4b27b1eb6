"""The engine: a single-writer, deterministic state machine ``apply(command) -> events``.

It does no I/O and reads no clock: time and sequence numbers arrive inside commands.
Commands are applied strictly one at a time; a rejected command changes nothing and
returns a ``rejected`` event with a reason code.

The engine's modules, each depending only on those before it:

- ``model``: the state's objects (orders, books, accounts, positions, markets, events,
  treasury, timers);
- ``state``: ``State``, every object the engine holds, what the current command
  touched, and the helpers every handler shares (including the end-of-command flush
  of touched state as events);
- the handlers, plain functions of a ``State`` by concern: ``trading`` (orders and
  matching), ``collateral`` (money and share bundles), ``timers`` (close times and
  dead-man switches), ``admin`` (event lifecycle), ``queries`` (read-only views),
  ``snapshot`` (state as data);
- this module: ``Engine``, a ``State`` that applies commands (the dispatch), expires
  orders and answers queries.

The whole core is compiled with mypyc when it can be (see setup.py and
``runtime.compiled``), so the state is declared with exact types and handlers are
direct native calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from . import admin, collateral, queries, snapshot, timers, trading
from . import commands as c
from .events import Clock, EngineEvent, OrderState, PositionState, Reason, Rejected
from .model import EXPIRED, NEVER
from .state import State

Handler = Callable[[State, Any], object]
"""A command handler: ``handler(engine, command)``; its result is ignored."""

_PLACE: Final = c.PlaceOrder
_CANCEL: Final = c.CancelOrder


def _advance_clock(eng: State, cmd: c.Expire) -> None:
    """``Expire`` does nothing itself: ``apply`` already did what its time made due."""


class Engine(State):
    """The matching engine and ledger of every event it owns: a ``State`` (see
    ``state``) that applies commands.

    Args:
        id_offset: first id base: ids the engine assigns (orders, trades, events,
            markets) are ``offset + k * stride``.
        id_stride: step between two ids of a kind, so several engines sharded by event
            never assign the same id.
    """

    _handlers: dict[type, Handler]

    def __init__(self, id_offset: int = 0, id_stride: int = 1) -> None:
        super().__init__(id_offset, id_stride)
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
        if (self._t_orders is not None or self._t_accounts is not None
                or self._t_positions is not None or self._t_markets is not None):
            self._flush()
        return out

    def apply_all(self, cmds: Iterable[c.Command]) -> list[EngineEvent]:
        """Apply commands in order; all their events, concatenated."""
        out: list[EngineEvent] = []
        for cmd in cmds:
            out.extend(self.apply(cmd))
        return out

    def apply_run(self, cmds: list[c.Command], ts_ms: int,
                  out: list[list[EngineEvent]]) -> None:
        """Stamp ``cmds`` with the next sequence numbers and the clock ``ts_ms`` and apply
        them in order, appending each one's events to ``out`` (the in-process runner's
        batch: one call, not one per command).

        Raises:
            Exception: whatever a command raised (a broken invariant); ``out`` then holds
                the events of the commands before it, which stay applied.
        """
        seq = self.last_seq
        for cmd in cmds:
            seq += 1
            cmd.seq = seq
            cmd.ts_ms = ts_ms
            out.append(self.apply(cmd))

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
        return self.markets[market_id].best_bid()

    def best_ask(self, market_id: int) -> int | None:
        """Best YES ask in units, or None."""
        return self.markets[market_id].best_ask()

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
        """A new engine in exactly the state ``data`` (from ``snapshot``) describes.

        Raises:
            ValueError: if the snapshot has another format version.
        """
        eng = cls()
        snapshot.restore(eng, data)
        return eng
