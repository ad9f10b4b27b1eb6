"""The engine against the naive reference model, driven by random command sequences.

A Hypothesis state machine sends random commands of every kind (valid and invalid) to
the engine and to ``reference.ReferenceExchange`` and, after every step, checks that
they agree on everything observable (facts, balances, holdings, open orders, both book
views, markets, events) and that the engine's own invariants hold (money, exact
reservations, full collateralisation, uncrossed books, snapshot/restore). One run in
three starts with the exchange $100 short of its money limit, so deposits meet it. Two plain
tests hold the engine to the same model over longer runs: a long seeded command log (the
one ``test_determinism`` writes) and deep single-price queues with many cancellations.

Scale with ``PMARKET_STATEFUL_EXAMPLES`` (default 60); ``PMARKET_STATEFUL_DERANDOMIZE=1``
makes the run reproducible.
"""

from __future__ import annotations

import copy
import functools
import os
import random

import orjson
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pmarket.engine import (
    CancelAll,
    CancelOrder,
    Convert,
    CreateEvent,
    DeleteEvent,
    Deposit,
    DisarmHeartbeat,
    Engine,
    EventStatus,
    Expire,
    Heartbeat,
    Merge,
    MergeEvent,
    ModifyOrder,
    OrderType,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    ResolveEvent,
    SelfTrade,
    Side,
    Split,
    SplitEvent,
    TimeInForce,
    UpdateEvent,
    Withdraw,
)
from pmarket.engine.events import (
    BalanceState,
    BookLevel,
    Clock,
    EngineEvent,
    EventDeleted,
    EventState,
    PositionState,
    Rejected,
    as_dict,
    command_events,
    from_wire,
    to_wire,
)
from pmarket.engine.timers import MAX_TIMEOUT_MS, MIN_TIMEOUT_MS
from pmarket.engine.units import MAX_AMOUNT, MAX_QUANTITY, MAX_TOTAL_MONEY, SCALE

from .reference import ReferenceExchange
from .test_determinism import STRANGER as LOG_STRANGER
from .test_determinism import USERS as LOG_USERS
from .test_determinism import CommandLog

USERS = (1, 2, 3, 4, 5)
STRANGER = 6  # never deposits anything
EVERYONE = (*USERS, STRANGER)
UNKNOWN_ID = 999_999
CENTER = SCALE // 2  # prices are drawn a few ticks around 0.50, so books cross often
STARTING_CASH = 3_000_000  # $300, $140 of it split into shares: large orders run out


def _examples() -> int:
    return int(os.environ.get("PMARKET_STATEFUL_EXAMPLES", "60"))


# --- what the engine shows, in comparable shapes ----------------------------------------


def engine_positions(eng: Engine) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    out = {}
    for acct in eng.accounts.values():
        for p in acct.positions.values():
            row = (p.yes, p.no, p.yes_reserved, p.no_reserved)
            if any(row):
                out[(acct.user, p.market_id)] = row
    return out


def ref_state_keys(ref: ReferenceExchange) -> dict[tuple, object]:
    """Everything a state-bearing event can report, keyed like those events."""
    state: dict[tuple, object] = {}
    for user in ref.users:
        state[("balance", user)] = ref.balance(user)
    for key, row in ref.positions().items():
        state[("position", *key)] = row
    for key, qty in ref.all_levels().items():
        state[("book", *key)] = qty
    return state


def check_facts(events: list[EngineEvent], res) -> None:
    """The command's facts: fills in order, rejections by reason code, ledger entries.

    The reference model writes the facts it expects in their wire form (``to_wire``)."""
    def wire(kind: str) -> list[EngineEvent]:
        return [to_wire(e) for e in events if e.kind == kind]

    assert wire("fill") == res.fills
    rejected = [(e.user_id, e.command, e.reason, e.order_id, e.client_order_id)
                for e in events if isinstance(e, Rejected)]
    assert rejected == res.rejections
    assert wire("duplicate") == res.duplicates
    # The order of payouts within one resolution is the engine's business.
    assert sorted(wire("ledger"), key=repr) == sorted(res.ledger, key=repr)
    assert sorted(wire("payout"), key=repr) == sorted(res.payouts, key=repr)
    assert wire("resolved") == res.resolved
    assert [e.event_id for e in events if isinstance(e, EventDeleted)] == res.deleted
    assert wire("clock") == res.clock
    assert wire("dead_man") == res.dead_man
    states = [(e.event_id, e.status, e.title, e.tick, e.markets, e.winning_outcome_id,
               e.void, e.fee_rate) for e in events if isinstance(e, EventState)]
    assert states == res.event_states


def check_order_events(events: list[EngineEvent], ref: ReferenceExchange, res) -> None:
    """Every order the command changed is reported, with its final state."""
    last = {e.order_id: e for e in events if e.kind == "order"}
    missing = res.touched_orders - set(last)
    assert not missing, f"no order event for changed orders {missing}"
    for oid, event in last.items():
        assert oid in ref.orders, f"event for an order the reference never made: {event}"
        assert to_wire(event) == ref.orders[oid].as_event()


