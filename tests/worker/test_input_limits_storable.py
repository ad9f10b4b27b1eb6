"""Property: whatever the engine accepts, the worker stores, on SQLite and PostgreSQL.

Hypothesis drives arbitrary commands through the engine, the bus's delivery encoding
(orjson, strict UTF-8) and the worker's ``Projector`` into each backend: texts from the
whole Unicode range (control characters and lone surrogates included, lengths at and
past every limit), timestamps from the ends of int64 through the edges of 1970 and 9999,
amounts, prices and quantities at and past their limits. Then:

* every delivery (one per command) encodes, decodes and projects without an error;
* every order, trade, ledger entry, event, market and balance the engine reported is in
  the database, equal to what the engine said, and ``reconcile`` finds no difference;
* every command carrying a poison value — a text with a control character or a lone
  surrogate or longer than its limit, a time outside 1970..9999 UTC, an id past BIGINT
  — was rejected (judged by an oracle that does not use ``limits``: ``unicodedata`` and
  ``datetime``), and every rejection carries a reason code.

This is the test that would have found the whole class of issue 11's poison inputs.
``PMARKET_LIMITS_EXAMPLES`` raises the number of examples for a longer search.
"""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pmarket.db import Balance, Event, LedgerEntry, Market, Order, Trade
from pmarket.db.reconcile import reconcile
from pmarket.engine import (
    CancelOrder,
    CreateEvent,
    DeleteEvent,
    Deposit,
    Engine,
    EventStatus,
    Expire,
    ModifyOrder,
    OrderType,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    ResolveEvent,
    SelfTrade,
    Side,
    Split,
    TimeInForce,
    UpdateEvent,
    Withdraw,
)
from pmarket.engine import events as ev
from pmarket.engine.events import Reason
from pmarket.engine.units import MAX_AMOUNT, MAX_QUANTITY
from pmarket.runtime.eventlog import Delivery, decode_delivery, encode_delivery
from pmarket.worker import Projector
from tests.dbfixtures import Database

from .scenario import START_MS, STREAM

EXAMPLES = int(os.environ.get("PMARKET_LIMITS_EXAMPLES", "40"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, written out: not from limits
USERS = (1, 2, 3)
REASONS = {v for k, v in vars(Reason).items() if not k.startswith("_")}

# Texts: anything at all (Cc and Cs included), clean text of any script, clean text at
# and just past each length limit, and clean text with one poison character inside.
ANY_CHAR = st.characters(exclude_categories=())
CLEAN_CHAR = st.characters(exclude_categories=("Cc", "Cs"))
POISON = ("\x00", "\x00", "\x00", "\ud800", "\udfff", "\x01", "\t", "\n", "\x1f", "\x7f",
          "\x85", "\x9f", "\udbff", "\udc00")  # NUL (PostgreSQL) and surrogates (UTF-8) first
TEXT_LIMITS = {"title": 500, "description": 10_000, "category": 100, "slug": 200,
               "outcome": 200, "client_order_id": 64}


def texts(limit: int) -> st.SearchStrategy[str]:
    """Clean text (short, or exactly at the limit) half the time; else poisoned, over-long
    or anything at all."""
    clean = st.one_of(
        st.text(CLEAN_CHAR, min_size=1, max_size=12),
        st.builds(lambda c, n: c * n, CLEAN_CHAR, st.sampled_from((limit - 1, limit))))
    poisoned = st.builds(lambda a, p, b: a + p + b, st.text(CLEAN_CHAR, max_size=3),
                         st.sampled_from(POISON), st.text(CLEAN_CHAR, max_size=3))
    wild = st.one_of(st.text(ANY_CHAR, max_size=6),
                     st.builds(lambda c: c * (limit + 1), CLEAN_CHAR))
    return st.one_of(clean, clean, poisoned, wild)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


def client_order_ids() -> st.SearchStrategy[str]:
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.one_of(
        texts(64),
        st.text(printable, min_size=1, max_size=64),
        st.text(printable, min_size=65, max_size=70),
    )


def slugs() -> st.SearchStrategy[str]:
    valid = st.text(st.sampled_from("abcxyz019-"), max_size=200)
    return st.one_of(valid, valid, texts(200), st.just("a" * 201))


def times(now: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from((-1, 0, 1, LAST_MS - 1, LAST_MS, LAST_MS + 1, LAST_MS + 14 * 3_600_000,
                         -(2**63), 2**63 - 1, 2**64, 10**30)),
        st.integers(now + 1, now + 10_000),
        st.integers(now + 1, LAST_MS + 1),
        st.integers(-(2**63), 2**63 - 1),
    )


def amounts() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((-1, 0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, 2**63, 10**40)),
                     st.integers(1, 10**10))


def quantities() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((-1, 0, 1, MAX_QUANTITY, MAX_QUANTITY + 1, 2**63)),
                     st.integers(1, 50))


