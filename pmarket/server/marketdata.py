"""An in-memory replica of every market's YES book and last price, fed by the events.

``Replica`` serves ``/orderbook`` and the WebSocket. It is seeded from the database
(markets, last prices, and the open orders aggregated onto each YES book, read in one
transaction together with the worker's position ``S``) and then follows the shard's event
stream in its own consumer group (``server-<instance>``), created just after the
worker's last projected message so no delivery between ``S`` and "now" is missed.
Deliveries covering commands ``<= S`` are already in the seed and are skipped; ``book``
events carry a level's new total, so applying one twice is harmless anyway.

Each delivery is applied synchronously (no ``await`` between its events), and every
WebSocket message it causes is handed to ``Hub`` in the same step: a subscriber's book
snapshot and the deltas after it can never interleave with another delivery, so per
channel ``sequence`` grows by exactly one per message.

Healing (``run``): the replica outlives its bus. A failed read (Redis down, or never up
since the server started) is retried for as long as it lasts — logged once when the
stream is lost and once when it is back — and the replica reports itself not
``running`` meanwhile (``/health`` degraded, book reads 503). Commands are numbered
contiguously, so a delivery starting past ``last_seq + 1`` proves deliveries were lost
(trimmed while this server was away, a Redis restart without persistence), and a
vanished consumer group (reaped while this server stalled) may hide such a loss: either
way the replica *resynchronises* — it parks its group at the stream's start so nothing
more is trimmed, seeds again from the database, moves the group to the new seed's
position, and sends every book subscriber a fresh ``snapshot`` (next ``sequence``), as
a client does itself on a sequence gap.

The read model (``readmodel``, the replica's ``follower``) is seeded in the same
snapshot as the books — at start and at every resynchronisation — and folds every
delivery the books apply, in the same step.

Invariant: after applying the deliveries up to command ``n``, each book equals the
engine's book after command ``n`` (same levels and totals), and ``last_seq == n``; a
replica that cannot guarantee it says so (``running`` False) instead of serving.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy import Engine, func, select

from pmarket.api import convert
from pmarket.bus import Bus, UnknownGroup, parse_id
from pmarket.bus.outage import Outage
from pmarket.db import ConsumerPosition, Event, Market, Order
from pmarket.engine.events import (
    BOOK,
    EVENT,
    EVENT_DELETED,
    FILL,
    ORDER,
    BalanceState,
    BookLevel,
    EventState,
    Fill,
    OrderState,
)
from pmarket.engine.queries import yes_payout
from pmarket.engine.units import SCALE
from pmarket.runtime.eventlog import Delivery, decode_delivery, decode_delivery_sliced
from pmarket.runtime.slicing import CHUNK, SLICED_BYTES, Slicer, drive
from pmarket.worker import WORKER_GROUP

from . import views
from .readmodel import snapshot
from .scope import EVERY_READER, EVERYTHING, Reader, Scope, scope_of

if TYPE_CHECKING:
    from .readmodel import ReadModel

log = logging.getLogger("pmarket.server.marketdata")


class Hub(Protocol):
    """Where the replica hands WebSocket messages (``websocket.Hub`` is the one)."""

    def wants(self, key: str) -> bool:
        """True if any connection listens on ``key`` (``user:{id}`` for users)."""

    def has_users(self) -> bool:
        """True if any connection listens on a user channel."""

    def send(self, key: str, kind: str, sequence: int | None, data: Any) -> None:
        """Queue a message for every subscriber of ``key``."""

    def drop(self, key: str, code: str, message: str) -> None:
        """Unsubscribe every connection from the market channel ``key``, telling why."""

OPEN_STATUSES = ("open", "partially_filled")
CLOSED_MEMORY = 200_000
"""How many recently closed orders the replica remembers (owner and final status)."""
BOOK_PAGES = 1024
BOOK_PAGE_BYTES = 16 * 2**20
"""At most this many encoded book pages, of at most this many bytes in all, are kept
between two changes of the books (a deep book's page is tens of kilobytes, and every
depth is a page of its own)."""
READ_BLOCK_MS = 200
"""How long one read of the event stream waits for deliveries."""
RESYNC_CATCH_UP_S = 10.0
"""How long a resync waits for the database to catch up with the books it replaces."""
GAP_BACKOFF_S = 0.05
MAX_GAP_BACKOFF_S = 5.0
"""First and longest wait before a resync after a gap (doubling while gaps persist:
deliveries lost for good come back only when the worker steps over the hole)."""


class _Gap(Exception):
    """A delivery arrived past ``last_seq + 1``: deliveries before it are lost."""


@dataclass(slots=True)
class MarketState:
    """What the replica knows of one market (prices in YES units)."""

    id: int
    event_id: int
    name: str
    tick: int
    status: str
    last_price: int | None = None
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    sequence: int = 0  # of the ``book:{id}`` channel
    trade_sequence: int = 0  # of the ``trades:{id}`` channel
    # What one YES share paid once the event resolved (``queries.yes_payout``), else None.
    settlement: int | None = None

    def best_bid(self) -> int | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> int | None:
        return min(self.asks) if self.asks else None


@dataclass(slots=True)
class Seed:
    """What the database says the books are, as of the worker's position.

    Attributes:
        markets: every market by id.
        event_markets: each event's market ids, in order.
        last_seq: the worker's projected command seq (0: nothing projected).
        start_id: the event stream id of the worker's last projected delivery ("0":
            none), where following the stream resumes.
        followed: the follower's (read model's) rows from the same snapshot, or None.
    """

    markets: dict[int, MarketState]
    event_markets: dict[int, list[int]]
    last_seq: int
    start_id: str
    followed: Any = None


def book_view(m: MarketState, view: str = "yes", depth: int | None = None) -> dict[str, Any]:
    """The API's Book object of a market, in the YES or NO view."""
    fmt = views.price_formatter(m.tick)
    if depth is None:
        bids = sorted(m.bids.items(), reverse=True)
        asks = sorted(m.asks.items())
    else:  # the best ``depth`` levels without sorting a deep book whole
        bids = heapq.nlargest(depth, m.bids.items())
        asks = heapq.nsmallest(depth, m.asks.items())
    last = m.last_price
    if view == "no":
        bids, asks = ([(SCALE - p, q) for p, q in asks], [(SCALE - p, q) for p, q in bids])
        last = None if last is None else SCALE - last
    best_bid = bids[0][0] if bids else None
    best_ask = asks[0][0] if asks else None
    both = best_bid is not None and best_ask is not None
    return {
        "market_id": m.id, "view": view,
        "bids": [{"price": fmt(p), "quantity": q} for p, q in bids],
        "asks": [{"price": fmt(p), "quantity": q} for p, q in asks],
        "best_bid": fmt(best_bid) if best_bid is not None else None,
        "best_ask": fmt(best_ask) if best_ask is not None else None,
        "mid": views.half_units(best_bid + best_ask, m.tick) if both else None,
        "spread": fmt(best_ask - best_bid) if both else None,
        "last_price": fmt(last) if last is not None else None,
        "sequence": m.sequence,
    }