def check_event_layout(events: list[EngineEvent]) -> None:
    """What the command's time made due (if anything) comes first, closed by one clock
    marker counting the expired orders; then the command's."""
    clock = [i for i, e in enumerate(events) if e.kind == "clock"]
    assert len(clock) <= 1
    if clock:
        due = events[:clock[0]]
        assert due
        assert all(e.kind in ("order", "position", "balance", "book", "event", "dead_man")
                   for e in due)
        assert all(e.status in ("expired", "cancelled") for e in due if e.kind == "order")
        marker = events[clock[0]]
        assert isinstance(marker, Clock)
        assert sum(e.kind == "order" and e.status == "expired" for e in due) == marker.expired
        assert all(e.status == "closed" for e in due if e.kind == "event")
        assert all(e.expires_at_ms is None and e.fired_ms is not None
                   for e in due if e.kind == "dead_man")
    for event in events:
        as_dict(event)  # every field named by its layout


def check_refusals_change_nothing(cmd, events: list[EngineEvent], res) -> None:
    """A refused command (or batch item) reports its refusal and nothing else."""
    events = command_events(events)
    kinds = [e.kind for e in events]
    redelivered = res.rejections[:1] == [(None, type(cmd).__name__, "duplicate_command",
                                          None, None)]
    if isinstance(cmd, PlaceBatch) and not redelivered:
        starts = [i for i, e in enumerate(events) if e.kind == "batch_item"]
        ends = [*starts[1:], len(events)] if starts else []
        for start, end, oid in zip(starts, ends, res.primary_orders, strict=True):
            if oid is None:
                assert kinds[start + 1:end] == ["rejected"], events[start:end]
    elif res.rejections:
        assert kinds == ["rejected"], events


def check_own_order_comes_first(events: list[EngineEvent], res) -> None:
    """A placement's (each batch item's) or modification's first order event is its order."""
    if not res.primary_orders:
        return
    events = command_events(events)
    starts = [i + 1 for i, e in enumerate(events) if e.kind == "batch_item"] or [0]
    ends = [i - 1 for i in starts[1:]] + [len(events)]
    for start, end, oid in zip(starts, ends, res.primary_orders, strict=True):
        if oid is None:
            continue
        orders = [e.order_id for e in events[start:end] if e.kind == "order"]
        assert orders and orders[0] == oid, f"first order event {orders[:1]}, not {oid}"


def check_state_events(events: list[EngineEvent], before: dict, after: dict) -> None:
    """Balance, position and book events carry new full values, and none is missing."""
    last: dict[tuple, object] = {}
    for e in events:
        if isinstance(e, BalanceState):
            last[("balance", e.user_id)] = (e.available, e.reserved)
        elif isinstance(e, PositionState):
            last[("position", e.user_id, e.market_id)] = (e.yes, e.no, e.yes_reserved,
                                                          e.no_reserved)
        elif isinstance(e, BookLevel):
            last[("book", e.market_id, e.side, e.price)] = e.quantity
    zero = {"balance": (0, 0), "position": (0, 0, 0, 0), "book": 0}
    for key, value in last.items():
        assert value == after.get(key, zero[key[0]]), f"{key}: event says {value}"
    for key in before.keys() | after.keys():
        if before.get(key, zero[key[0]]) != after.get(key, zero[key[0]]):
            assert key in last, f"{key} changed without an event"


def check_book_view(eng: Engine, ref: ReferenceExchange, mid: int, view: str) -> None:
    """Levels, best prices, spread, doubled mid and last price, as the reference sees them."""
    book = eng.book(mid, view)
    bids, asks = ref.levels(mid, view)
    assert (book.market_id, book.view, book.bids, book.asks) == (mid, view, bids, asks)
    best_bid = bids[0][0] if bids else None
    best_ask = asks[0][0] if asks else None
    assert (book.best_bid, book.best_ask) == (best_bid, best_ask)
    both = bids and asks
    assert book.spread == (best_ask - best_bid if both else None)
    assert book.mid_x2 == (best_ask + best_bid if both else None)
    last = ref.markets[mid].last_price
    if view == "no" and last is not None:
        last = SCALE - last
    assert book.last_price == last
    top = eng.book(mid, view, depth=2)
    assert (top.bids, top.asks) == (bids[:2], asks[:2])


