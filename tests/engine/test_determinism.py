"""Determinism: the same command log always yields the same events and the same state.

A seeded ``random.Random`` writes a log of thousands of commands of every kind (valid
and invalid, sequenced, unsequenced and redelivered). Two fresh engines fed the log must
emit identical events and end with identical digests; an engine restored from a
snapshot (through JSON) taken anywhere in the log must carry on exactly like the one
that never stopped; and every event must survive a JSON round trip.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import orjson
import pytest

from pmarket.engine import (
    CancelAll,
    CancelOrder,
    Convert,
    CreateEvent,
    DeleteEvent,
    Deposit,
    Engine,
    EventStatus,
    Expire,
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
from pmarket.engine.events import as_dict, from_wire, to_wire
from pmarket.engine.units import SCALE

LOG_LENGTH = 6_000
SEEDS = (1, 2, 3)
USERS = (1, 2, 3, 4, 5, 6)
STRANGER = 7  # never deposits


class CommandLog:
    """Writes a random but reproducible command log.

    A private scout engine is fed the log as it is written, so that most commands aim
    at live markets and open orders (a log of blind guesses would mostly be refused).
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.scout = Engine()
        self.seq = 0
        self.ts = 1_000
        self.commands: list = []
        self.with_coid: list[PlaceOrder] = []  # placements a retry may repeat

    def write(self, length: int) -> list:
        self._opening()
        kinds = [
            (self._place, 30), (self._batch, 5), (self._modify, 10), (self._cancel, 7),
            (self._cancel_all, 2), (self._expire, 3), (self._money, 6), (self._split, 6),
            (self._event_op, 5), (self._create, 2), (self._update, 3), (self._resolve, 1),
            (self._delete, 1), (self._redeliver, 2),
        ]
        makers, weights = zip(*kinds, strict=True)
        while len(self.commands) < length:
            self.rng.choices(makers, weights)[0]()
        return self.commands

    # --- plumbing ----------------------------------------------------------------------

    def _emit(self, cmd, sequenced: bool = True) -> None:
        self.ts += self.rng.choice((0, 0, 1, 1, 2, 5))
        if self.rng.random() < 0.03:
            cmd.ts_ms = self.ts - 7  # a late timestamp never turns the clock back
        else:
            cmd.ts_ms = self.ts
        if sequenced and self.rng.random() > 0.02:
            self.seq += self.rng.choice((1, 1, 1, 2))  # gaps are fine, repeats are not
            cmd.seq = self.seq
        self.commands.append(cmd)
        self.scout.apply(cmd)

    def _user(self) -> int:
        return self.rng.choice((*USERS, *USERS, STRANGER))

    def _market(self) -> int:
        markets = self.scout.markets
        active = sorted(m for m, market in markets.items() if market.status == "active")
        roll = self.rng.random()
        if not markets or roll < 0.04:
            return self.rng.choice((0, 99_999))
        if active and roll < 0.9:
            return self.rng.choice(active[:6])
        return self.rng.choice(sorted(markets))

    def _event(self) -> int:
        events = self.scout.events
        if not events or self.rng.random() < 0.05:
            return 99_999
        live = sorted(e for e, event in events.items() if event.status != "resolved")
        return self.rng.choice(live[:4] if live and self.rng.random() < 0.9 else sorted(events))

    def _open_order(self) -> tuple[int, int]:
        """(order id, user): mostly an open order and its owner."""
        orders = self.scout.orders
        if not orders or self.rng.random() < 0.1:
            return self.rng.randint(1, 99_999), self._user()
        oid = self.rng.choice(sorted(orders))
        return oid, orders[oid].user if self.rng.random() < 0.9 else self._user()

    def _ticks(self, market: int) -> int:
        m = self.scout.markets.get(market)
        return m.tick if m else 100

    def _quantity(self, high: int = 10):
        roll = self.rng.random()
        if roll < 0.03:
            return self.rng.choice((0, -2, 10**10))
        if roll < 0.06:
            return self.rng.randint(500, 20_000)  # beyond anyone's means
        return self.rng.randint(1, high)

    def _price(self, market: int, outcome: Outcome):
        tick = self._ticks(market)
        if self.rng.random() < 0.04:
            return self.rng.choice((0, SCALE, -tick, None, CENTER_OFF_GRID.get(tick, SCALE)))
        yes_price = SCALE // 2 + tick * self.rng.randint(-5, 5)
        return yes_price if outcome is Outcome.YES else SCALE - yes_price

    # --- command makers ----------------------------------------------------------------

    def _opening(self) -> None:
        for user in USERS:
            self._emit(Deposit(user_id=user, amount=20_000_000))
        for title, outcomes, tick, fee_rate in (
                ("Rain?", (), 100, 700), ("Final", ("A", "B", "C"), 10, 0),
                ("Fine?", (), 1, 2_500), ("Duel", ("X", "Y"), 100, 100)):
            self._create_event(title, outcomes, tick, fee_rate)

    def _create_event(self, title: str, outcomes: tuple, tick: int, fee_rate: int = 0) -> None:
        """Create an event; if it exists, most users buy complete sets of it to trade."""
        before = set(self.scout.markets)
        self._emit(CreateEvent(title=title, outcomes=outcomes, tick=tick, fee_rate=fee_rate))
        for market in sorted(set(self.scout.markets) - before):
            for user in self.rng.sample(USERS, 4):
                self._emit(Split(user_id=user, market_id=market, quantity=30))

    def _order(self, user: int) -> PlaceOrder:
        rng = self.rng
        market = self._market()
        outcome, side = rng.choice(list(Outcome)), rng.choice(list(Side))
        is_market = rng.random() < 0.15
        price = self._price(market, outcome)
        if is_market and rng.random() < 0.5:
            price = None
        tif = rng.choice((TimeInForce.GTC,) * 5 + (TimeInForce.GTD,) * 2 +
                         (TimeInForce.IOC, TimeInForce.FOK))
        expires = None
        if tif is TimeInForce.GTD or rng.random() < 0.01:
            expires = self.ts + rng.choice((-1, 0, 1, 3, 5, 10, 30))
        coid = f"k{rng.randint(0, 40)}" if rng.random() < 0.2 else None
        stp = rng.choice((SelfTrade.CANCEL_RESTING,) * 4 + tuple(SelfTrade))
        return PlaceOrder(
            user_id=user, market_id=market, outcome=outcome, side=side,
            quantity=self._quantity(), price=price,
            order_type=OrderType.MARKET if is_market else OrderType.LIMIT, tif=tif,
            expires_at_ms=expires, post_only=rng.random() < 0.1, client_order_id=coid,
            stp=stp)

    def _place(self) -> None:
        if self.with_coid and self.rng.random() < 0.1:  # a retry: the same placement again
            self._emit(dataclasses.replace(self.rng.choice(self.with_coid), seq=0, ts_ms=0))
            return
        order = self._order(self._user())
        if order.client_order_id is not None:
            self.with_coid.append(order)
        self._emit(order)

    def _batch(self) -> None:
        user = self._user()
        orders = tuple(self._order(user if self.rng.random() < 0.9 else self._user())
                       for _ in range(self.rng.randint(0, 5)))
        self._emit(PlaceBatch(user_id=user, orders=orders))

    def _modify(self) -> None:
        (oid, user), rng = self._open_order(), self.rng
        order = self.scout.orders.get(oid)
        market = order.market.id if order else self._market()
        outcome = Outcome(order.snapshot().outcome) if order else Outcome.YES
        price = self._price(market, outcome) if rng.random() < 0.6 else None
        quantity = None
        if rng.random() < 0.6:
            quantity = (order.quantity if order else 5) + rng.randint(-4, 4)
        self._emit(ModifyOrder(user_id=user, order_id=oid, price=price, quantity=quantity))

    def _cancel(self) -> None:
        oid, user = self._open_order()
        self._emit(CancelOrder(user_id=user, order_id=oid))

    def _cancel_all(self) -> None:
        market = self._market() if self.rng.random() < 0.5 else None
        self._emit(CancelAll(user_id=self._user(), market_id=market))

    def _expire(self) -> None:
        self.ts += self.rng.choice((1, 5, 20))
        self._emit(Expire())

    def _money(self) -> None:
        kind = self.rng.choice((Deposit, Withdraw))
        amount = self.rng.choice((self.rng.randint(1, 500_000), 0, -1, 10**16))
        self._emit(kind(user_id=self._user(), amount=amount), sequenced=self.rng.random() > 0.1)

    def _split(self) -> None:
        kind = self.rng.choice((Split, Merge))
        self._emit(kind(user_id=self._user(), market_id=self._market(),
                        quantity=self._quantity(8)))

    def _event_op(self) -> None:
        event_id, user, quantity = self._event(), self._user(), self._quantity(5)
        kind = self.rng.choice((SplitEvent, MergeEvent, Convert, Convert))
        if kind is Convert:
            event = self.scout.events.get(event_id)
            markets = [m.id for m in event.markets] if event else [1]
            chosen = self.rng.sample(markets, self.rng.randint(1, len(markets)))
            if self.rng.random() < 0.1:
                chosen.append(self.rng.choice((chosen[0], 9_999)))
            self._emit(Convert(user_id=user, event_id=event_id, outcome_ids=tuple(chosen),
                               quantity=quantity))
        else:
            self._emit(kind(user_id=user, event_id=event_id, quantity=quantity))

    def _create(self) -> None:
        outcomes = self.rng.choice(((), (), ("A", "B"), ("A", "B", "C", "D"), ("A", "A")))
        title = self.rng.choice(("Event", "Event", " "))
        self._create_event(title, outcomes, self.rng.choice((100, 10, 1, 100, 50)),
                           self.rng.choice((0, 0, 700, 2_500, 2_501)))

    def _update(self) -> None:
        status = self.rng.choice((EventStatus.CLOSED, EventStatus.ACTIVE, EventStatus.ACTIVE,
                                  EventStatus.RESOLVED, None))
        title = self.rng.choice((None, None, "Renamed", ""))
        fee_rate = self.rng.choice((None, None, None, 0, 300, -1))
        self._emit(UpdateEvent(event_id=self._event(), status=status, title=title,
                               fee_rate=fee_rate))

    def _resolve(self) -> None:
        event_id = self._event()
        event = self.scout.events.get(event_id)
        markets = [m.id for m in event.markets] if event else [99_999]
        how = self.rng.choice(("winner", "winner", "none", "void"))
        if how == "winner":
            self._emit(ResolveEvent(event_id=event_id,
                                    winning_outcome_id=self.rng.choice(markets)))
        else:
            self._emit(ResolveEvent(event_id=event_id, void=how == "void"))

    def _delete(self) -> None:
        self._emit(DeleteEvent(event_id=self._event()))

    def _redeliver(self) -> None:
        if self.commands:  # same seq: refused the second time (unsequenced: applied again)
            self.commands.append(self.commands[-1])
            self.scout.apply(self.commands[-1])


