"""Typed values of the pmarket API, parsed from its JSON.

Each dataclass mirrors one object of ``API.md``; ``parse_*`` functions build them from
decoded JSON. Invariant: money and prices are ``decimal.Decimal`` built from the API's
decimal strings (a JSON number is converted through its text), never ``float``;
timestamps are timezone-aware ``datetime`` values; fields the server adds beyond the
contract are ignored, so a newer server never breaks an older client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Json = Mapping[str, Any]


def dec(value: Any) -> Decimal:
    """An API decimal (string or JSON number) as an exact ``Decimal``."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # A JSON number decoded as float: its shortest repr is the text that was sent.
        return Decimal(repr(value))
    return Decimal(str(value))


def opt_dec(value: Any) -> Decimal | None:
    """Like ``dec`` but keeps ``None`` (an empty book has no best bid)."""
    return None if value is None else dec(value)


def ts(value: Any) -> datetime | None:
    """An ISO-8601 timestamp as an aware ``datetime`` (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint: ``items`` and the ``total`` matching the query."""

    items: list[T]
    total: int

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def parse_page(data: Any, parse: Callable[[Json], T]) -> Page[T]:
    """A ``{"items", "total"}`` body (a bare JSON list is accepted too)."""
    if isinstance(data, list):
        return Page([parse(x) for x in data], len(data))
    items = [parse(x) for x in data.get("items", [])]
    return Page(items, int(data.get("total", len(items))))


@dataclass(frozen=True, slots=True)
class User:
    """A user or admin account as the API shows it (never a password hash)."""

    id: int
    email: str
    name: str
    role: str = "user"
    created_at: datetime | None = None


def parse_user(d: Json, role: str = "user") -> User:
    """A ``{id, email, name[, role, created_at]}`` object."""
    return User(int(d["id"]), d["email"], d["name"], d.get("role", role),
                ts(d.get("created_at")))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as listed (``key``, its secret, only in the answer that created it)."""

    id: int
    name: str
    scopes: list[str]
    created_at: datetime | None
    last_used_at: datetime | None = None
    key: str | None = None


def parse_api_key(d: Json) -> ApiKey:
    """A ``{id, name, scopes, created_at[, last_used_at, key]}`` object."""
    return ApiKey(int(d["id"]), d["name"], list(d["scopes"]), ts(d.get("created_at")),
                  ts(d.get("last_used_at")), d.get("key"))


@dataclass(frozen=True, slots=True)
class Auth:
    """A signed-in session: the bearer ``token`` and who it belongs to."""

    token: str
    user: User


@dataclass(frozen=True, slots=True)
class Balance:
    """Cash: ``total`` = ``available`` + ``reserved`` (locked by open buy orders)."""

    available: Decimal
    reserved: Decimal
    total: Decimal


def parse_balance(d: Json) -> Balance:
    """A ``{available, reserved, total}`` object."""
    return Balance(dec(d["available"]), dec(d["reserved"]), dec(d["total"]))


@dataclass(frozen=True, slots=True)
class Position:
    """Shares held in one market, with cost basis, mark and P&L."""

    market_id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    yes_reserved: int
    no_reserved: int
    avg_cost_yes: Decimal | None
    avg_cost_no: Decimal | None
    mark_price: Decimal | None
    value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    settled: bool = False
    """The event resolved and paid the position out; ``mark_price`` is what a YES
    share paid."""


def parse_position(d: Json) -> Position:
    """One element of ``GET /positions``."""
    return Position(
        int(d["market_id"]), int(d["event_id"]), int(d["outcome_id"]),
        d.get("outcome_name", ""), int(d["yes_quantity"]), int(d["no_quantity"]),
        int(d.get("yes_reserved", 0)), int(d.get("no_reserved", 0)),
        opt_dec(d.get("avg_cost_yes")), opt_dec(d.get("avg_cost_no")),
        opt_dec(d.get("mark_price")), dec(d.get("value", 0)),
        dec(d.get("unrealized_pnl", 0)), dec(d.get("realized_pnl", 0)),
        bool(d.get("settled", False)))


@dataclass(frozen=True, slots=True)
class Payout:
    """What a resolution paid one position: its YES and NO shares, and the cash."""

    event_id: int
    market_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    amount: Decimal
    paid_at: datetime | None


def parse_payout(d: Json) -> Payout:
    """One element of ``GET /payouts``."""
    return Payout(int(d["event_id"]), int(d["market_id"]), d.get("outcome_name", ""),
                  int(d["yes_quantity"]), int(d["no_quantity"]), dec(d["amount"]),
                  ts(d.get("paid_at")))


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Balance, positions and their totals."""

    balance: Balance
    positions: list[Position]
    positions_value: Decimal
    total_value: Decimal
    pnl: Decimal