def check_engine_equals_reference(eng: Engine, ref: ReferenceExchange, users) -> None:
    """Clock, cash, holdings, open orders (in priority order), books, markets, events."""
    assert (eng.now_ms, eng.last_seq) == (ref.now, ref.last_seq)
    for user in users:
        assert eng.balance(user) == ref.balance(user), f"user {user}"
    assert set(eng.accounts) == ref.users
    assert engine_positions(eng) == ref.positions()
    assert {o.id: to_wire(o.snapshot()) for o in eng.orders.values()} == \
        {o.id: o.as_event() for o in ref.open_orders()}
    by_priority = sorted(ref.open_orders(), key=lambda o: o.arrival)
    for user in users:  # oldest first = time priority; answered from a cached view
        mine = [from_wire(o.as_event()) for o in by_priority if o.user == user]
        assert eng.open_orders(user) == mine
        for mid in {o.market_id for o in mine}:
            assert eng.open_orders(user, mid) == [o for o in mine if o.market_id == mid]
    t = eng.treasury
    assert (t.deposits, t.withdrawals, t.rounding, t.fees) == \
        (ref.deposits, ref.withdrawals, ref.rounding, ref.fees)
    assert t.held == ref.money_held() <= MAX_TOTAL_MONEY
    assert set(eng.markets) == set(ref.markets)
    for mid, m in ref.markets.items():
        for view in ("yes", "no"):
            check_book_view(eng, ref, mid, view)
        mv = eng.market_view(mid)
        open_interest = sum(ref.held(u, mid, "yes") for u in ref.users)
        assert (mv.event_id, mv.name, mv.status, mv.tick, mv.last_price, mv.volume,
                mv.open_interest) == (m.event, m.name, m.status, m.tick, m.last_price,
                                      m.volume, open_interest)
        assert (mv.best_bid, mv.best_ask) == (eng.best_bid(mid), eng.best_ask(mid))
    for o in ref.open_orders()[:20]:
        assert eng.order(o.id) == from_wire(o.as_event())
    closed = [oid for oid, o in ref.orders.items() if not o.is_open]
    for oid in closed[-20:]:
        assert eng.order(oid) is None
    assert set(eng.events) == set(ref.events)
    for eid, e in ref.events.items():
        ee = eng.events[eid]
        assert (ee.status, ee.collateral, ee.winning_outcome_id, ee.void, ee.title,
                ee.fee_rate, ee.fees) == \
            (e.status, e.collateral, e.winner, e.void, e.title, e.fee_rate, e.fees)
        assert [m.id for m in ee.markets] == e.markets


def check_engine_invariants(eng: Engine) -> None:
    """The engine's own invariants, recomputed here from its state."""
    report = eng.audit()
    assert report.ok, report.problems
    assert report.difference == 0
    t = eng.treasury
    cash = sum(a.available + a.reserved for a in eng.accounts.values())
    collateral = sum(e.collateral for e in eng.events.values())
    assert cash + collateral + t.fees + t.rounding == t.deposits - t.withdrawals
    need_cash: dict[int, int] = {}
    need_shares: dict[tuple[int, int, str], int] = {}
    for o in eng.orders.values():
        snap = o.snapshot()
        outcome, side = snap.outcome, snap.side
        if side == "buy":
            need_cash[o.user] = need_cash.get(o.user, 0) + o.price * o.remaining
        else:
            key = (o.user, o.market.id, outcome)
            need_shares[key] = need_shares.get(key, 0) + o.remaining
    for a in eng.accounts.values():
        assert a.available >= 0 and a.reserved == need_cash.get(a.user, 0)
        for p in a.positions.values():
            assert p.yes >= p.yes_reserved == need_shares.get((a.user, p.market_id, "yes"), 0)
            assert p.no >= p.no_reserved == need_shares.get((a.user, p.market_id, "no"), 0)
            assert min(p.yes_reserved, p.no_reserved) >= 0
    for mid in eng.markets:
        bid, ask = eng.best_bid(mid), eng.best_ask(mid)
        assert bid is None or ask is None or bid < ask, f"market {mid} is crossed"
    for event in eng.events.values():
        check_fully_collateralised(eng, event)


def check_fully_collateralised(eng: Engine, event) -> None:
    """An open event's collateral pays exactly what every possible resolution pays."""
    if event.status == "resolved":
        assert event.collateral == 0
        return
    ids = [m.id for m in event.markets]
    yes = dict.fromkeys(ids, 0)
    no = dict.fromkeys(ids, 0)
    for acct in eng.accounts.values():
        for mid in ids:
            p = acct.positions.get(mid)
            if p is not None:
                yes[mid] += p.yes
                no[mid] += p.no
    for winner in ids:
        pays = yes[winner] + sum(no[m] for m in ids if m != winner)
        assert pays * SCALE == event.collateral, f"event {event.id}, winner {winner}"
    if len(ids) == 1:
        assert no[ids[0]] * SCALE == event.collateral
    n = max(len(ids), 2)
    void = sum(yes[m] + no[m] * (n - 1) for m in ids) * SCALE
    assert void == n * event.collateral


def apply_to_both(eng: Engine, ref: ReferenceExchange, cmd) -> None:
    """Apply one command to the engine and the reference; their reports must agree."""
    before = ref_state_keys(ref)
    events = eng.apply(cmd)
    res = ref.apply(cmd)
    check_facts(events, res)
    check_order_events(events, ref, res)
    check_event_layout(events)
    check_own_order_comes_first(events, res)
    check_refusals_change_nothing(cmd, events, res)
    check_state_events(events, before, ref_state_keys(ref))


OPENING_CLOCK = 1_000


