"""The in-memory read model: balances, positions, open orders, events and markets.

Each server holds the same rows the worker projects into the database for these reads,
and keeps them current from the same event stream as the order-book replica
(``marketdata.Replica``): it is seeded inside the replica's seed transaction — one
consistent snapshot of the database, at the worker's position ``S`` — and then folds
every delivery the replica applies, in command order, skipping any it already holds
(idempotent by ``seq``). Reads then cost a dictionary lookup instead of a database
round trip, and read-your-writes needs only ``ReadBarrier.for_replica``.

The fold is the worker's own (``pmarket.worker``). A delivery that only places,
fills, cancels or funds (nearly all of them) takes the fast path: ``order`` and
``balance`` events are state (the last one wins, as in the database), ``position`` and
``fill`` events go through ``costbasis.Holding`` and ``costbasis.apply_fill`` exactly as
``Batch`` calls them. A delivery with anything else (split, merge, convert, payout,
event created, changed, resolved or deleted) is folded by ``batch.Batch.walk`` itself,
on rows loaded from memory as the projector loads them from the database. This module
is the only place the server imports worker internals.

What is held (see docs/SERVICES.md for measured sizes): per user, the balance, one
row per position ever held (as the ``positions`` table: emptied positions stay, they
carry realised P&L) and one per payout received; per open order, its last ``order``
event (closed orders leave at once); per event and market, their display fields and
running figures. Rows are tuples of ints and strings, which the garbage collector stops
tracking; an open order is its ``order`` event (a native object with unboxed integers,
~330 B, which the collector keeps tracking).

Invariant: after folding the deliveries up to command ``seq``, every answer built from
this model equals the answer built from a database projected up to ``seq``. When that
cannot be guaranteed (a gap in the deliveries, a delivery the fold refuses) the model
says so (``ready`` False, logged, ``/health`` degraded) and reads go to the database
until the next seed (a restart or a resynchronisation of the replica).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from pmarket.db import Balance, Event, Market, Order, Payout, Position
from pmarket.db.types import to_ms
from pmarket.engine import events as ev
from pmarket.runtime.eventlog import Delivery
from pmarket.runtime.slicing import CHUNK, drive
from pmarket.worker.batch import Batch, MarketInfo, needs
from pmarket.worker.costbasis import YES, Holding, apply_fill

from .scope import EVERY_READER, Reader

log = logging.getLogger("pmarket.server.readmodel")

OPEN_STATUSES = ("open", "partially_filled")
MEMO_ANSWERS = 256
"""At most this many memoized public answers (``ReadModel.memo``) at one state."""

_FAST_IGNORED = frozenset({ev.BOOK, ev.REJECTED, ev.DUPLICATE, ev.BATCH_ITEM, ev.CLOCK,
                           ev.DEAD_MAN})
_CASH_LEDGER = frozenset({"deposit", "withdrawal"})  # change no position (Batch._ledger)
_STRINGS = {s: s for s in ("yes", "no", "buy", "sell", "limit", "market", "open",
                           "partially_filled", "gtc", "gtd", "ioc", "fok")}


@contextlib.contextmanager
def snapshot(db: Engine) -> Iterator[Connection]:
    """A connection reading one consistent snapshot of the database until it closes.

    PostgreSQL runs the block as a REPEATABLE READ transaction; SQLite (whose driver
    starts no transaction for reads) gets an explicit ``BEGIN``, so every statement
    sees the same WAL snapshot. Without this, rows committed by the worker between two
    statements of a seed would be counted once in the rows and again from the stream.
    """
    with db.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.begin()
        try:
            yield conn
        finally:
            conn.rollback()


class EventRow:
    """An event as the ``events`` table holds it (the fields the API shows)."""

    __slots__ = ("category", "close_time", "created_at", "description", "fee_rate", "id",
                 "market_ids", "resolved_at", "slug", "status", "tick", "title", "void",
                 "winning_outcome_id")

    def __init__(self, id: int, slug: str, title: str, description: str, category: str,
                 status: str, close_time: datetime | None, tick: int, created_at: datetime,
                 winning_outcome_id: int | None = None, void: bool = False,
                 resolved_at: datetime | None = None, fee_rate: int = 0):
        self.id, self.slug, self.title, self.description = id, slug, title, description
        self.category, self.status, self.close_time = category, status, close_time
        self.tick, self.created_at = tick, created_at
        self.winning_outcome_id, self.void = winning_outcome_id, bool(void)
        self.resolved_at = resolved_at
        self.fee_rate = fee_rate
        self.market_ids: list[int] = []  # outcome order


class MarketRow:
    """A market as the ``markets`` table holds it."""

    __slots__ = ("event_id", "id", "last_price", "name", "open_interest", "position",
                 "status", "tick", "volume")

    def __init__(self, id: int, event_id: int, name: str, position: int, status: str,
                 tick: int, last_price: int | None = None, volume: int = 0,
                 open_interest: int = 0):
        self.id, self.event_id, self.name, self.position = id, event_id, name, position
        self.status, self.tick, self.last_price = status, tick, last_price
        self.volume, self.open_interest = volume, open_interest


@dataclass(slots=True)
class SeedState:
    """Everything read from the database for a seed (built off the event loop)."""

    balances: dict[int, tuple[int, int]] = field(default_factory=dict)
    positions: dict[int, dict[int, tuple]] = field(default_factory=dict)
    orders: list[ev.OrderState] = field(default_factory=list)
    events: dict[int, EventRow] = field(default_factory=dict)
    markets: dict[int, MarketRow] = field(default_factory=dict)
    payouts: dict[int, list[tuple]] = field(default_factory=dict)


def order_state(o: Any) -> ev.OrderState:
    """An ``order`` event from a ``db.Order`` row (what the engine last said)."""
    return ev.OrderState(o.id, o.user_id, o.market_id, o.event_id, o.outcome, o.side,
                         o.order_type, o.price, o.quantity, o.filled, o.status, o.tif,
                         bool(o.post_only), to_ms(o.expires_at), o.client_order_id,
                         to_ms(o.created_at), to_ms(o.updated_at), o.reason)


def read_seed(conn: Connection) -> SeedState:
    """Read the read model's rows (inside the replica's ``snapshot`` transaction)."""
    state = SeedState()
    for uid, available, reserved in conn.execute(
            select(Balance.user_id, Balance.available, Balance.reserved)):
        state.balances[uid] = (available, reserved)
    p = Position
    for row in conn.execute(select(p.user_id, p.market_id, p.yes, p.no, p.yes_reserved,
                                   p.no_reserved, p.yes_cost, p.no_cost, p.yes_realized_pnl,
                                   p.no_realized_pnl, p.seq)):
        state.positions.setdefault(row[0], {})[row[1]] = tuple(row[2:])
    state.orders = [order_state(o) for o in conn.execute(
        select(Order).where(Order.status.in_(OPEN_STATUSES)).order_by(Order.id))]
    for e in conn.execute(select(Event.id, Event.slug, Event.title, Event.description,
                                 Event.category, Event.status, Event.close_time, Event.tick,
                                 Event.created_at, Event.winning_outcome_id, Event.void,
                                 Event.resolved_at, Event.fee_rate)):
        state.events[e.id] = EventRow(*e)
    for uid, *paid in conn.execute(select(Payout.user_id, Payout.event_id, Payout.market_id,
                                          Payout.yes, Payout.no, Payout.amount,
                                          Payout.paid_at).order_by(Payout.id)):
        state.payouts.setdefault(uid, []).append(tuple(paid))
    m = Market
    for row in conn.execute(select(m.id, m.event_id, m.name, m.position, m.status, m.tick,
                                   m.last_price, m.volume, m.open_interest)
                            .order_by(m.event_id, m.position)):
        market = state.markets[row.id] = MarketRow(*row)
        event = state.events.get(market.event_id)
        if event is not None:
            event.market_ids.append(market.id)
    return state


class ReadModel:
    """The rows behind the fast reads, following one shard's event stream.

    Args:
        stream: the event stream's key (the ``stream`` of ledger rows in ``Batch``).
    """

    def __init__(self, stream: str):
        self.stream = stream
        self.ready = False
        self.problem = "not seeded yet"
        self.seq = 0
        self.seeds = 0
        self.balances: dict[int, tuple[int, int]] = {}
        self.positions: dict[int, dict[int, tuple]] = {}
        self.orders: dict[int, ev.OrderState] = {}  # open orders by id
        self.user_orders: dict[int, dict[int, ev.OrderState]] = {}  # user -> open orders by id
        # order id -> (state, its API object as JSON) of open orders read since their
        # last change: a listing of 50 orders then costs 50 lookups, not 50 renderings.
        self.rendered: dict[int, tuple[tuple, Any]] = {}
        self.events: dict[int, EventRow] = {}
        self.markets: dict[int, MarketRow] = {}
        # user -> (event_id, market_id, yes, no, amount, paid_at) paid, oldest first
        self.payouts: dict[int, list[tuple]] = {}
        self._listed: dict[tuple[str | None, str | None], list[int]] = {}
        self._memo: dict[tuple, Any] = {}
        self._memo_at: tuple[int, int] = (0, 0)  # (seeds, seq) the memo was built at

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """A public answer (the same for every reader) built from this state, kept
        until the state moves on: the next delivery or seed clears it. ``key`` names
        the answer and anything else it was built from (the replica's sequence, for
        prices). Answers must not be changed by whoever gets them."""
        at = (self.seeds, self.seq)
        if at != self._memo_at or len(self._memo) >= MEMO_ANSWERS:
            self._memo, self._memo_at = {}, at
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = build()
        return value

    # --- seeding (``marketdata.Replica`` calls these) ----------------------------------

    def read_seed(self, conn: Connection) -> SeedState:
        """Read a seed in the replica's transaction (blocking; any thread)."""
        return read_seed(conn)

    def install(self, state: SeedState, seq: int) -> None:
        """Replace every row with ``state``, taken at command ``seq`` (event loop)."""
        self.balances = state.balances
        self.positions = state.positions
        self.orders, self.user_orders, self.rendered = {}, {}, {}
        for order in state.orders:
            self._order(order)
        self.events, self.markets = state.events, state.markets
        self.payouts = state.payouts
        self._listed = {}
        self.seq = seq
        self.seeds += 1
        if not self.ready:
            log.info("read model seeded at seq %d (seed %d)", seq, self.seeds)
        self.ready, self.problem = True, ""

    def status(self) -> str:
        """One line for ``/health``: where the model is, and how big."""
        if not self.ready:
            return f"not serving ({self.problem}); reads go to the database"
        return (f"applied up to seq {self.seq}: {len(self.balances)} balances, "
                f"{sum(len(p) for p in self.positions.values())} positions, "
                f"{len(self.orders)} open orders, {len(self.events)} events")

    # --- folding deliveries ------------------------------------------------------------

    def apply(self, delivery: Delivery) -> None:
        """Fold one delivery (skipped if already held; a gap stops the model)."""
        drive(self.fold_steps(delivery))

    def fold_steps(self, delivery: Delivery) -> Iterator[None]:
        """``apply`` as a generator that yields at checkpoints, every ``CHUNK`` events
        or so, for a caller that folds a big delivery in slices
        (``marketdata.Replica.apply_sliced``). Between two checkpoints the model is
        half-folded: whoever drives it must keep readers away until it is exhausted."""
        if not self.ready or delivery.last_seq <= self.seq:
            return
        if delivery.first_seq != self.seq + 1:
            self._stop(f"deliveries missing: got commands {delivery.first_seq}.."
                       f"{delivery.last_seq} after {self.seq}")
            return
        try:
            if _fast(delivery.events):
                yield from self._fold_fast(delivery)
            else:
                yield from self._fold_batch(delivery)
        except Exception as exc:
            self._stop(f"commands {delivery.first_seq}..{delivery.last_seq} could not be "
                       f"folded ({type(exc).__name__}: {exc})"[:300])
            return
        self.seq = delivery.last_seq

    def _stop(self, why: str) -> None:
        self.ready, self.problem = False, why
        log.error("read model stopped serving: %s; reads go to the database until it is "
                  "seeded again (restart, or a market-data resynchronisation)", why)

    def _order(self, e: ev.OrderState) -> None:
        """An ``order`` event: the order's state, kept while it is open."""
        oid, uid = e.order_id, e.user_id
        mine = self.user_orders.get(uid)
        if e.status not in OPEN_STATUSES:
            self.rendered.pop(oid, None)
            if self.orders.pop(oid, None) is not None and mine is not None:
                mine.pop(oid, None)
                if not mine:
                    del self.user_orders[uid]
            return
        s = _STRINGS  # one copy of each enum string, not one per decoded event
        old = self.orders.get(oid)
        # created_at is never rewritten (the writer)
        created = old.created_ms if old is not None else e.created_ms
        e = ev.OrderState(oid, uid, e.market_id, e.event_id, s.get(e.outcome, e.outcome),
                          s.get(e.side, e.side), s.get(e.order_type, e.order_type), e.price,
                          e.quantity, e.filled, s.get(e.status, e.status), s.get(e.tif, e.tif),
                          e.post_only, e.expires_at_ms, e.client_order_id, created,
                          e.updated_ms, e.reason)
        self.orders[oid] = e
        if mine is None:
            mine = self.user_orders[uid] = {}
        elif old is None and mine and oid < next(reversed(mine)):
            # Kept in id order (listings are newest first); an id below the newest one
            # cannot come from the engine's counter, but the order must stay right.
            mine[oid] = e
            self.user_orders[uid] = dict(sorted(mine.items()))
            return
        mine[oid] = e

    def _holding(self, work: dict, user: int, market: int) -> Holding:
        key = (user, market)
        h = work.get(key)
        if h is None:
            row = self.positions.get(user, {}).get(market)
            h = work[key] = Holding(key, row)
        return h

    def _fold_fast(self, d: Delivery) -> Iterator[None]:
        """Orders, fills, positions, balances: ``Batch``'s rules without its rows."""
        work: dict[tuple[int, int], Holding] = {}
        balances, markets = self.balances, self.markets
        events = d.events
        for start in range(0, len(events), CHUNK):
            if start:
                yield
            for e in events[start:start + CHUNK]:
                kind = e.kind
                if kind == ev.ORDER:
                    self._order(e)
                elif kind == ev.BALANCE:
                    balances[e.user_id] = (e.available, e.reserved)
                elif kind == ev.BOOK:
                    continue
                elif kind == ev.POSITION:
                    h = self._holding(work, e.user_id, e.market_id)
                    if h.seq <= d.last_seq:
                        h.set_state(e.yes, e.no, e.yes_reserved, e.no_reserved, d.last_seq)
                elif kind == ev.FILL:
                    market, price, qty, taker = (e.market_id, e.price, e.quantity,
                                                 e.taker_side)
                    bid, ask = ((e.taker_user_id, e.maker_user_id) if taker == "buy"
                                else (e.maker_user_id, e.taker_user_id))
                    apply_fill(self._holding(work, bid, market),
                               self._holding(work, ask, market),
                               e.settlement, price, qty, e.fee, taker == "buy")
                    m = markets.get(market)
                    if m is not None:
                        m.volume += qty
                        m.last_price = price
                elif kind not in _FAST_IGNORED and kind != ev.LEDGER:
                    raise ValueError(f"unknown event kind {kind!r}")
        yield from self._store_steps(list(work.values()))

    def _store_steps(self, holdings: list[Holding]) -> Iterator[None]:
        """``_store`` in chunks, a checkpoint between two."""
        for start in range(0, len(holdings), CHUNK):
            if start:
                yield
            self._store(holdings[start:start + CHUNK])

    def _store(self, holdings) -> None:
        """Write folded holdings back as rows; open interest moves with YES held."""
        positions, markets = self.positions, self.markets
        for h in holdings:
            if not h.touched:
                continue
            user, market = h.key
            qty, res, cost, pnl = h.qty, h.reserved, h.cost, h.pnl
            mine = positions.get(user)
            if mine is None:
                mine = positions[user] = {}
            mine[market] = (qty[0], qty[1], res[0], res[1], cost[0], cost[1], pnl[0], pnl[1],
                            h.seq)
            delta = qty[YES] - h.yes_before
            m = markets.get(market)
            if delta and m is not None:
                m.open_interest += delta

    def _fold_batch(self, d: Delivery) -> Iterator[None]:
        """Any other delivery: ``Batch.walk`` on rows loaded as the projector loads them."""
        wanted = needs([d])
        markets: dict[int, MarketInfo] = {}
        event_markets: dict[int, list[int]] = {}
        for mid in wanted.market_ids:
            m = self.markets.get(mid)
            if m is not None:
                markets[mid] = MarketInfo(m.event_id, m.last_price)
        for eid in wanted.event_ids:
            e = self.events.get(eid)
            if e is not None and e.market_ids:
                event_markets[eid] = list(e.market_ids)
                for mid in e.market_ids:
                    m = self.markets[mid]
                    markets[mid] = MarketInfo(m.event_id, m.last_price)
        keys = wanted.position_keys
        for eid, uid in wanted.event_users:
            keys.update((uid, mid) for mid in event_markets.get(eid, ()))
        holdings = {}
        for uid, mid in keys:
            row = self.positions.get(uid, {}).get(mid)
            if row is not None:
                holdings[(uid, mid)] = Holding((uid, mid), row)
        batch = Batch(self.stream, holdings, markets, event_markets)
        events = d.events
        # Walking in consecutive ranges writes what walking the delivery whole does.
        for start in range(0, len(events), CHUNK):
            yield
            batch.walk_range(d, start, min(start + CHUNK, len(events)))
        batch.position_rows()  # the writer's checks, and open-interest deltas into stats
        # Nothing above changed the model: from here on the delivery is applied whole.
        for start in range(0, len(events), CHUNK):
            yield
            for e in events[start:start + CHUNK]:
                if e.kind == ev.ORDER:
                    self._order(e)
        for uid, row in batch.balances.items():
            self.balances[uid] = (row["available"], row["reserved"])
        self._events(batch)
        for p in batch.payouts:
            self.payouts.setdefault(p["user_id"], []).append(
                (p["event_id"], p["market_id"], p["yes"], p["no"], p["amount"], p["paid_at"]))
        folded = list(batch.holdings.values())
        for h in folded:
            h.yes_before = h.qty[YES]  # open interest came with ``stats``
        yield from self._store_steps(folded)
        for mid, s in batch.stats.items():
            m = self.markets.get(mid)
            if m is not None:
                m.volume += s.volume
                m.open_interest += s.open_interest
                if s.last_price is not None:
                    m.last_price = s.last_price
        for eid in batch.deleted_events:
            self._delete_event(eid)

    def _events(self, batch: Batch) -> None:
        """Events and markets created or changed (the writer's upserts)."""
        for eid, r in batch.events.items():
            old = self.events.get(eid)
            resolved = batch.resolutions.get(eid)
            row = EventRow(eid, r["slug"], r["title"], r["description"], r["category"],
                           r["status"], r["close_time"], r["tick"],
                           old.created_at if old is not None else r["created_at"],
                           r["winning_outcome_id"], r["void"],
                           resolved["resolved_at"] if resolved is not None
                           else old.resolved_at if old is not None else None,
                           r["fee_rate"])
            row.market_ids = list(batch.event_markets.get(eid, ()))
            self.events[eid] = row
        for mid, r in batch.new_markets.items():
            old = self.markets.get(mid)
            if old is None:
                self.markets[mid] = MarketRow(mid, r["event_id"], r["name"], r["position"],
                                              r["status"], r["tick"])
            else:
                old.name, old.position = r["name"], r["position"]
                old.status, old.tick = r["status"], r["tick"]
        if batch.events or batch.deleted_events:
            self._listed = {}

    def _delete_event(self, eid: int) -> None:
        """A deleted event keeps its rows as ``deleted``; positions in it go."""
        e = self.events.get(eid)
        if e is not None:
            e.status = "deleted"
        gone = {mid for mid, m in self.markets.items() if m.event_id == eid}
        for mid in gone:
            self.markets[mid].status = "deleted"
        for uid in list(self.positions):
            mine = self.positions[uid]
            for mid in gone.intersection(mine):
                del mine[mid]
            if not mine:
                del self.positions[uid]

    # --- reads -------------------------------------------------------------------------

    def balance(self, user_id: int) -> tuple[int, int]:
        """``(available, reserved)`` of a user (zeros if they never had a balance)."""
        return self.balances.get(user_id, (0, 0))

    def user_positions(self, user_id: int, *, market_id: int | None = None,
                       event_id: int | None = None, include_empty: bool = False
                       ) -> list[tuple[int, tuple, MarketRow]]:
        """``(market_id, row, market)`` of a user's positions, in the database's order
        (event, then outcome), with the database path's filters."""
        out = []
        for mid, row in self.positions.get(user_id, {}).items():
            if market_id is not None and mid != market_id:
                continue
            m = self.markets.get(mid)
            if m is None or (event_id is not None and m.event_id != event_id):
                continue
            if not include_empty and not (row[0] > 0 or row[1] > 0 or row[6] or row[7]):
                continue
            out.append((mid, row, m))
        out.sort(key=lambda item: (item[2].event_id, item[2].position))
        return out

    def user_payouts(self, user_id: int, event_id: int | None) -> list[tuple]:
        """``(event_id, market_id, yes, no, amount, paid_at)`` of what resolutions paid a
        user, newest first (the database's order: by id, descending)."""
        mine = self.payouts.get(user_id, ())
        return [p for p in reversed(mine) if event_id is None or p[0] == event_id]

    def open_orders(self, user_id: int, market_id: int | None, limit: int, offset: int
                    ) -> tuple[int, list[ev.OrderState]]:
        """``(total, page)`` of a user's open orders, newest first."""
        mine = self.user_orders.get(user_id)
        if not mine:
            return 0, []
        if market_id is None:
            total = len(mine)
            if offset >= total:
                return total, []
            ids = list(reversed(mine))[offset:offset + limit]
            return total, [mine[i] for i in ids]
        chosen = [o for o in reversed(mine.values()) if o.market_id == market_id]
        return len(chosen), chosen[offset:offset + limit]

    def open_order(self, order_id: int) -> ev.OrderState | None:
        """The ``order`` event of an open order, or None (closed or unknown)."""
        return self.orders.get(order_id)

    def event(self, event_id: int) -> EventRow | None:
        """A visible (not deleted) event."""
        e = self.events.get(event_id)
        return e if e is not None and e.status != "deleted" else None

    def event_markets(self, e: EventRow) -> list[MarketRow]:
        """An event's markets in outcome order."""
        return [self.markets[mid] for mid in e.market_ids if mid in self.markets]

    def list_events(self, category: str | None, status: str | None
                    ) -> list[int]:
        """Visible event ids, newest first, filtered (cached until an event changes)."""
        key = (category or None, status or None)
        ids = self._listed.get(key)
        if ids is None:
            ids = [eid for eid in sorted(self.events, reverse=True)
                   if (e := self.events[eid]).status != "deleted"
                   and (not category or e.category == category)
                   and (not status or e.status == status)]
            if len(self._listed) > 256:  # categories are the caller's: bound the cache
                self._listed.clear()
            self._listed[key] = ids
        return ids

    def market(self, market_id: int) -> tuple[MarketRow, EventRow] | None:
        """A market of a visible event, with the event."""
        m = self.markets.get(market_id)
        if m is None:
            return None
        e = self.events.get(m.event_id)
        if e is None or e.status == "deleted":
            return None
        return m, e