def parse_portfolio(d: Json) -> Portfolio:
    """The ``GET /portfolio`` object."""
    positions = d.get("positions", [])
    if isinstance(positions, Mapping):
        positions = positions.get("items", [])
    return Portfolio(parse_balance(d["balance"]), [parse_position(p) for p in positions],
                     dec(d.get("positions_value", 0)), dec(d.get("total_value", 0)),
                     dec(d.get("pnl", 0)))


@dataclass(frozen=True, slots=True)
class Order:
    """An order in its owner's own terms (a buy NO at 0.30 reads exactly so)."""

    id: int
    client_order_id: str | None
    market_id: int
    event_id: int | None
    outcome: str
    side: str
    type: str
    price: Decimal | None
    quantity: int
    filled_quantity: int
    remaining_quantity: int
    time_in_force: str
    post_only: bool
    expires_at: datetime | None
    status: str
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def is_open(self) -> bool:
        """Whether the order still rests on the book."""
        return self.status in ("open", "partially_filled")


def parse_order(d: Json) -> Order:
    """An Order object."""
    quantity = int(d["quantity"])
    filled = int(d.get("filled_quantity", 0))
    event_id = d.get("event_id")
    return Order(
        int(d["id"]), d.get("client_order_id"), int(d["market_id"]),
        None if event_id is None else int(event_id), d["outcome"], d["side"],
        d.get("type", "limit"), opt_dec(d.get("price")), quantity, filled,
        int(d.get("remaining_quantity", quantity - filled)), d.get("time_in_force", "gtc"),
        bool(d.get("post_only", False)), ts(d.get("expires_at")), d["status"],
        ts(d.get("created_at")), ts(d.get("updated_at")))


@dataclass(frozen=True, slots=True)
class Trade:
    """One of the caller's own fills."""

    id: int
    market_id: int
    order_id: int
    outcome: str
    side: str
    price: Decimal
    quantity: int
    role: str
    kind: str
    fee: Decimal
    executed_at: datetime | None


def parse_trade(d: Json) -> Trade:
    """A Trade (own fill) object."""
    return Trade(int(d["id"]), int(d["market_id"]), int(d["order_id"]), d["outcome"],
                 d["side"], dec(d["price"]), int(d["quantity"]), d.get("role", ""),
                 d.get("kind", ""), dec(d.get("fee", 0)), ts(d.get("executed_at")))


@dataclass(frozen=True, slots=True)
class PublicTrade:
    """A trade on the tape: ``price`` in YES terms."""

    id: int
    market_id: int
    price: Decimal
    quantity: int
    taker_side: str
    executed_at: datetime | None


def parse_public_trade(d: Json) -> PublicTrade:
    """A public trade object."""
    return PublicTrade(int(d["id"]), int(d["market_id"]), dec(d["price"]),
                       int(d["quantity"]), d.get("taker_side", ""), ts(d.get("executed_at")))


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What a placement or modification did: the order and the trades it made."""

    order: Order
    trades: list[Trade]


def parse_order_result(d: Json) -> OrderResult:
    """A ``{order, trades}`` object."""
    return OrderResult(parse_order(d["order"]), [parse_trade(t) for t in d.get("trades", [])])


@dataclass(frozen=True, slots=True)
class Level:
    """One price level of a book: the price and the total quantity resting there."""

    price: Decimal
    quantity: int


@dataclass(frozen=True, slots=True)
class Book:
    """An order book in one view's terms: bids high→low, asks low→high."""

    market_id: int
    view: str
    bids: list[Level]
    asks: list[Level]
    best_bid: Decimal | None
    best_ask: Decimal | None
    mid: Decimal | None
    spread: Decimal | None
    last_price: Decimal | None
    sequence: int