@functools.cache
def opening_state() -> tuple[dict, ReferenceExchange, int]:
    """Four events (ticks 0.01, 0.001, 0.0001; single and multi-outcome), funded users
    holding shares everywhere; built once, checked once, copied into every run."""
    setup = [  # fee rates: 7%, 1%, the most (25%), none
        CreateEvent(title="Rain tomorrow?", fee_rate=700),  # single outcome, 0.01: market 1
        CreateEvent(title="Final", outcomes=("A", "B", "C"), tick=10,
                    fee_rate=100),  # markets 2, 3, 4
        CreateEvent(title="Fine?", tick=1, fee_rate=2_500),  # single, 0.0001: market 5
        CreateEvent(title="Duel", outcomes=("X", "Y")),  # markets 6, 7
    ]
    setup += [Deposit(user_id=u, amount=STARTING_CASH) for u in USERS]
    setup += [Split(user_id=u, market_id=m, quantity=20) for u in USERS for m in range(1, 8)]
    eng, ref = Engine(), ReferenceExchange()
    for seq, cmd in enumerate(setup, 1):
        cmd.seq, cmd.ts_ms = seq, OPENING_CLOCK
        apply_to_both(eng, ref, cmd)
    check_engine_invariants(eng)
    return eng.snapshot(), ref, len(setup)


WHALE = USERS[0]
ROOM_NEAR_THE_CAP = 1_000_000  # $100: ordinary deposits sometimes fit, sometimes not


@functools.cache
def near_cap_state() -> tuple[dict, ReferenceExchange, int]:
    """The opening state after a whale has filled the exchange to $100 short of
    ``MAX_TOTAL_MONEY``, so that deposits run into the cap and withdrawals free room."""
    snapshot, opening_ref, seq = opening_state()
    eng, ref = Engine.restore(snapshot), copy.deepcopy(opening_ref)
    while (room := MAX_TOTAL_MONEY - ref.money_held()) > ROOM_NEAR_THE_CAP:
        seq += 1
        cmd = Deposit(user_id=WHALE, amount=min(MAX_AMOUNT, room - ROOM_NEAR_THE_CAP),
                      seq=seq, ts_ms=OPENING_CLOCK)
        apply_to_both(eng, ref, cmd)
    assert eng.treasury.held == MAX_TOTAL_MONEY - ROOM_NEAR_THE_CAP
    check_engine_invariants(eng)
    return eng.snapshot(), ref, seq


# --- the machine -----------------------------------------------------------------------