def _settle(markets: dict[int, MarketState], ids: list[int], winner: int | None,
            void: bool) -> None:
    """Record what a YES share of each market of a resolved event paid."""
    for mid in ids:
        m = markets.get(mid)
        if m is not None:
            m.settlement = yes_payout(mid, len(ids), winner, bool(void))


class Replica:
    """Books and last prices of every market, following one shard's event stream.

    Args:
        bus: the bus carrying the event stream.
        db: the database to seed from.
        group: this server's consumer group on the event stream.
        shard: the shard (default: the bus's).
        hub: where WebSocket messages go (``websocket.Hub``), or None.
        on_trade: called once per trade applied (metrics).
        follower: the read model (``readmodel.ReadModel``), seeded in the same database
            snapshot and fed every delivery the books get; None for none.
    """

    def __init__(self, bus: Bus, db: Engine, *, group: str, shard: str | None = None,
                 hub: Hub | None = None, on_trade: Callable[[], None] | None = None,
                 follower: ReadModel | None = None):
        self.bus = bus
        self.db = db
        self.group = group
        self.shard = shard
        self.stream = bus.events_stream(shard)
        self.hub = hub
        self.on_trade = on_trade
        self.follower = follower
        self.markets: dict[int, MarketState] = {}
        self.event_markets: dict[int, list[int]] = {}
        self.seed_seq = 0
        self.last_seq = 0
        self.last_id: tuple[int, int] = (0, 0)
        self._start_id = "0"
        self._progress = asyncio.Event()
        self.running = False  # following the stream now: books are current
        self.status = "not started"  # why not, when not running (for /health, errors)
        self.resyncs = 0
        self.deliveries = 0
        self._attached = False  # the group exists at (or after) the seed's position
        self._resync = False  # the next attach seeds again first
        self._tried = asyncio.Event()  # the first read was attempted
        # order id -> (owner, status) of orders seen closing, newest CLOSED_MEMORY kept:
        # answers "is this closed order the caller's?" without waiting for the database.
        self.closed_orders: dict[int, tuple[int, str]] = {}
        # what a page answers (its key) -> the encoded answer, until the books change
        self._pages: dict[tuple, bytes] = {}
        self._page_bytes = 0
        self.slicer = Slicer()  # big deliveries in slices (``apply_sliced``)
        self._folding = False  # a delivery is half-folded: readers wait (``settled``)
        self._delivery: Delivery | None = None  # the delivery being folded in slices
        self._fold_scope: Scope = EVERYTHING  # what it changes (set once it pauses)
        self._settled = asyncio.Event()
        self._settled.set()
        self._working = False  # a big delivery is being decoded or folded in slices
        self._idle = asyncio.Event()
        self._idle.set()
        self.held = 0  # deliveries whose fold held readers (it paused at least once)

    def book_page(self, m: MarketState, view: str = "yes", depth: int | None = None) -> bytes:
        """``book_view`` of ``m`` (one of these books) encoded as JSON (see ``page``)."""
        return self.page(("book", m.id, view, depth), lambda: book_view(m, view, depth))

    def page(self, key: tuple, build: Callable[[], Any]) -> bytes:
        """``build()`` encoded as JSON, built once per state of the books: the next
        delivery or seed clears every page. ``key`` names what ``build`` answers from
        the books alone. A book is read far more often than it moves, and a deep one
        costs milliseconds to build."""
        page = self._pages.get(key)
        if page is None:
            page = orjson.dumps(build())
            if (len(self._pages) >= BOOK_PAGES
                    or self._page_bytes + len(page) > BOOK_PAGE_BYTES):
                self._pages, self._page_bytes = {}, 0
            self._pages[key] = page
            self._page_bytes += len(page)
        return page

    # --- seeding ----------------------------------------------------------------------

    def seed(self) -> None:
        """Load markets and open-order books from the database, with its position."""
        self._install(self.read_seed())

    def read_seed(self) -> Seed:
        """Read a ``Seed`` in one snapshot (blocking: run it in a thread)."""
        with snapshot(self.db) as conn:
            pos = conn.execute(select(ConsumerPosition.last_seq, ConsumerPosition.last_message_id)
                               .where(ConsumerPosition.consumer == WORKER_GROUP,
                                      ConsumerPosition.stream == self.stream)).first()
            rows = conn.execute(select(Market.id, Market.event_id, Market.name, Market.tick,
                                       Event.status, Market.last_price,
                                       Event.winning_outcome_id, Event.void)
                                .join(Event, Event.id == Market.event_id)
                                .where(Event.status != "deleted")
                                .order_by(Market.event_id, Market.position)).all()
            levels = conn.execute(
                select(Order.market_id, Order.outcome, Order.side, Order.price,
                       func.sum(Order.quantity - Order.filled))
                .where(Order.status.in_(OPEN_STATUSES))
                .group_by(Order.market_id, Order.outcome, Order.side, Order.price)).all()
            followed = self.follower.read_seed(conn) if self.follower is not None else None
        markets: dict[int, MarketState] = {}
        event_markets: dict[int, list[int]] = {}
        resolved = {}
        for mid, eid, name, tick, status, last, winner, void in rows:
            markets[mid] = MarketState(mid, eid, name, tick, status, last)
            event_markets.setdefault(eid, []).append(mid)
            if status == "resolved":
                resolved[eid] = (winner, void)
        for eid, (winner, void) in resolved.items():
            _settle(markets, event_markets[eid], winner, void)
        for mid, outcome, side, price, qty in levels:
            m = markets.get(mid)
            if m is None or not qty:
                continue
            # The canonical YES book: buy YES / sell NO bid, sell YES / buy NO ask.
            yes_price = price if outcome == "yes" else SCALE - price
            bid = (outcome == "yes") == (side == "buy")
            book = m.bids if bid else m.asks
            book[yes_price] = book.get(yes_price, 0) + int(qty)
        last_seq = pos.last_seq if pos is not None else 0
        start_id = pos.last_message_id if pos is not None and pos.last_message_id else "0"
        return Seed(markets, event_markets, last_seq, start_id, followed)

    def _install(self, seed: Seed, *, resync: bool = False) -> None:
        """Replace the books with ``seed``'s, synchronously; on a resync, every book
        subscriber gets a fresh snapshot at the channel's next sequence."""
        old = self.markets
        for mid, m in seed.markets.items():
            prev = old.get(mid)
            if prev is not None:  # channel sequences never go back
                m.sequence = prev.sequence + int(resync)
                # A resync may have skipped trades: the gap in ``trades:{id}`` says so.
                m.trade_sequence = prev.trade_sequence + int(resync)
        self.markets = seed.markets
        self.event_markets = seed.event_markets
        self._pages, self._page_bytes = {}, 0
        self.seed_seq = self.last_seq = seed.last_seq
        self._start_id = seed.start_id
        self.last_id = parse_id(seed.start_id)
        if self.follower is not None:
            self.follower.install(seed.followed, seed.last_seq)
        if resync and self.hub is not None:
            hub = self.hub
            for mid in old:
                m = seed.markets.get(mid)
                if m is not None:
                    if hub.wants(f"book:{mid}"):
                        hub.send(f"book:{mid}", "snapshot", m.sequence, book_view(m))
                    continue
                for channel in (f"book:{mid}", f"trades:{mid}"):
                    if hub.wants(channel):
                        hub.drop(channel, "unknown_channel", f"market {mid} no longer exists")

    # --- following the stream ---------------------------------------------------------

    async def run(self, stop: asyncio.Event, consumer: str = "replica") -> None:
        """Follow the event stream until ``stop`` is set, healing from every outage."""
        lost = Outage(f"market data ({self.group}): reading the event stream", log)
        seeding = Outage(f"market data ({self.group}): resynchronising", log,
                         max_backoff_s=5.0)
        gap_backoff = GAP_BACKOFF_S  # grows while resyncs keep finding gaps
        applied: list[str] = []  # ids to ack with the next read (one round trip for both)
        try:
            while not stop.is_set():
                try:
                    if not self._attached:
                        await self._attach()
                        applied = []
                        seeding.recovered()
                        lost.recovered()
                        self.running, self.status = True, "following the event stream"
                        self._tried.set()  # positioned: the server may serve (start-up)
                    messages = await self.bus.ack_and_read_events(
                        self.group, consumer, applied, count=500, block_ms=READ_BLOCK_MS,
                        start_id=None, shard=self.shard)
                except UnknownGroup:
                    log.error("market data: consumer group %s is gone (reaped while this "
                              "server stalled, or Redis lost its data); resynchronising "
                              "from the database", self.group)
                    self._lost("consumer group lost; resynchronising", resync=True)
                    continue
                except Exception as exc:  # bus or database down: retried, loud, visible
                    self._lost(f"{'resynchronising' if self._resync else 'event stream'}"
                               f" unavailable ({type(exc).__name__}: {exc})"[:300])
                    await (seeding if self._resync else lost).failed(exc)
                    continue
                finally:
                    self._tried.set()
                lost.recovered()
                self.running, self.status = True, "following the event stream"
                try:
                    applied = await self._apply_messages(messages)
                except _Gap as gap:
                    log.error("market data: %s; resynchronising from the database in "
                              "%.2f s", gap, gap_backoff)
                    self._lost("deliveries missing; resynchronising", resync=True)
                    await asyncio.sleep(gap_backoff)
                    gap_backoff = min(gap_backoff * 2, MAX_GAP_BACKOFF_S)
                    continue
                if messages:  # deliveries applied in order: any gap is healed
                    gap_backoff = GAP_BACKOFF_S
        finally:
            self.running = False
            self.status = "stopped"

    def _lost(self, why: str, *, resync: bool = False) -> None:
        self.running = False
        self.status = why
        if resync:
            self._attached = False
            self._resync = True

    async def _apply_messages(self, messages: list) -> list[str]:
        """Apply a batch of stream messages in order; the ids to ack. Raises ``_Gap``.

        Big deliveries are decoded and folded in slices (``apply_sliced``), and a batch
        of many small ones pauses between two deliveries once a slice has run its
        budget: other requests run meanwhile. Readers waiting for a delivery are woken
        as soon as it is applied whole, not at the end of the batch."""
        slicer = self.slicer
        slicer.restart()
        decoded = self.bus.decoded
        for message in messages:
            if slicer.due():
                self._signal_progress()  # what is applied so far is whole: readable
                await slicer.pause()
            paused = slicer.pauses
            try:
                try:
                    big = len(message.payload) >= SLICED_BYTES
                    if big:
                        self._busy()
                    # The engine beside this server kept it decoded (``Bus.decoded``).
                    kept = decoded.take(message.payload) if decoded is not None else None
                    if kept is not None:
                        delivery = replace(kept, message_id=message.id)  # type: ignore[type-var]
                    elif big:
                        delivery = await decode_delivery_sliced(message.payload,
                                                                message.id, slicer)
                    else:
                        delivery = decode_delivery(message.payload, message.id)
                except ValueError as exc:
                    log.error("market data: undecodable delivery %s: %s", message.id, exc)
                    continue
                if not await self.apply_sliced(delivery, slicer):
                    raise _Gap(f"delivery {message.id} covers commands "
                               f"{delivery.first_seq}..{delivery.last_seq}, but the "
                               f"replica is at {self.last_seq}")
            finally:
                self._not_busy()
            self.last_id = max(self.last_id, parse_id(message.id))
            if slicer.pauses != paused:  # it took slices: its readers go now
                self._signal_progress()
        if messages:
            self._signal_progress()
        return [m.id for m in messages]

    def _signal_progress(self) -> None:
        """Wake whoever waits for the replica to reach an id (``wait_for_id``)."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_tried(self, timeout_s: float) -> bool:
        """Wait until the first read of the stream was attempted; whether it was."""
        try:
            await asyncio.wait_for(self._tried.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _attach(self) -> None:
        """Make the group deliver what follows the seed: at start, or after a loss (then
        with a new seed, taken while the group holds trimming back)."""
        stream, group = self.stream, self.group
        if self._resync:
            self.status = "resynchronising from the database"
            # Park the group at the stream's start: nothing is trimmed while we seed.
            if not await self.bus.ensure_group(stream, group, "0"):
                await self.bus.set_group_position(stream, group, "0-0")
            await self._ack_pending()
            seed = await self._seed_not_older_than(self.last_seq)
            self._install(seed, resync=True)
            self.resyncs += 1
            log.warning("market data: resynchronised from the database at seq %d (resync "
                        "%d); book subscribers got fresh snapshots", self.last_seq,
                        self.resyncs)
        elif not await self.bus.ensure_group(stream, group, self._start_id):
            await self._ack_pending()  # a group of ours from before: start afresh
        await self.bus.set_group_position(stream, group, self._start_id)
        self._attached, self._resync = True, False

    async def _seed_not_older_than(self, last_seq: int) -> Seed:
        """A seed from the database once its projection has reached ``last_seq`` (what
        the books already showed), or after ``RESYNC_CATCH_UP_S``, loudly, the one it has.

        An older seed would drop the markets created since (their subscribers told that
        the market no longer exists) while the worker is only behind."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESYNC_CATCH_UP_S
        seed = await asyncio.to_thread(self.read_seed)
        while seed.last_seq < last_seq and loop.time() < deadline:
            await asyncio.sleep(0.1)
            seed = await asyncio.to_thread(self.read_seed)
        if seed.last_seq < last_seq:
            log.warning("market data: the database is at seq %d, behind the books' %d, "
                        "after %.0f s; resynchronising from it all the same",
                        seed.last_seq, last_seq, RESYNC_CATCH_UP_S)
        return seed

    async def _ack_pending(self) -> None:
        """Ack whatever the group still has pending: it would hold trimming back."""
        while pending := await self.bus.pending(self.stream, self.group, count=1_000):
            await self.bus.ack(self.stream, self.group, [p.id for p in pending])

    async def wait_for_id(self, stream_id: str, timeout_s: float) -> bool:
        """Wait until the replica has applied the stream up to ``stream_id``."""
        target = parse_id(stream_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.last_id < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def apply(self, delivery: Delivery) -> bool:
        """Fold one delivery into the books (skipped if they already hold it).

        Returns:
            False, changing nothing, if the delivery starts past ``last_seq + 1``:
            deliveries before it are missing and the replica must resynchronise.
        """
        admitted = self._admit(delivery)
        if admitted is not None:
            return admitted
        drive(self._fold(delivery))
        drive(self._publish_user(delivery))
        return True

    async def apply_sliced(self, delivery: Delivery, slicer: Slicer) -> bool:
        """``apply``, in slices of ``slicer``'s budget: other tasks run between them.

        While the delivery is half-folded every reader it touches is held (``settled``,
        awaited by ``ReadBarrier.for_replica``): nobody reads a book, balance or order
        list with part of a delivery in it, and nobody subscribes to a book between its
        snapshot and its delta. The gate closes only if the fold actually pauses, so a
        delivery that fits in a slice is applied exactly as by ``apply``; then the
        delivery's scope is computed once, and readers it does not touch go on. The
        ``user`` channel's messages (each order converted for the owner's WebSocket)
        are queued after the fold, still in slices and before the next delivery: readers
        need not wait for them.
        """
        admitted = self._admit(delivery)
        if admitted is not None:
            return admitted
        self._delivery = delivery
        try:
            await slicer.run(self._fold(delivery), self._hold_readers)
        finally:
            self._delivery = None
            self._release_readers()
        await slicer.run(self._publish_user(delivery))
        return True

    @property
    def folding(self) -> bool:
        """A delivery is half-folded right now: readers must wait (``settled``)."""
        return self._folding

    async def settled(self, reader: Reader = EVERY_READER) -> None:
        """Return at once, or when the delivery being folded, if it touches ``reader``,
        is folded whole (then nothing a read of ``reader`` shows is half-applied until
        the caller next awaits)."""
        while self._folding and self._fold_scope.touches(reader):
            await self._settled.wait()

    async def unhurried(self) -> None:
        """Return at once, or when the big delivery being decoded or folded in slices
        is applied (the gateway awaits it before sending a command: the work new
        commands bring would otherwise take most of the loop's turns from the fold,
        which every read waits for)."""
        while self._working:
            await self._idle.wait()

    def _busy(self) -> None:
        if not self._working:
            self._working = True
            self._idle.clear()

    def _not_busy(self) -> None:
        if self._working:
            self._working = False
            self._idle.set()

    def _hold_readers(self) -> None:
        self._busy()
        if not self._folding:
            delivery = self._delivery
            self._fold_scope = EVERYTHING if delivery is None else scope_of(delivery.events)
            self._folding = True
            self.held += 1
            self._settled.clear()

    def _release_readers(self) -> None:
        if self._folding:
            self._folding = False
            self._settled.set()

    def _admit(self, delivery: Delivery) -> bool | None:
        """None if ``delivery`` is next and must be folded; else what ``apply`` returns."""
        self.deliveries += 1
        if delivery.last_seq <= self.last_seq:
            return True  # in the seed already, or a duplicate delivery
        if delivery.first_seq > self.last_seq + 1:
            return False
        return None

    def _fold(self, delivery: Delivery) -> Iterator[None]:
        """Fold an admitted delivery: books, read model, closed orders, then the book
        deltas; a generator yielding at checkpoints (see ``apply_sliced``)."""
        if self._pages:
            self._pages, self._page_bytes = {}, 0
        if self.follower is not None:
            yield from self.follower.fold_steps(delivery)
        # market -> its levels' changes, or None when nobody subscribes to its book
        changes: dict[int, list[dict[str, Any]] | None] = {}
        events = delivery.events
        for start in range(0, len(events), CHUNK):
            yield
            for ev in events[start:start + CHUNK]:
                kind = ev.kind
                if kind == BOOK:
                    self._book(ev, changes)
                elif kind == FILL:
                    self._fill(ev)
                elif kind == EVENT:
                    self._event(ev)
                elif kind == ORDER:
                    if ev.status not in OPEN_STATUSES:
                        self._closed(ev.order_id, ev.user_id, ev.status)
                elif kind == EVENT_DELETED:
                    for mid in self.event_markets.pop(ev.event_id, []):
                        self.markets.pop(mid, None)
        self.last_seq = delivery.last_seq
        hub = self.hub
        if hub is None:
            return
        for mid, levels in changes.items():
            m = self.markets.get(mid)
            if m is not None:
                m.sequence += 1
                if levels is not None:
                    hub.send(f"book:{mid}", "delta", m.sequence,
                             {"market_id": mid, "changes": levels})

    def _closed(self, order_id: int, user_id: int, status: str) -> None:
        closed = self.closed_orders
        closed.pop(order_id, None)
        closed[order_id] = (user_id, status)
        if len(closed) > CLOSED_MEMORY:
            del closed[next(iter(closed))]

    def closed_order(self, order_id: int) -> tuple[int, str] | None:
        """``(owner, status)`` of a recently closed order, if this replica saw it close."""
        return self.closed_orders.get(order_id)

    def _book(self, ev: BookLevel, changes: dict[int, list[dict[str, Any]] | None]
              ) -> None:
        mid, side, price, qty = ev.market_id, ev.side, ev.price, ev.quantity
        m = self.markets.get(mid)
        if m is None:
            return
        book = m.bids if side == "bid" else m.asks
        if qty:
            book[price] = qty
        else:
            book.pop(price, None)
        if mid in changes:
            levels = changes[mid]
        else:  # the delta is built only for a book someone subscribes to (asked once:
            # a subscription waits for a half-folded delivery to be folded)
            hub = self.hub
            levels = changes[mid] = [] if hub is not None and hub.wants(f"book:{mid}") \
                else None
        if levels is not None:
            levels.append({"side": side, "price": views.price_formatter(m.tick)(price),
                           "quantity": qty})

    def _fill(self, ev: Fill) -> None:
        mid, price = ev.market_id, ev.price
        m = self.markets.get(mid)
        if m is None:
            return
        m.last_price = price
        if self.on_trade is not None:
            self.on_trade()
        m.trade_sequence += 1
        channel = f"trades:{mid}"
        if self.hub is not None and self.hub.wants(channel):
            self.hub.send(channel, "trade", m.trade_sequence, convert.public_trade(ev, m.tick))

    def _event(self, ev: EventState) -> None:
        eid, status, tick, markets = ev.event_id, ev.status, ev.tick, ev.markets
        ids = self.event_markets.setdefault(eid, [])
        for mid, name in markets:
            m = self.markets.get(mid)
            if m is None:
                self.markets[mid] = MarketState(mid, eid, name, tick, status)
                ids.append(mid)
            else:
                m.status = status
                m.name = name
        if status == "resolved":
            _settle(self.markets, ids, ev.winning_outcome_id, ev.void)

    def _publish_user(self, delivery: Delivery) -> Iterator[None]:
        """Hand each subscribed user's orders, fills and balances of a delivery to the
        hub; a generator yielding at checkpoints."""
        hub = self.hub
        if hub is None or not hub.has_users():
            return
        orders = {ev.order_id: ev for ev in delivery.events if isinstance(ev, OrderState)}
        events = delivery.events
        for start in range(0, len(events), CHUNK):
            yield
            for ev in events[start:start + CHUNK]:
                if isinstance(ev, OrderState):
                    if hub.wants(f"user:{ev.user_id}"):
                        hub.send(f"user:{ev.user_id}", "order", None,
                                 convert.order(ev, self.tick_of(ev.market_id)))
                elif isinstance(ev, BalanceState):
                    if hub.wants(f"user:{ev.user_id}"):
                        hub.send(f"user:{ev.user_id}", "balance", None, convert.balance(ev))
                elif isinstance(ev, Fill):
                    for order_id, user_id, role in (
                            (ev.taker_order_id, ev.taker_user_id, "taker"),
                            (ev.maker_order_id, ev.maker_user_id, "maker")):
                        order = orders.get(order_id)
                        if order is not None and hub.wants(f"user:{user_id}"):
                            hub.send(f"user:{user_id}", "fill", None, convert.own_trade(
                                ev, order, role, self.tick_of(ev.market_id)))

    def tick_of(self, market_id: int) -> int:
        """The tick of a market (0.0001 if the replica does not know it)."""
        m = self.markets.get(market_id)
        return m.tick if m is not None else 1