def _levels(rows: Any) -> list[Level]:
    return [Level(dec(r["price"]), int(r["quantity"])) for r in rows or []]


def parse_book(d: Json) -> Book:
    """A Book object."""
    return Book(int(d["market_id"]), d.get("view", "yes"), _levels(d.get("bids")),
                _levels(d.get("asks")), opt_dec(d.get("best_bid")),
                opt_dec(d.get("best_ask")), opt_dec(d.get("mid")), opt_dec(d.get("spread")),
                opt_dec(d.get("last_price")), int(d.get("sequence") or 0))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One outcome of an event, with its market's quote."""

    id: int
    name: str
    market_id: int
    last_price: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    volume: int
    result: str | None = None
    """None while the event is open; "won", "lost" or "void" once resolved."""


def parse_outcome(d: Json) -> Outcome:
    """An element of an event's ``outcomes``."""
    return Outcome(int(d["id"]), d["name"], int(d["market_id"]), opt_dec(d.get("last_price")),
                   opt_dec(d.get("best_bid")), opt_dec(d.get("best_ask")),
                   int(d.get("volume") or 0), d.get("result"))


@dataclass(frozen=True, slots=True)
class EventResolution:
    """How an event resolved: its winner (None when void, or when a single-outcome
    event's NO won), whether it was void, and when."""

    winning_outcome_id: int | None
    void: bool
    resolved_at: datetime | None


def parse_event_resolution(d: Json | None) -> EventResolution | None:
    """An event's ``resolution`` (None while it is not resolved)."""
    if d is None:
        return None
    winner = d.get("winning_outcome_id")
    return EventResolution(None if winner is None else int(winner), bool(d.get("void")),
                           ts(d.get("resolved_at")))


@dataclass(frozen=True, slots=True)
class Event:
    """An event (a question) and its outcomes."""

    id: int
    slug: str
    title: str
    description: str
    category: str
    status: str
    close_time: datetime | None
    outcomes: list[Outcome]
    created_at: datetime | None
    resolution: EventResolution | None = None
    fee_rate: Decimal = Decimal(0)  # what takers pay: fee_rate x quantity x p x (1 - p)

    def winner(self) -> Outcome | None:
        """The outcome that won, if the event resolved with one."""
        return next((o for o in self.outcomes if o.result == "won"), None)


def parse_event(d: Json) -> Event:
    """An event object."""
    return Event(int(d["id"]), d.get("slug") or "", d["title"], d.get("description") or "",
                 d.get("category") or "", d.get("status", "active"), ts(d.get("close_time")),
                 [parse_outcome(o) for o in d.get("outcomes", [])], ts(d.get("created_at")),
                 parse_event_resolution(d.get("resolution")), dec(d.get("fee_rate", 0)))


@dataclass(frozen=True, slots=True)
class OutcomeBook:
    """One outcome's book within an event-level order book."""

    outcome_id: int
    name: str
    market_id: int
    book: Book


@dataclass(frozen=True, slots=True)
class EventBook:
    """Every outcome's book, and the sum of their implied probabilities."""

    event_id: int
    outcomes: list[OutcomeBook]
    implied_probability_sum: Decimal | None


def parse_event_book(d: Json) -> EventBook:
    """The ``GET /events/{id}/orderbook`` object."""
    outcomes = [OutcomeBook(int(o["outcome_id"]), o.get("name", ""), int(o["market_id"]),
                            parse_book(o["book"])) for o in d.get("outcomes", [])]
    return EventBook(int(d["event_id"]), outcomes, opt_dec(d.get("implied_probability_sum")))


@dataclass(frozen=True, slots=True)
class Market:
    """One binary market (one outcome of an event)."""

    id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    status: str
    tick_size: Decimal
    last_price: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    volume: int
    open_interest: int
    result: str | None = None
    """None while the event is open; "yes", "no" or "void" once resolved."""