def prices() -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.sampled_from((-1, 0, 1, 99, 100, 9_900, 9_999, 10_000, 2**63)),
                     st.integers(1, 99).map(lambda k: k * 100))


# --- the oracle: poison judged without pmarket.engine.limits ---------------------------


def poison_text(value: object, limit: int) -> bool:
    if not isinstance(value, str):
        return True
    return len(value) > limit or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def poison_time(ms: object) -> bool:
    if ms is None:
        return False
    if type(ms) is not int or ms < 0:
        return True
    try:
        EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return True
    return False


def poisoned(cmd) -> bool:
    """Whether a command holds a value no backend may be asked to store."""
    if isinstance(cmd, PlaceBatch):
        return any(poisoned(item) for item in cmd.orders)
    if isinstance(cmd, PlaceOrder):
        return (cmd.client_order_id is not None
                and (poison_text(cmd.client_order_id, 64)
                     or not all(0x20 <= ord(ch) <= 0x7E for ch in cmd.client_order_id))
                ) or (cmd.tif is TimeInForce.GTD and poison_time(cmd.expires_at_ms))
    if isinstance(cmd, CreateEvent | UpdateEvent):
        fields = [("title", cmd.title), ("description", cmd.description),
                  ("category", cmd.category)]
        if isinstance(cmd, CreateEvent):
            fields += [("slug", cmd.slug)] + [("outcome", n) for n in cmd.outcomes]
        return poison_time(cmd.close_time_ms) or any(
            value is not None and poison_text(value, TEXT_LIMITS[name]) for name, value in fields)
    if isinstance(cmd, Deposit):
        return not 0 < cmd.user_id < 2**63
    return False


# --- a session: commands stamped like the runner stamps them ---------------------------