class ExchangeMachine(RuleBasedStateMachine):
    """Random commands of every kind, applied to the engine and the reference."""

    def __init__(self) -> None:
        super().__init__()
        snapshot, ref, last_seq = opening_state()
        self.engine = Engine.restore(snapshot)
        self.ref = copy.deepcopy(ref)
        self.seq = last_seq
        self.clock = OPENING_CLOCK
        self.last_cmd = None
        self.hot: list[int] = []

    @initialize(data=st.data())
    def choose_busy_markets(self, data) -> None:
        """Most orders of one run go to two or three markets, so that books fill and cross."""
        self.hot = data.draw(st.lists(st.integers(1, 7), min_size=2, max_size=3, unique=True),
                             label="busy markets")

    @initialize(near_cap=st.integers(0, 2).map(lambda k: k == 2))
    def maybe_start_near_the_money_cap(self, near_cap: bool) -> None:
        """One run in three starts with the exchange all but full (``near_cap_state``)."""
        if near_cap:
            snapshot, ref, last_seq = near_cap_state()
            self.engine = Engine.restore(snapshot)
            self.ref = copy.deepcopy(ref)
            self.seq = last_seq

    # --- running one command on both -------------------------------------------------

    def _run(self, cmd, *, sequenced: bool = True) -> None:
        if sequenced:
            self.seq += 1
            cmd.seq = self.seq
        cmd.ts_ms = self.clock
        self.last_cmd = cmd
        apply_to_both(self.engine, self.ref, cmd)

    def _advance(self, data) -> None:
        self.clock += data.draw(st.sampled_from((0, 0, 1, 1, 2)), label="dt")

    # --- drawing ids and values --------------------------------------------------------

    def _market(self, data) -> int:
        """Mostly a busy market; sometimes any market, rarely one that does not exist."""
        live = sorted(self.ref.markets)
        active = [m for m in live if self.ref.markets[m].status == "active"]
        busy = [m for m in self.hot if m in active] or active[:3]
        pick = data.draw(st.integers(0, 19), label="which market")
        if not live or pick == 0:
            return data.draw(st.sampled_from((UNKNOWN_ID, 0)), label="unknown market")
        if busy and pick < 15:
            return data.draw(st.sampled_from(busy), label="busy market")
        return data.draw(st.sampled_from(live), label="market")

    def _event(self, data) -> int:
        live = sorted(self.ref.events)
        if not live or data.draw(st.integers(0, 14), label="unknown event?") == 0:
            return UNKNOWN_ID
        return data.draw(st.sampled_from(live), label="event")

    def _tick_of(self, market_id: int) -> int:
        m = self.ref.markets.get(market_id)
        return m.tick if m else 100

    def _price(self, data, market_id: int, outcome: Outcome, invalid_one_in: int = 15):
        tick = self._tick_of(market_id)
        if data.draw(st.integers(0, invalid_one_in - 1), label="invalid price?") == 0:
            off_grid = CENTER + tick // 2 if tick > 1 else SCALE
            return data.draw(st.sampled_from((0, SCALE, -tick, off_grid, None)),
                             label="invalid price")
        yes_price = CENTER + tick * data.draw(st.integers(-4, 4), label="ticks from 0.50")
        return yes_price if outcome is Outcome.YES else SCALE - yes_price

    def _quantity(self, data, low: int = 1, high: int = 10) -> int:
        pick = data.draw(st.integers(0, 19), label="odd quantity?")
        if pick == 0:
            return data.draw(st.sampled_from((0, -1, MAX_QUANTITY + 1)), label="bad qty")
        if pick == 1:
            return data.draw(st.integers(200, 5_000), label="big qty")  # runs out of funds
        return data.draw(st.integers(low, high), label="quantity")

    def _user(self, data) -> int:
        return data.draw(st.sampled_from((*USERS, *USERS, STRANGER)), label="user")

    def _order_id(self, data) -> tuple[int, int]:
        """An order id (mostly an open one) and the user who asks (mostly its owner)."""
        open_ids = sorted(o.id for o in self.ref.open_orders())
        all_ids = sorted(self.ref.orders)
        pick = data.draw(st.integers(0, 19), label="which order")
        if open_ids and pick < 16:
            oid = data.draw(st.sampled_from(open_ids), label="open order")
        elif all_ids and pick < 19:
            oid = data.draw(st.sampled_from(all_ids), label="any order")
        else:
            return UNKNOWN_ID, self._user(data)
        owner = self.ref.orders[oid].user
        if data.draw(st.integers(0, 9), label="someone else's?") == 0:
            return oid, data.draw(st.sampled_from([u for u in EVERYONE if u != owner]))
        return oid, owner

    def _order(self, data, user: int) -> PlaceOrder:
        market = self._market(data)
        outcome = data.draw(st.sampled_from(Outcome), label="outcome")
        side = data.draw(st.sampled_from(Side), label="side")
        is_market = data.draw(st.integers(0, 4), label="market order?") == 0
        if is_market:
            tifs = (TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK,
                    TimeInForce.GTD)
            price = None if data.draw(st.booleans(), label="unprotected?") else \
                self._price(data, market, outcome)
        else:
            tifs = (TimeInForce.GTC,) * 4 + (TimeInForce.GTD,) * 2 + (TimeInForce.IOC,
                                                                      TimeInForce.FOK)
            price = self._price(data, market, outcome)
        tif = data.draw(st.sampled_from(tifs), label="tif")
        expires = None
        if tif is TimeInForce.GTD:
            expires = self.clock + data.draw(st.sampled_from((-1, 0, 1, 2, 3, 5, 8)),
                                             label="expires in")
        elif data.draw(st.integers(0, 29), label="stray expiry?") == 0:
            expires = self.clock + 5
        stp = self._stp(data)
        coid = None
        if data.draw(st.integers(0, 2), label="coid?") == 0:
            coid = f"c{data.draw(st.integers(0, 9), label='coid')}"
        # The per-account open-order limit the server stamps: none, at, just above, 1.
        held = sum(o.user == user for o in self.ref.open_orders())
        limit = data.draw(st.sampled_from((0, 0, 0, held, held + 1, 1)), label="max open")
        return PlaceOrder(
            user_id=user, market_id=market, outcome=outcome, side=side,
            quantity=self._quantity(data), price=price,
            order_type=OrderType.MARKET if is_market else OrderType.LIMIT, tif=tif,
            expires_at_ms=expires, post_only=data.draw(st.integers(0, 4), label="po") == 0,
            client_order_id=coid, stp=stp, max_open_orders=limit)

    # --- rules: trading ----------------------------------------------------------------

    @rule(data=st.data())
    def place_order(self, data) -> None:
        self._advance(data)
        self._run(self._order(data, self._user(data)))

    @rule(data=st.data())
    def place_crossing_order(self, data) -> None:
        """An order priced at or through the other side's best price: it trades."""
        self._advance(data)
        market = self._market(data)
        tick = self._tick_of(market)
        bids, asks = self.ref.levels(market) if market in self.ref.markets else ([], [])
        is_bid = data.draw(st.booleans(), label="taker is a bid")
        through = tick * data.draw(st.integers(0, 2), label="ticks through")
        if is_bid:
            yes_price = min((asks[0][0] if asks else CENTER) + through, SCALE - tick)
        else:
            yes_price = max((bids[0][0] if bids else CENTER) - through, tick)
        outcome = data.draw(st.sampled_from(Outcome), label="outcome")
        side = Side.BUY if is_bid == (outcome is Outcome.YES) else Side.SELL
        tif = data.draw(st.sampled_from((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC,
                                         TimeInForce.FOK)), label="tif")
        is_market = data.draw(st.integers(0, 4), label="market order?") == 0
        price = yes_price if outcome is Outcome.YES else SCALE - yes_price
        if is_market and data.draw(st.booleans(), label="unprotected?"):
            price = None
        self._run(PlaceOrder(
            user_id=self._user(data), market_id=market, outcome=outcome, side=side,
            quantity=data.draw(st.integers(1, 12), label="quantity"), price=price,
            order_type=OrderType.MARKET if is_market else OrderType.LIMIT, tif=tif,
            stp=self._stp(data)))

    def _stp(self, data) -> SelfTrade:
        return data.draw(st.sampled_from((SelfTrade.CANCEL_RESTING,) * 3 + tuple(SelfTrade)),
                         label="stp")

    @rule(data=st.data())
    def place_resting_limit_order(self, data) -> None:
        user = data.draw(st.sampled_from(USERS), label="user")
        market = self._market(data)
        outcome = data.draw(st.sampled_from(Outcome), label="outcome")
        self._run(PlaceOrder(
            user_id=user, market_id=market, outcome=outcome,
            side=data.draw(st.sampled_from(Side), label="side"),
            quantity=data.draw(st.integers(1, 8), label="quantity"),
            price=self._price(data, market, outcome, invalid_one_in=50)))

    @rule(data=st.data())
    def place_batch(self, data) -> None:
        self._advance(data)
        user = self._user(data)
        size = data.draw(st.integers(0, 4), label="batch size")
        orders = []
        for _ in range(size):
            owner = user if data.draw(st.integers(0, 9), label="foreign?") else \
                self._user(data)
            orders.append(self._order(data, owner))
        self._run(PlaceBatch(user_id=user, orders=tuple(orders)))

    @rule(data=st.data())
    def modify_order(self, data) -> None:
        self._advance(data)
        oid, user = self._order_id(data)
        order = self.ref.orders.get(oid)
        price = quantity = None
        if order is not None and data.draw(st.booleans(), label="new price?"):
            outcome = Outcome(order.outcome)
            price = self._price(data, order.market, outcome, invalid_one_in=12)
        if order is not None and data.draw(st.integers(0, 4), label="new qty?") < 3:
            quantity = order.quantity + data.draw(st.integers(-4, 4), label="qty change")
        self._run(ModifyOrder(user_id=user, order_id=oid, price=price, quantity=quantity))

    @rule(data=st.data())
    def cancel_orders(self, data) -> None:
        """Cancel one order, or all of a user's (in one market or everywhere)."""
        if data.draw(st.integers(0, 3), label="cancel all?") == 0:
            market = self._market(data) if data.draw(st.booleans(), label="one market?") \
                else None
            self._run(CancelAll(user_id=self._user(data), market_id=market))
            return
        oid, user = self._order_id(data)
        self._run(CancelOrder(user_id=user, order_id=oid))

    @rule(data=st.data())
    def advance_clock(self, data) -> None:
        """Time passes (gtd orders expire); a stale timestamp never turns it back."""
        dt = data.draw(st.sampled_from((-3, 0, 1, 2, 3, 6)), label="dt")
        self.clock = max(0, self.clock + dt)
        self._run(Expire())

    @rule(data=st.data())
    def seconds_pass(self, data) -> None:
        """A jump of about a dead-man timeout: a deadline is missed, met exactly, or not
        yet reached; half the time the runtime ticks, else the next command, whatever it
        is (a heartbeat: the race), carries the new time."""
        self.clock += data.draw(st.sampled_from(
            (MIN_TIMEOUT_MS - 1, MIN_TIMEOUT_MS, MIN_TIMEOUT_MS + 1, MIN_TIMEOUT_MS + 2)),
            label="jump")
        if data.draw(st.booleans(), label="tick?"):
            self._run(Expire())

    @rule(data=st.data())
    def heartbeat(self, data) -> None:
        """Arm or re-arm a user's dead-man switch (now and then a bad one), or disarm it."""
        user = self._user(data)
        if data.draw(st.integers(0, 19), label="bad user?") == 0:
            user = data.draw(st.sampled_from((0, -1, 2**62 + 1)), label="bad user")
        if data.draw(st.integers(0, 3), label="disarm?") == 0:
            self._run(DisarmHeartbeat(user_id=user))
            return
        timeout = data.draw(st.sampled_from(
            (MIN_TIMEOUT_MS, MIN_TIMEOUT_MS, MIN_TIMEOUT_MS + 2, MAX_TIMEOUT_MS,
             MIN_TIMEOUT_MS - 1, MAX_TIMEOUT_MS + 1)), label="timeout")
        self._run(Heartbeat(user_id=user, timeout_ms=timeout))

    @rule()
    def redeliver_last_command(self) -> None:
        """A command delivered twice is refused the second time (same seq)."""
        if self.last_cmd is not None:
            self._run(self.last_cmd, sequenced=False)

    # --- rules: money and collateral ---------------------------------------------------

    @rule(data=st.data())
    def move_money(self, data) -> None:
        user = self._user(data)
        room = MAX_TOTAL_MONEY - self.ref.money_held()  # exactly what still fits
        amount = data.draw(st.one_of(
            st.integers(1, 300_000), st.sampled_from((0, -5, MAX_AMOUNT, MAX_AMOUNT + 1)),
            st.integers(300_000, 2_000_000), st.sampled_from((room, room + 1))),
            label="amount")
        kind = data.draw(st.sampled_from((Deposit, Withdraw, Withdraw)), label="kind")
        if kind is Deposit:
            # The per-account limit the server stamps: none, exactly enough, one unit short.
            after = self.ref.cash.get(user, 0) + amount
            limit = data.draw(st.sampled_from((0, 0, after, after - 1, 1)), label="limit")
            cmd = Deposit(user_id=user, amount=amount, max_balance=max(0, limit))
        else:
            cmd = Withdraw(user_id=user, amount=amount)
        # seq 0: an unsequenced command (e.g. from a test harness) is applied as it comes
        self._run(cmd, sequenced=data.draw(st.integers(0, 9), label="unsequenced?") > 0)

    @rule(data=st.data())
    def split_or_merge(self, data) -> None:
        kind = data.draw(st.sampled_from((Split, Merge)), label="kind")
        self._run(kind(user_id=self._user(data), market_id=self._market(data),
                       quantity=self._quantity(data, 1, 6)))

    @rule(data=st.data())
    def event_collateral_operation(self, data) -> None:
        user, event_id = self._user(data), self._event(data)
        quantity = self._quantity(data, 1, 4)
        kind = data.draw(st.sampled_from((SplitEvent, MergeEvent, Convert, Convert)))
        if kind is not Convert:
            self._run(kind(user_id=user, event_id=event_id, quantity=quantity))
            return
        event = self.ref.events.get(event_id)
        ids = list(event.markets) if event else [1]
        outcome_ids = data.draw(st.one_of(
            st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True),
            st.lists(st.sampled_from([*ids, UNKNOWN_ID]), max_size=3)), label="outcomes")
        self._run(Convert(user_id=user, event_id=event_id, outcome_ids=tuple(outcome_ids),
                          quantity=quantity))

    # --- rules: admin ------------------------------------------------------------------

    @rule(data=st.data())
    def admin(self, data) -> None:
        action = data.draw(st.sampled_from(
            ("create", "create", "rename", "close", "close", "reopen", "reopen", "resolve",
             "delete", "close_time", "fee")), label="admin action")
        if action == "create":
            self._run(self._create_event(data))
            return
        event_id = self._event(data)
        if action == "rename":
            title = data.draw(st.sampled_from(("New title", "  ", "Later")), label="title")
            self._run(UpdateEvent(event_id=event_id, title=title))
        elif action == "fee":
            self._run(UpdateEvent(event_id=event_id, fee_rate=self._fee_rate(data)))
        elif action in ("close", "reopen"):
            status = EventStatus.CLOSED if action == "close" else EventStatus.ACTIVE
            if data.draw(st.integers(0, 9), label="bad status?") == 0:
                status = EventStatus.RESOLVED
            self._run(UpdateEvent(event_id=event_id, status=status))
        elif action == "close_time":
            self._run(UpdateEvent(event_id=event_id, close_time_ms=self._close_time(data)))
        elif action == "resolve":
            self._run(self._resolution(data, event_id))
        else:
            self._run(DeleteEvent(event_id=event_id))

    def _create_event(self, data) -> CreateEvent:
        n = data.draw(st.sampled_from((0, 0, 2, 3, 4)), label="outcomes")
        names = tuple(f"O{k}" for k in range(n))
        if data.draw(st.integers(0, 9), label="invalid event?") == 0:
            bad = data.draw(st.sampled_from(("title", "tick", "names")), label="flaw")
            if bad == "title":
                return CreateEvent(title="   ", outcomes=names)
            if bad == "tick":
                return CreateEvent(title="E", tick=data.draw(st.sampled_from((0, 5, 1000))))
            return CreateEvent(title="E", outcomes=("A", "A"))
        tick = data.draw(st.sampled_from((100, 10, 1)), label="tick")
        close_ms = self._close_time(data) if data.draw(st.booleans(), label="closes?") \
            else None
        return CreateEvent(title="E", outcomes=names, tick=tick, close_time_ms=close_ms,
                           fee_rate=self._fee_rate(data))

    def _close_time(self, data) -> int:
        """A close time just past, now, or soon (within a few steps or a time jump)."""
        return max(0, self.clock + data.draw(
            st.sampled_from((-1, 0, 1, 3, 8, MIN_TIMEOUT_MS)), label="close in"))

    @staticmethod
    def _fee_rate(data) -> int:
        """Mostly a valid rate (none, a little, Kalshi's 7%, the most), now and then not."""
        return data.draw(st.sampled_from((0, 0, 1, 700, 700, 2_500, 2_501, -1)),
                         label="fee rate")

    def _resolution(self, data, event_id: int) -> ResolveEvent:
        event = self.ref.events.get(event_id)
        ids = list(event.markets) if event else [UNKNOWN_ID]
        how = data.draw(st.sampled_from(("winner", "winner", "none", "void", "bad")),
                        label="resolution")
        if how == "winner":
            return ResolveEvent(event_id=event_id,
                                winning_outcome_id=data.draw(st.sampled_from(ids)))
        if how == "none":  # valid for a single-outcome event only
            return ResolveEvent(event_id=event_id)
        if how == "void":
            return ResolveEvent(event_id=event_id, void=True)
        return ResolveEvent(event_id=event_id, void=data.draw(st.booleans()),
                            winning_outcome_id=data.draw(st.sampled_from((ids[0], 0))))

    # --- rules: recovery ---------------------------------------------------------------

    @rule()
    def restart_from_snapshot(self) -> None:
        """Carry on with an engine restored from a JSON round trip of a snapshot."""
        data = orjson.loads(orjson.dumps(self.engine.snapshot()))
        self.engine = Engine.restore(data)

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def engine_invariants_hold(self) -> None:
        check_engine_invariants(self.engine)

    @invariant()
    def engine_state_equals_reference(self) -> None:
        check_engine_equals_reference(self.engine, self.ref, EVERYONE)

    @invariant()
    def timers_equal_reference(self) -> None:
        t = self.engine.timers
        assert t.closes == self.ref.closes
        assert {u: [s.deadline_ms, s.timeout_ms, s.fired_ms]
                for u, s in t.switches.items()} == self.ref.switches
        due = [*self.ref.closes.values(), *(s[0] for s in self.ref.switches.values() if s[0]),
               *(o.expires_at for o in self.ref.open_orders() if o.tif == "gtd")]
        assert self.engine.next_due_ms() == (min(due) if due else None)

    @invariant()
    def snapshot_restores_to_the_same_digest(self) -> None:
        """An engine restored from a JSON round trip of the snapshot snapshots to the same
        bytes: what ``digest`` hashes, compared without snapshotting twice and hashing."""
        raw = orjson.dumps(self.engine.snapshot())
        assert orjson.dumps(Engine.restore(orjson.loads(raw)).snapshot()) == raw