def parse_market(d: Json) -> Market:
    """The ``GET /markets/{id}`` object."""
    return Market(int(d["id"]), int(d["event_id"]), int(d["outcome_id"]),
                  d.get("outcome_name", ""), d.get("status", "active"),
                  dec(d.get("tick_size", "0.01")), opt_dec(d.get("last_price")),
                  opt_dec(d.get("best_bid")), opt_dec(d.get("best_ask")),
                  int(d.get("volume") or 0), int(d.get("open_interest") or 0),
                  d.get("result"))


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar, prices in YES terms."""

    start: datetime | None
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


def parse_candle(d: Json) -> Candle:
    """A candle object."""
    return Candle(ts(d["start"]), dec(d["open"]), dec(d["high"]), dec(d["low"]),
                  dec(d["close"]), int(d.get("volume") or 0))


@dataclass(frozen=True, slots=True)
class SplitResult:
    """After a market split or merge: the new balance and the market's position."""

    balance: Balance
    position: Position | None


def parse_split(d: Json) -> SplitResult:
    """A ``{balance, position}`` object."""
    pos = d.get("position")
    return SplitResult(parse_balance(d["balance"]), None if pos is None else parse_position(pos))


@dataclass(frozen=True, slots=True)
class EventSplitResult:
    """After an event split or merge: the new balance and every outcome's position."""

    balance: Balance
    positions: list[Position]


def parse_event_split(d: Json) -> EventSplitResult:
    """A ``{balance, positions}`` object."""
    positions = d.get("positions", [])
    if isinstance(positions, Mapping):
        positions = positions.get("items", [])
    return EventSplitResult(parse_balance(d["balance"]), [parse_position(p) for p in positions])


@dataclass(frozen=True, slots=True)
class Resolution:
    """A resolved (or voided) event and the total paid out."""

    event: Event
    payouts_total: Decimal


def parse_resolution(d: Json) -> Resolution:
    """The ``POST /admin/events/{id}/resolve`` object."""
    return Resolution(parse_event(d["event"]), dec(d.get("payouts_total", 0)))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The dead-man switch after a heartbeat: armed until ``expires_at``; ``fired_at``
    is when it fired since the previous heartbeat (it cancelled every open order)."""

    expires_at: datetime | None
    timeout_s: int
    fired_at: datetime | None


def parse_heartbeat(d: Json) -> Heartbeat:
    """The ``POST /heartbeat`` object."""
    return Heartbeat(ts(d["expires_at"]), int(d.get("timeout_s", 0)), ts(d.get("fired_at")))


@dataclass(frozen=True, slots=True)
class Audit:
    """The exchange-wide money audit: ``ok`` iff ``difference`` is zero."""

    ok: bool
    deposits: Decimal
    withdrawals: Decimal
    user_cash: Decimal
    collateral: Decimal
    fees: Decimal
    difference: Decimal
    markets: list[dict[str, Any]] = field(default_factory=list)


def parse_audit(d: Json) -> Audit:
    """The ``GET /admin/audit`` object."""
    return Audit(bool(d["ok"]), dec(d.get("deposits", 0)), dec(d.get("withdrawals", 0)),
                 dec(d.get("user_cash", 0)), dec(d.get("collateral", 0)),
                 dec(d.get("fees", 0)), dec(d.get("difference", 0)),
                 [dict(m) for m in d.get("markets", [])])


@dataclass(frozen=True, slots=True)
class Fees:
    """``GET /admin/fees``: taker fees collected, in total and per event (event id ->
    amount, events that collected nothing left out)."""

    total: Decimal
    by_event: dict[int, Decimal]


def parse_fees(d: Json) -> Fees:
    """The ``GET /admin/fees`` object."""
    return Fees(dec(d["total"]), {int(e["event_id"]): dec(e["amount"])
                                  for e in d.get("by_event", [])})


@dataclass(frozen=True, slots=True)
class Health:
    """``/health``: overall status and each component's."""

    status: str
    components: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether every component is healthy."""
        return self.status == "ok"


def parse_health(d: Json) -> Health:
    """The ``GET /health`` object."""
    return Health(d.get("status", "degraded"), dict(d.get("components", {})))