CENTER_OFF_GRID = {100: SCALE // 2 + 50, 10: SCALE // 2 + 5}


def run(eng: Engine, commands: list) -> list[list[tuple]]:
    """Apply each command; the events of each, in order."""
    return [eng.apply(cmd) for cmd in commands]


def json_round_trip_restore(eng: Engine) -> Engine:
    return Engine.restore(orjson.loads(orjson.dumps(eng.snapshot())))


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def log(request) -> list:
    return CommandLog(request.param).write(LOG_LENGTH)


@pytest.fixture(scope="module")
def reference_run(log) -> tuple[list[list[tuple]], str]:
    eng = Engine()
    events = run(eng, log)
    return events, eng.digest()


def test_the_log_exercises_every_kind_of_command_and_outcome(log, reference_run):
    """Guards the other tests against a log too tame to prove anything."""
    events, _ = reference_run
    assert Counter(type(c).__name__ for c in log).keys() >= {
        "PlaceOrder", "PlaceBatch", "ModifyOrder", "CancelOrder", "CancelAll", "Expire",
        "Deposit", "Withdraw", "Split", "Merge", "SplitEvent", "MergeEvent", "Convert",
        "CreateEvent", "UpdateEvent", "ResolveEvent", "DeleteEvent"}
    flat = [e for per_cmd in events for e in per_cmd]
    fills = Counter(e.settlement for e in flat if e.kind == "fill")
    assert set(fills) == {"transfer_yes", "mint", "merge", "transfer_no"}
    assert sum(fills.values()) > 150
    fees = Counter(e.settlement for e in flat if e.kind == "fill" and e.fee)
    assert set(fees) == set(fills), "every kind of trade is charged a fee somewhere"
    statuses = Counter((e.status, e.reason) for e in flat if e.kind == "order")
    for status in [("expired", "expired"), ("cancelled", "self_trade"),
                   ("cancelled", "not_filled"), ("filled", None)]:
        assert statuses[status] > 0, status
    reasons = Counter(e.reason for e in flat if e.kind == "rejected")
    assert len(reasons) >= 15 and reasons["duplicate_command"] > 0
    assert any(e.kind == "resolved" for e in flat)
    assert any(e.kind == "duplicate" for e in flat)
    assert any(e.kind == "clock" for e in flat)


def test_the_same_log_yields_the_same_events_and_digest(log, reference_run):
    events, digest = reference_run
    again = Engine()
    assert run(again, log) == events
    assert again.digest() == digest
    in_one_go = Engine()
    assert in_one_go.apply_all(log) == [e for per_cmd in events for e in per_cmd]
    assert in_one_go.digest() == digest


def test_an_engine_restored_midway_continues_exactly_like_the_original(log, reference_run):
    events, digest = reference_run
    rng = random.Random(len(log))
    for cut in sorted(rng.sample(range(1, len(log)), 8)):
        eng = Engine()
        run(eng, log[:cut])
        eng = json_round_trip_restore(eng)
        rest = run(eng, log[cut:])
        for i, (cmd, got) in enumerate(zip(log[cut:], rest, strict=True)):
            assert got == events[cut + i], \
                f"command {cut + i} ({cmd!r}) after a restore at {cut}"
        assert eng.digest() == digest


def test_restore_from_any_snapshot_gives_the_same_digest(log):
    eng = Engine()
    rng = random.Random(7)
    for cmd in log:
        eng.apply(cmd)
        if rng.random() < 0.004:
            assert json_round_trip_restore(eng).digest() == eng.digest()


def test_events_survive_a_json_round_trip_unchanged(reference_run):
    events, _ = reference_run
    flat = [e for per_cmd in events for e in per_cmd]
    rows = [to_wire(e) for e in flat]
    assert orjson.loads(orjson.dumps(rows)) == as_lists(rows)
    assert [from_wire(row) for row in orjson.loads(orjson.dumps(rows))] == flat
    for event, row in zip(flat, rows, strict=True):
        as_dict(event)  # the layout names every field
        assert all(is_plain(value) for value in row), event


def as_lists(value):
    """What JSON makes of a value: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    return value


def is_plain(value) -> bool:
    """Integers, strings, booleans, None, and tuples of them: never a float."""
    if isinstance(value, tuple):
        return all(is_plain(v) for v in value)
    return value is None or isinstance(value, (int, str, bool))