class Session:
    """An engine fed numbered commands, keeping one encoded delivery per command."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.deliveries: list[Delivery] = []
        self.seq = 0
        self.now = START_MS
        self.markets: list[int] = []
        self.event_ids: list[int] = []
        self.orders: list[tuple[int, int]] = []  # (order id, user)

    def do(self, cmd, jump_ms: int = 1_000) -> list[tuple]:
        self.seq += 1
        self.now = min(self.now + jump_ms, LAST_MS)
        cmd.seq, cmd.ts_ms = self.seq, self.now
        events = self.engine.apply(cmd)
        for e in events:
            if e[0] == ev.EVENT and e[1] not in self.event_ids:
                self.event_ids.append(e[1])
                self.markets += [m for m, _ in e[9]]
            elif e[0] == ev.ORDER and e[11] in ("open", "partially_filled"):
                self.orders.append((e[1], e[2]))
        wire = encode_delivery(Delivery(self.seq, self.seq, tuple(events), self.now))
        self.deliveries.append(decode_delivery(wire))  # exactly what the worker reads
        return events


def draw_command(data, s: Session):
    kind = data.draw(st.sampled_from(
        ("place",) * 8 + ("batch", "batch", "create", "create", "update", "deposit",
                          "withdraw", "modify", "cancel", "split", "clock", "resolve",
                          "delete")), label="kind")
    market = data.draw(st.sampled_from(s.markets) if s.markets and
                       data.draw(st.integers(0, 9), label="known market?") else
                       st.integers(-1, 10**6), label="market")
    if kind in ("place", "batch"):
        n = data.draw(st.integers(1, 3), label="items") if kind == "batch" else 1
        user = data.draw(st.sampled_from(USERS), label="user")
        items = tuple(draw_order(data, s, user, market) for _ in range(n))
        return items[0] if kind == "place" else PlaceBatch(user_id=user, orders=items)
    if kind == "create":
        return CreateEvent(
            title=data.draw(texts(500), label="title"),
            outcomes=tuple(data.draw(st.lists(texts(200), max_size=3), label="outcomes")),
            tick=data.draw(st.sampled_from((100, 100, 100, 10, 1, 0)), label="tick"),
            description=data.draw(texts(10_000), label="description"),
            category=data.draw(texts(100), label="category"),
            slug=data.draw(slugs(), label="slug"),
            close_time_ms=data.draw(st.none() | times(s.now), label="close time"))
    event = data.draw(st.sampled_from(s.event_ids) if s.event_ids else st.just(1),
                      label="event")
    if kind == "update":
        return UpdateEvent(
            event_id=event, title=data.draw(optional(texts(500)), label="title"),
            description=data.draw(optional(texts(10_000)), label="description"),
            category=data.draw(optional(texts(100)), label="category"),
            close_time_ms=data.draw(optional(times(s.now)), label="close time"),
            status=data.draw(st.sampled_from((None, None, EventStatus.ACTIVE,
                                              EventStatus.CLOSED)), label="status"))
    if kind in ("deposit", "withdraw"):
        user = data.draw(st.sampled_from(USERS) | st.sampled_from((0, -1, 2**62, 2**63 - 1)),
                         label="user")
        cls = Deposit if kind == "deposit" else Withdraw
        return cls(user_id=user, amount=data.draw(amounts(), label="amount"))
    if kind in ("modify", "cancel") and s.orders:
        oid, user = data.draw(st.sampled_from(s.orders), label="order")
        if kind == "cancel":
            return CancelOrder(user_id=user, order_id=oid)
        return ModifyOrder(user_id=user, order_id=oid, price=data.draw(prices(), label="price"),
                           quantity=data.draw(st.none() | quantities(), label="qty"))
    if kind == "split":
        return Split(user_id=data.draw(st.sampled_from(USERS), label="user"), market_id=market,
                     quantity=data.draw(quantities(), label="qty"))
    if kind == "resolve":
        return ResolveEvent(event_id=event, winning_outcome_id=data.draw(
            st.none() | st.just(market), label="winner"), void=data.draw(st.booleans()))
    if kind == "delete":
        return DeleteEvent(event_id=event)
    return Expire()


def draw_order(data, s: Session, user: int, market: int) -> PlaceOrder:
    tif = data.draw(st.sampled_from(tuple(TimeInForce)), label="tif")
    expires = data.draw(times(s.now), label="expires") if tif is TimeInForce.GTD else \
        data.draw(st.sampled_from((None,) * 9 + (s.now + 5,)), label="stray expiry")
    return PlaceOrder(
        user_id=user, market_id=market,
        outcome=data.draw(st.sampled_from(tuple(Outcome)), label="outcome"),
        side=data.draw(st.sampled_from(tuple(Side)), label="side"),
        quantity=data.draw(quantities(), label="qty"), price=data.draw(prices(), label="price"),
        order_type=data.draw(st.sampled_from((OrderType.LIMIT,) * 4 + (OrderType.MARKET,))),
        tif=tif, expires_at_ms=expires, post_only=data.draw(st.booleans(), label="post only"),
        client_order_id=data.draw(st.none() | client_order_ids(), label="coid"),
        stp=data.draw(st.sampled_from(tuple(SelfTrade)), label="stp"))


def rejections(events: list[tuple]) -> list[tuple]:
    return [e for e in events if e[0] == ev.REJECTED]


def check_command(cmd, events: list[tuple]) -> None:
    """A poisoned command is rejected; every rejection says why."""
    for e in rejections(events):
        assert e[3] in REASONS, f"rejection without a known reason: {e}"
        assert isinstance(e[4], str) and e[4], f"rejection without a message: {e}"
    if isinstance(cmd, PlaceBatch):
        for item, part in zip(cmd.orders, split_items(events), strict=True):
            if poisoned(item):
                assert rejections(part), f"poisoned batch item accepted: {item!r}"
    elif poisoned(cmd):
        assert rejections(events), f"poisoned command accepted: {cmd!r} -> {events!r}"


def split_items(events: list[tuple]) -> list[list[tuple]]:
    parts: list[list[tuple]] = []
    for e in ev.command_events(events):
        if e[0] == ev.BATCH_ITEM:
            parts.append([])
        elif parts:
            parts[-1].append(e)
    return parts


# --- what the database must hold ----------------------------------------------------------


def at(ms: int | None) -> datetime | None:
    return None if ms is None else EPOCH + timedelta(milliseconds=ms)


def expected(s: Session) -> dict[str, dict]:
    orders, trades, events, markets, balances = {}, {}, {}, {}, {}
    ledger: list[tuple] = []
    for d in s.deliveries:
        for e in d.events:
            kind, f = e[0], ev.as_dict(e) if e[0] in ev.LAYOUTS else {}
            if kind == ev.ORDER:
                orders[f["order_id"]] = (
                    f["user_id"], f["market_id"], f["price"], f["quantity"], f["filled"],
                    f["status"], f["tif"], f["post_only"], at(f["expires_at_ms"]),
                    f["client_order_id"], f["reason"], at(f["created_ms"]), at(f["updated_ms"]))
            elif kind == ev.FILL:
                trades[f["trade_id"]] = (
                    f["market_id"], f["price"], f["quantity"], f["kind"], f["taker_order_id"],
                    f["maker_order_id"], at(f["ts_ms"]))
            elif kind == ev.LEDGER:
                ledger.append((f["user_id"], f["kind"], f["amount"], f["event_id"],
                               f["market_id"], f["quantity"], at(f["ts_ms"])))
            elif kind == ev.EVENT:
                events[f["event_id"]] = (
                    f["title"], f["description"], f["category"], f["slug"],
                    at(f["close_time_ms"]), f["status"], f["tick"])
                for position, (mid, name) in enumerate(f["markets"]):
                    markets[mid] = (f["event_id"], name, position)
            elif kind == ev.EVENT_DELETED:
                events[f["event_id"]] = (*events[f["event_id"]][:5], "deleted",
                                         events[f["event_id"]][6])
            elif kind == ev.BALANCE:
                balances[f["user_id"]] = (f["available"], f["reserved"])
    return {"orders": orders, "trades": trades, "events": events, "markets": markets,
            "balances": balances, "ledger": sorted(ledger, key=repr)}


def stored(database: Database) -> dict[str, dict]:
    with database.engine.connect() as conn:
        def table(query):
            return {r[0]: tuple(r[1:]) for r in conn.execute(query)}

        return {
            "orders": table(sa.select(
                Order.id, Order.user_id, Order.market_id, Order.price, Order.quantity,
                Order.filled, Order.status, Order.tif, Order.post_only, Order.expires_at,
                Order.client_order_id, Order.reason, Order.created_at, Order.updated_at)),
            "trades": table(sa.select(
                Trade.id, Trade.market_id, Trade.price, Trade.quantity, Trade.kind,
                Trade.taker_order_id, Trade.maker_order_id, Trade.executed_at)),
            "events": table(sa.select(
                Event.id, Event.title, Event.description, Event.category, Event.slug,
                Event.close_time, Event.status, Event.tick)),
            "markets": table(sa.select(Market.id, Market.event_id, Market.name,
                                       Market.position)),
            "balances": table(sa.select(Balance.user_id, Balance.available, Balance.reserved)),
            "ledger": sorted((tuple(r) for r in conn.execute(sa.select(
                LedgerEntry.user_id, LedgerEntry.kind, LedgerEntry.amount,
                LedgerEntry.event_id, LedgerEntry.market_id, LedgerEntry.quantity,
                LedgerEntry.at))), key=repr),
        }


def run(database: Database, data) -> Session:
    s = Session()
    s.do(CreateEvent(title="Rain?"))
    s.do(CreateEvent(title="Final", outcomes=("A", "B")))
    for user in USERS:
        s.do(Deposit(user_id=user, amount=10**12))
    for _ in range(data.draw(st.integers(5, 30), label="commands")):
        cmd = draw_command(data, s)
        jump = data.draw(st.sampled_from((1_000,) * 9 + (10**15,)), label="clock jump")
        check_command(cmd, s.do(cmd, jump))
    result = Projector(STREAM).apply(database.engine, s.deliveries)
    assert result.applied == len(s.deliveries) and result.last_seq == s.seq
    return s


# No shrinking: each assertion names the command or table at fault, and shrinking an
# example that writes a database runs for minutes.
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          report_multiple_bugs=False, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def _property(migrated: Database, data) -> None:
    migrated.clear()
    s = run(migrated, data)
    want, have = expected(s), stored(migrated)
    for name in want:
        assert have[name] == want[name], f"{name} differ between the engine and the database"
    with migrated.engine.connect() as conn:
        assert reconcile(s.engine, conn) == []


def test_every_accepted_command_is_stored_and_every_poisoned_one_rejected(migrated):
    _property(migrated)