ExchangeMachine.TestCase.settings = settings(
    max_examples=_examples(),
    stateful_step_count=60,
    deadline=None,
    derandomize=os.environ.get("PMARKET_STATEFUL_DERANDOMIZE") == "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestEngineAgreesWithReferenceModel = ExchangeMachine.TestCase


@pytest.mark.parametrize("seed", [11])
def test_a_long_random_command_log_agrees_with_the_reference(seed):
    """Thousands of commands (deep queues, many events) without Hypothesis's overhead."""
    log = CommandLog(seed).write(5_000)
    eng, ref = Engine(), ReferenceExchange()
    users = (*LOG_USERS, LOG_STRANGER)
    for i, cmd in enumerate(log):
        apply_to_both(eng, ref, cmd)
        if i % 100 == 0:
            check_engine_equals_reference(eng, ref, users)
            check_engine_invariants(eng)
    check_engine_equals_reference(eng, ref, users)
    check_engine_invariants(eng)
    assert sum(m.volume for m in ref.markets.values()) > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_deep_queues_with_many_cancellations_agree_with_the_reference(seed):
    """Hundreds of orders at two prices, most cancelled (compaction), then traded through."""
    rng = random.Random(seed)
    snapshot, opening_ref, seq = opening_state()
    eng, ref = Engine.restore(snapshot), copy.deepcopy(opening_ref)
    for step in range(1_500):
        roll = rng.random()
        user = rng.choice(USERS)
        if roll < 0.6:
            is_bid = rng.random() < 0.5
            yes_price = CENTER - 100 if is_bid else CENTER  # two levels, never crossing
            outcome = rng.choice(list(Outcome))
            side = Side.BUY if is_bid == (outcome is Outcome.YES) else Side.SELL
            cmd = PlaceOrder(user_id=user, market_id=1, outcome=outcome, side=side,
                             quantity=rng.randint(1, 3),
                             price=yes_price if outcome is Outcome.YES else SCALE - yes_price)
        elif roll < 0.93:
            mine = [o.id for o in ref.open_orders() if o.user == user]
            cmd = CancelOrder(user_id=user, order_id=rng.choice(mine) if mine else 1)
        elif roll < 0.97:
            cmd = Split(user_id=user, market_id=1, quantity=10)
        else:  # sweep part of one side
            cmd = PlaceOrder(user_id=user, market_id=1, outcome=Outcome.YES,
                             side=rng.choice(list(Side)), quantity=rng.randint(5, 60),
                             order_type=OrderType.MARKET, stp=rng.choice(list(SelfTrade)))
        seq += 1
        cmd.seq, cmd.ts_ms = seq, OPENING_CLOCK + step
        apply_to_both(eng, ref, cmd)
        if step % 50 == 0:
            check_engine_equals_reference(eng, ref, EVERYONE)
            check_engine_invariants(eng)
    check_engine_equals_reference(eng, ref, EVERYONE)
