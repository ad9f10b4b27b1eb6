"""Read-only views of the engine's state: books, orders, balances, the audit, and what a
resolution made of each outcome.

Queries never change the exchange's state (``open_orders`` keeps a cache of its
answers beside it, never in snapshots). Prices are integer units; a book in the NO view swaps the
sides of the YES book (NO bids = 1 - YES asks, NO asks = 1 - YES bids).

Queries are functions of the engine; ``Engine`` exposes them as methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import OrderState, PositionState
from .model import BUY_NO, BUY_YES, SELL_NO, SELL_YES, Account, Event
from .state import State
from .units import MAX_TOTAL_MONEY, SCALE


@dataclass(frozen=True, slots=True)
class BookView:
    """A market's book in one view. ``mid_x2`` is twice the mid price (exact in units)."""

    market_id: int
    view: str
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    best_bid: int | None
    best_ask: int | None
    mid_x2: int | None
    spread: int | None
    last_price: int | None


@dataclass(frozen=True, slots=True)
class MarketView:
    """A market's trading state (prices in YES terms)."""

    market_id: int
    event_id: int
    name: str
    status: str
    tick: int
    last_price: int | None
    best_bid: int | None
    best_ask: int | None
    volume: int
    open_interest: int


@dataclass(slots=True)
class AuditReport:
    """The money invariant, and every violation of the engine's internal invariants."""

    ok: bool
    deposits: int
    withdrawals: int
    user_cash: int
    collateral: int
    fees: int
    rounding: int
    difference: int
    markets: list[dict[str, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def book(eng: State, market_id: int, view: str = "yes", depth: int | None = None) -> BookView:
    """Aggregated levels of a market's book in the YES or the NO view."""
    m = eng.markets[market_id]
    tick = m.tick
    bids = [(i * tick, q) for i, q in m.book.bid_levels(depth)]
    asks = [(i * tick, q) for i, q in m.book.ask_levels(depth)]
    last = m.last_price
    if view == "no":
        bids, asks = ([(SCALE - p, q) for p, q in asks], [(SCALE - p, q) for p, q in bids])
        last = None if last is None else SCALE - last
    elif view != "yes":
        raise ValueError(f"view must be 'yes' or 'no', got {view!r}")
    bb = bids[0][0] if bids else None
    ba = asks[0][0] if asks else None
    if bb is not None and ba is not None:
        return BookView(market_id, view, bids, asks, bb, ba, bb + ba, ba - bb, last)
    return BookView(market_id, view, bids, asks, bb, ba, None, None, last)


def market_view(eng: State, market_id: int) -> MarketView:
    """A market's trading state (prices in YES terms)."""
    m = eng.markets[market_id]
    return MarketView(m.id, m.event.id, m.name, m.status, m.tick, m.last_price,
                      m.best_bid(), m.best_ask(), m.volume,
                      sum(p.yes for p in m.holders.values()))


# --- resolution ----------------------------------------------------------------------
# Pure rules on an event's resolution fields (``status``, ``winning_outcome_id``,
# ``void``), shared by everything that shows them (server, simulator).

_MARKET_RESULTS = {"won": "yes", "lost": "no", "void": "void"}


def outcome_result(status: str, market_id: int, winner: int | None,
                   void: bool) -> str | None:
    """What became of an outcome: None until its event is resolved, then "won", "lost"
    or "void" (a single-outcome event resolved with no winner: its outcome "lost")."""
    if status != "resolved":
        return None
    if void:
        return "void"
    return "won" if market_id == winner else "lost"


def market_result(status: str, market_id: int, winner: int | None,
                  void: bool) -> str | None:
    """A market's side that won: None until resolved, then "yes", "no" or "void"."""
    result = outcome_result(status, market_id, winner, void)
    return None if result is None else _MARKET_RESULTS[result]


def yes_payout(market_id: int, outcomes: int, winner: int | None, void: bool) -> int:
    """What one YES share of a resolved market paid (units): $1 for the winner, 0 for a
    loser, 1/N of a dollar rounded down when an event of N outcomes is void (N = 2 for a
    single-outcome event, as ``admin.resolve`` pays). A NO share paid the rest."""
    if void:
        return SCALE // max(outcomes, 2)
    return SCALE if market_id == winner else 0


# --- accounts ------------------------------------------------------------------------


def positions(eng: State, user_id: int) -> list[PositionState]:
    """``position`` events of every market the user holds shares in."""
    acct = eng.accounts.get(user_id)
    if acct is None:
        return []
    return [p.snapshot() for p in acct.positions.values()
            if p.yes or p.no or p.market_id in eng.markets]


def open_orders(eng: State, user_id: int,
                market_id: int | None = None) -> list[OrderState]:
    """``order`` events of a user's open orders, oldest first.

    Answered from a per-user view (``Account.open_view``), so that a trader polling
    their orders costs a list copy rather than an event per order. The first query
    of a user turns the view on for them (``Account.caches_views``): from then on each
    command's flush stores the event it emits for their touched orders
    (``Order.view``) and drops the view, which the next query rebuilds from those
    events in ``Account.orders``'s order, building only the missing ones. Users who never
    ask keep nothing extra. ``audit`` checks every view against fresh snapshots.
    """
    acct = eng.accounts.get(user_id)
    if acct is None:
        return []
    view = acct.open_view
    if view is None:
        view = acct.open_view = _open_view(acct)
    if market_id is None:
        return list(view)  # a copy: the caller may change it, the cache must not
    return [v for v in view if v.market_id == market_id]


def _open_view(acct: Account) -> list[OrderState]:
    """The account's open orders as events, reusing each order's stored ``view``."""
    acct.caches_views = True
    out: list[OrderState] = []
    for o in acct.orders.values():
        v = o.view
        if v is None:
            v = o.view = o.snapshot()
        out.append(v)
    return out


# --- the audit -----------------------------------------------------------------------


def _reservation_problems(eng: State) -> list[str]:
    """Every account's reserved cash and shares against what its open orders need."""
    problems: list[str] = []
    need_cash: dict[int, int] = {}
    need_shares: dict[tuple[int, int, int], int] = {}
    for o in eng.orders.values():
        if o.action in (BUY_YES, BUY_NO):
            need_cash[o.user] = need_cash.get(o.user, 0) + o.price * o.remaining
        else:
            key = (o.user, o.market.id, o.action)
            need_shares[key] = need_shares.get(key, 0) + o.remaining
    for a in eng.accounts.values():
        if a.available < 0 or a.reserved < 0:
            problems.append(f"user {a.user} has negative cash")
        if a.reserved != need_cash.get(a.user, 0):
            problems.append(f"user {a.user} reserves {a.reserved} cash, open buys need "
                            f"{need_cash.get(a.user, 0)}")
        for p in a.positions.values():
            if min(p.yes, p.no, p.yes_reserved, p.no_reserved) < 0:
                problems.append(f"user {a.user} has negative shares in {p.market_id}")
            if p.yes_reserved > p.yes or p.no_reserved > p.no:
                problems.append(f"user {a.user} reserves more shares than held in "
                                f"{p.market_id}")
            if p.yes_reserved != need_shares.get((a.user, p.market_id, SELL_YES), 0) or \
                    p.no_reserved != need_shares.get((a.user, p.market_id, SELL_NO), 0):
                problems.append(f"user {a.user} share reservation in {p.market_id} differs "
                                "from open sells")
    return problems


def audit(eng: State) -> AuditReport:
    """Check the money invariant and every internal invariant; never raises."""
    t = eng.treasury
    problems: list[str] = []
    cash = sum(a.available + a.reserved for a in eng.accounts.values())
    collateral = sum(e.collateral for e in eng.events.values())
    difference = t.held - (cash + collateral + t.fees + t.rounding)
    if difference:
        problems.append(f"money invariant off by {difference} units")
    if t.held > MAX_TOTAL_MONEY:
        problems.append(f"the exchange holds {t.held} units, over MAX_TOTAL_MONEY")
    event_fees = sum(e.fees for e in eng.events.values())
    if event_fees != t.fees:
        problems.append(f"the fee account holds {t.fees} units, the events' fees add up "
                        f"to {event_fees}")
    problems.extend(_reservation_problems(eng))
    problems.extend(_view_problems(eng))
    markets: list[dict[str, object]] = []
    for e in eng.events.values():
        problems.extend(_audit_event(e))
        for m in e.markets:
            b = m.book
            if b.best_bid and b.best_ask < b.n and b.best_bid >= b.best_ask:
                problems.append(f"market {m.id} book is crossed")
            markets.append({
                "market_id": m.id, "event_id": e.id, "status": m.status,
                "yes_supply": sum(p.yes for p in m.holders.values()),
                "no_supply": sum(p.no for p in m.holders.values()),
                "event_collateral": e.collateral,
            })
    return AuditReport(not problems, t.deposits, t.withdrawals, cash, collateral, t.fees,
                       t.rounding, difference, markets, problems)


def _view_problems(eng: State) -> list[str]:
    """Every cached open-orders view (``open_orders``) against fresh snapshots."""
    problems: list[str] = []
    for a in eng.accounts.values():
        if not a.caches_views:
            continue
        fresh = [o.snapshot() for o in a.orders.values()]
        stale = [o.id for o in a.orders.values()
                 if o.view is not None and o.view != o.snapshot()]
        if stale:
            problems.append(f"user {a.user}'s stored views of orders {stale} are stale")
        if a.open_view is not None and a.open_view != fresh:
            problems.append(f"user {a.user}'s cached open orders differ from their orders")
    return problems


def _audit_event(e: Event) -> list[str]:
    """Collateral must equal the payout of every possible resolution."""
    if e.status == "resolved":
        return [] if not e.collateral else [f"resolved event {e.id} still holds collateral"]
    yes = [sum(p.yes for p in m.holders.values()) for m in e.markets]
    no = [sum(p.no for p in m.holders.values()) for m in e.markets]
    total_no = sum(no)
    payouts = {f"outcome {m.id}": (yes[k] + total_no - no[k]) * SCALE
               for k, m in enumerate(e.markets)}
    if not e.is_multi:
        payouts["no winner"] = no[0] * SCALE
    return [f"event {e.id}: collateral {e.collateral} but resolution '{r}' pays {p}"
            for r, p in payouts.items() if p != e.collateral]