def _fast(events) -> bool:
    """Whether a delivery holds only what the fast fold handles."""
    for e in events:
        kind = e.kind
        if kind in (ev.EVENT, ev.EVENT_DELETED, ev.RESOLVED, ev.PAYOUT):
            return False
        if kind == ev.LEDGER and e.entry_kind not in _CASH_LEDGER:
            return False
    return True


async def serving(runtime: Any, reader: Reader = EVERY_READER) -> ReadModel | None:
    """The runtime's read model once it reflects this server's answered writes that a
    read of ``reader`` could show, or None when reads must go to the database: no read
    model, it stopped serving, or the replica is not following the stream right now (an
    outage, a resynchronisation — the database path then decides, as it always did,
    whether it can answer or must refuse)."""
    model = runtime.readmodel
    if model is None or not model.ready or not runtime.replica.running:
        return None
    await runtime.barrier.for_replica(reader)
    return model if model.ready else None


def holder(runtime: Any, user_id: int) -> Reader:
    """A read of ``user_id``'s own state and of the markets it holds positions in (whose
    prices value them): a position it takes or leaves comes with its own user's events,
    so the markets named here are those the read shows."""
    model = runtime.readmodel
    held = model.positions.get(user_id) if model is not None else None
    return Reader(user_id, tuple(held) if held else ())
