"""The read model folds deliveries into exactly the rows the worker projects.

A random engine session (hypothesis picks the actions: orders of every kind, cancels,
modifications, expiries, splits, merges, event splits and merges, converts, closing,
resolving and deleting events, changing fee rates, withdrawals; two events charge fees)
is cut into multi-command deliveries, then
projected into a real database by the worker's ``Projector`` and folded by a
``ReadModel``; the model must equal a fresh seed read from that database, row for row
(resolutions and payouts included).
A second model seeded from the database half-way (at the worker's position) and fed the
rest must end up the same: seeding plus folding is the same as folding from the start.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmarket.engine import (
    CancelAll,
    CancelOrder,
    Convert,
    Deposit,
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
    Side,
    Split,
    SplitEvent,
    TimeInForce,
    UpdateEvent,
    Withdraw,
)
from pmarket.engine.commands import DeleteEvent
from pmarket.engine.events import Unknown
from pmarket.runtime.eventlog import Delivery
from pmarket.server import readmodel
from pmarket.server.readmodel import ReadModel, SeedState, read_seed, snapshot
from pmarket.worker import Projector
from tests.dbfixtures import database, migrated  # noqa: F401
from tests.worker.scenario import STREAM, Recorder, usd

USERS = (1, 2, 3, 4)
ACTIONS = ("place",) * 12 + ("cancel", "cancel", "modify", "modify", "expire", "expire",
                             "batch", "cancel_all", "split", "merge", "split_event",
                             "merge_event", "convert", "money", "status", "resolve", "delete")


class Session:
    """Random actions on a small exchange: two single markets and a 3-outcome event."""

    def __init__(self) -> None:
        self.r = Recorder(step_ms=700)
        (self.rain,) = self.r.event("Rain?", category="weather", slug="rain", fee_rate=700)
        self.a, self.b, self.c = self.r.event("Final", ("A", "B", "C"), category="sports",
                                              tick=10, fee_rate=2_500)
        (self.spare,) = self.r.event("Spare", description="may be deleted")
        self.markets = [self.rain, self.a, self.b, self.c, self.spare]
        self.orders: list[tuple[int, int]] = []
        self.done = 0
        for user in USERS:
            self.r.do(Deposit(user_id=user, amount=usd(50_000)))
            for market in (self.rain, self.a):  # shares to sell
                self.r.do(Split(user_id=user, market_id=market, quantity=40))

    def order_command(self, rng: random.Random, user: int) -> PlaceOrder:
        market = rng.choice(self.markets)
        tick = 10 if market in (self.a, self.b, self.c) else 100
        kind = rng.random()
        tif, expires, otype, price = TimeInForce.GTC, None, OrderType.LIMIT, None
        if kind < 0.1:
            otype = OrderType.MARKET
            tif = TimeInForce.IOC
        else:
            # Mostly near 0.50, so that about half the orders trade.
            low, high = (4_000, 6_000) if rng.random() < 0.9 else (tick, 9_999)
            price = rng.randint(low // tick, high // tick) * tick
            if kind < 0.25:
                tif = rng.choice((TimeInForce.IOC, TimeInForce.FOK))
            elif kind < 0.4:
                tif, expires = TimeInForce.GTD, self.r.now + rng.randint(500, 4_000)
        return PlaceOrder(user_id=user, market_id=market, outcome=rng.choice(list(Outcome)),
                          side=rng.choice(list(Side)), quantity=rng.randint(1, 12),
                          price=price, order_type=otype, tif=tif, expires_at_ms=expires,
                          post_only=otype == OrderType.LIMIT and rng.random() < 0.1,
                          client_order_id=f"c{rng.randint(0, 30)}" if rng.random() < 0.2
                          else None)

    def act(self, action: str, seed: int) -> None:
        rng = random.Random(seed)
        self.done += 1
        if action == "resolve" and self.done < 40:
            action = "place"  # trade first: a resolved event refuses everything after
        user = rng.choice(USERS)
        r = self.r
        if action == "place":
            events = r.do(self.order_command(rng, user))
            placed = next((e for e in events if e.kind == "order"), None)
            if placed is not None:
                self.orders.append((placed.order_id, placed.user_id))
        elif action == "batch":
            r.do(PlaceBatch(user_id=user, orders=tuple(
                self.order_command(rng, user) for _ in range(rng.randint(1, 4)))))
        elif action in ("cancel", "modify") and self.orders:
            oid, owner = rng.choice(self.orders)
            owner = owner if rng.random() < 0.9 else user
            if action == "cancel":
                r.do(CancelOrder(user_id=owner, order_id=oid))
            else:
                r.do(ModifyOrder(user_id=owner, order_id=oid,
                                 price=rng.randint(1, 99) * 100 if rng.random() < 0.5 else None,
                                 quantity=rng.randint(1, 15)))
        elif action == "cancel_all":
            r.do(CancelAll(user_id=user, market_id=rng.choice([None, *self.markets])))
        elif action in ("split", "merge"):
            cls = Split if action == "split" else Merge
            r.do(cls(user_id=user, market_id=rng.choice(self.markets),
                     quantity=rng.randint(1, 8)))
        elif action in ("split_event", "merge_event"):
            cls = SplitEvent if action == "split_event" else MergeEvent
            r.do(cls(user_id=user, event_id=2, quantity=rng.randint(1, 6)))
        elif action == "convert":
            chosen = rng.sample([self.a, self.b, self.c], rng.randint(1, 2))
            r.do(Convert(user_id=user, event_id=2, outcome_ids=tuple(chosen),
                         quantity=rng.randint(1, 4)))
        elif action == "money":
            cls = Deposit if rng.random() < 0.5 else Withdraw
            r.do(cls(user_id=user, amount=usd(rng.randint(1, 5_000))))
        elif action == "expire":
            r.now += rng.randint(0, 3_000)
            r.do(Expire())
        elif action == "status":
            r.do(UpdateEvent(event_id=rng.randint(1, 3), title=f"T{seed % 7}",
                             category=rng.choice([None, "misc"]),
                             status=EventStatus.CLOSED if rng.random() < 0.3
                             else EventStatus.ACTIVE,
                             fee_rate=rng.choice([None, 0, 100, 700])))
        elif action == "resolve":
            event = rng.randint(1, 3)
            if event == 2 and rng.random() < 0.5:
                r.do(ResolveEvent(event_id=2, void=True))
            else:
                winner = {1: self.rain, 2: rng.choice([self.a, self.b, self.c]),
                          3: self.spare}[event]
                r.do(ResolveEvent(event_id=event, winning_outcome_id=winner
                                  if rng.random() < 0.7 else None))
        elif action == "delete":
            r.do(DeleteEvent(event_id=3))


def grouped(deliveries: list[Delivery], sizes: list[int]) -> list[Delivery]:
    """Consecutive deliveries merged into multi-command ones, as the engine batches."""
    out, i, k = [], 0, 0
    while i < len(deliveries):
        part = deliveries[i:i + sizes[k % len(sizes)]]
        events = [e for d in part for e in d.events]
        out.append(Delivery(part[0].first_seq, part[-1].last_seq, events, part[-1].ts_ms))
        i, k = i + len(part), k + 1
    return out


def rows(state: ReadModel | SeedState) -> dict:
    """Everything a model holds, as plain comparable values."""
    orders = state.orders.values() if isinstance(state, ReadModel) else state.orders
    return {
        "balances": dict(state.balances),
        "positions": {(u, m): row for u, mine in state.positions.items()
                      for m, row in mine.items()},
        "orders": {o.order_id: o for o in orders},
        "events": {e.id: (e.slug, e.title, e.description, e.category, e.status,
                          e.close_time, e.tick, e.created_at, tuple(e.market_ids),
                          e.winning_outcome_id, e.void, e.resolved_at, e.fee_rate)
                   for e in state.events.values()},
        "payouts": {u: list(paid) for u, paid in state.payouts.items()},
        "markets": {m.id: (m.event_id, m.name, m.position, m.status, m.tick, m.last_price,
                           m.volume, m.open_interest) for m in state.markets.values()},
    }


def seeded(db, seq: int) -> ReadModel:
    model = ReadModel(STREAM)
    with snapshot(db.engine) as conn:
        model.install(read_seed(conn), seq)
    return model


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(actions=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2**31)),
                        min_size=1, max_size=80),
       sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
       cut=st.floats(0, 1))
def test_folding_equals_projecting(database, actions, sizes, cut):  # noqa: F811
    database.clear()
    session = Session()
    for action, seed in actions:
        session.act(action, seed)
    deliveries = grouped(session.r.deliveries, sizes)
    half = int(len(deliveries) * cut)
    projector = Projector(STREAM)
    model = ReadModel(STREAM)
    model.install(SeedState(), 0)

    projector.apply(database.engine, deliveries[:half])
    for d in deliveries[:half]:
        model.apply(d)
    late = seeded(database, deliveries[half - 1].last_seq if half else 0)
    projector.apply(database.engine, deliveries[half:])
    for d in deliveries[half:]:
        model.apply(d)
        late.apply(d)
        late.apply(d)  # a delivery seen twice changes nothing

    assert model.ready and late.ready, (model.problem, late.problem)
    assert model.seq == late.seq == session.r.seq
    with snapshot(database.engine) as conn:
        stored = rows(read_seed(conn))
    assert rows(model) == stored
    assert rows(late) == stored


def test_a_gap_in_the_deliveries_stops_the_model_loudly(caplog):
    session = Session()
    for seed in range(20):
        session.act("place", seed)
    model = ReadModel(STREAM)
    model.install(SeedState(), 0)
    deliveries = session.r.deliveries
    for d in deliveries[:5]:
        model.apply(d)
    model.apply(deliveries[6])  # 6 is missing

    assert not model.ready and "deliveries missing" in model.problem
    assert "read model stopped serving" in caplog.text
    assert model.seq == deliveries[4].last_seq
    model.install(SeedState(), deliveries[6].last_seq)  # a new seed serves again
    assert model.ready


def test_a_delivery_the_fold_refuses_stops_the_model():
    model = ReadModel(STREAM)
    model.install(SeedState(), 0)
    model.apply(Delivery(1, 1, [Unknown("mystery", (1, 2))], 0))
    assert not model.ready and "ValueError" in model.problem
    assert model.seq == 0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 2**31)),
                        min_size=1, max_size=80),
       sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
       chunk=st.integers(1, 5))
def test_folding_in_slices_equals_folding_whole(monkeypatch, actions, sizes, chunk):
    """A delivery folded in chunks of a few events (``fold_steps``, as a big delivery
    is folded in slices; the fast path and ``Batch.walk``'s alike) ends in the rows of
    the delivery folded in one pass."""
    session = Session()
    for action, seed in actions:
        session.act(action, seed)
    deliveries = grouped(session.r.deliveries, sizes)
    whole, sliced = ReadModel(STREAM), ReadModel(STREAM)
    whole.install(SeedState(), 0)
    sliced.install(SeedState(), 0)
    for d in deliveries:
        whole.apply(d)
    with monkeypatch.context() as m:
        m.setattr(readmodel, "CHUNK", chunk)
        checkpoints = sum(sum(1 for _ in sliced.fold_steps(d)) for d in deliveries)
    assert sliced.ready and whole.ready, (sliced.problem, whole.problem)
    assert sliced.seq == whole.seq == session.r.seq
    assert rows(sliced) == rows(whole)
    assert checkpoints >= sum(len(d.events) for d in deliveries) // chunk - len(deliveries)
