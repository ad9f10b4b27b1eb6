"""Engine sessions for projection tests: commands stamped like the runner stamps them.

``Recorder`` applies commands with contiguous ``seq`` and advancing ``ts_ms`` and keeps
one ``Delivery`` per command. ``full_session`` exercises every event kind the worker
projects; ``random_session`` produces a large seeded order flow.
"""

from __future__ import annotations

import random

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
from pmarket.engine.events import as_dict
from pmarket.engine.units import SCALE
from pmarket.runtime.eventlog import Delivery

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STREAM = "pmarket:{main}:events"


class Recorder:
    """An engine whose commands are numbered 1, 2, 3... with a clock ``step_ms`` apart."""

    def __init__(self, step_ms: int = 1_000) -> None:
        self.engine = Engine()
        self.deliveries: list[Delivery] = []
        self.seq = 0
        self.now = START_MS
        self.step_ms = step_ms

    def do(self, cmd) -> list[tuple]:
        self.seq += 1
        self.now += self.step_ms
        cmd.seq, cmd.ts_ms = self.seq, self.now
        events = self.engine.apply(cmd)
        self.deliveries.append(Delivery(self.seq, self.seq, tuple(events), self.now))
        return events

    def event(self, title: str, outcomes=(), **kw) -> list[int]:
        data = as_dict(self.do(CreateEvent(title=title, outcomes=tuple(outcomes), **kw))[0])
        return [m for m, _ in data["markets"]]

    def order(self, user, market, side, outcome, price, qty, **kw) -> int | None:
        events = self.do(PlaceOrder(user_id=user, market_id=market, side=Side(side),
                                    outcome=Outcome(outcome), price=price, quantity=qty, **kw))
        placed = next((e for e in events if e[0] == "order"), None)
        return placed[1] if placed else None


def usd(cents: int) -> int:
    """Cents to units."""
    return cents * SCALE // 100


def full_session() -> Recorder:
    """A session touching every event kind, every trade kind and every ledger kind."""
    r = Recorder()
    (rain,) = r.event("Will it rain tomorrow?", category="weather", slug="rain",
                      fee_rate=700)
    a, b, c = r.event("Who wins the 2028 final?", ("Alpha", "Beta", "Gamma"),
                      category="sports", tick=10)
    (gone,) = r.event("Deleted soon")
    for user in (1, 2, 3, 4):
        r.do(Deposit(user_id=user, amount=usd(100_000)))
    # mint: buy YES (bid 0.40) against buy NO at 0.60 (ask 0.40)
    r.order(1, rain, "buy", "yes", usd(40), 10)
    r.order(2, rain, "buy", "no", usd(60), 6)
    # transfer_yes: sell YES 0.45 against buy YES 0.50 (price improvement to the taker)
    r.order(1, rain, "sell", "yes", usd(45), 3)
    r.order(3, rain, "buy", "yes", usd(50), 3)
    # transfer_no: sell NO 0.55 (bid 0.45) against buy NO 0.60 (ask 0.40)
    r.order(2, rain, "sell", "no", usd(55), 2)
    r.order(4, rain, "buy", "no", usd(60), 2)
    # merge: sell NO 0.50 (bid 0.50) against sell YES 0.45 (ask 0.45)
    r.order(2, rain, "sell", "no", usd(50), 2)
    r.order(3, rain, "sell", "yes", usd(45), 2)
    # modify, cancel, cancel-all, gtd expiry, a batch, a duplicate and a rejection
    mod = r.order(4, rain, "buy", "yes", usd(30), 5)
    r.do(ModifyOrder(user_id=4, order_id=mod, quantity=4))
    r.do(ModifyOrder(user_id=4, order_id=mod, price=usd(31)))
    r.do(CancelOrder(user_id=1, order_id=r.order(1, rain, "buy", "yes", usd(20), 7)))
    r.order(3, rain, "buy", "yes", usd(25), 1, tif=TimeInForce.GTD,
            expires_at_ms=r.now + 2_500, client_order_id="gtd-1")
    r.order(3, rain, "buy", "yes", usd(25), 1, tif=TimeInForce.GTD,
            expires_at_ms=r.now + 2_500, client_order_id="gtd-1")
    r.do(Expire())
    r.do(Expire())
    r.do(PlaceBatch(user_id=2, orders=(
        PlaceOrder(user_id=2, market_id=rain, side=Side.BUY, outcome=Outcome.NO,
                   price=usd(50), quantity=1),
        PlaceOrder(user_id=2, market_id=rain, side=Side.SELL, outcome=Outcome.YES,
                   price=usd(90), quantity=10**6),
    )))
    r.order(1, rain, "buy", "yes", usd(99), 10**8)  # insufficient cash: rejected
    # split / merge, event split / merge / convert, trades in a multi-outcome event
    r.do(Split(user_id=4, market_id=rain, quantity=5))
    r.do(Merge(user_id=4, market_id=rain, quantity=2))
    r.do(SplitEvent(user_id=1, event_id=2, quantity=10))
    r.order(1, a, "sell", "yes", 6000, 4)
    r.order(2, a, "buy", "yes", 6100, 4)
    r.order(3, b, "buy", "no", 7000, 3)
    r.order(2, b, "buy", "yes", 3000, 3)
    r.do(Split(user_id=3, market_id=c, quantity=4))
    r.do(Convert(user_id=3, event_id=2, outcome_ids=(c,), quantity=2))
    r.do(Convert(user_id=3, event_id=2, outcome_ids=(b, c), quantity=1))
    r.do(MergeEvent(user_id=1, event_id=2, quantity=2))
    r.do(Withdraw(user_id=4, amount=usd(1_000)))
    # close and reopen, delete an event with an order in it
    r.do(UpdateEvent(event_id=2, status=EventStatus.CLOSED, title="Who wins the final?"))
    r.do(UpdateEvent(event_id=2, status=EventStatus.ACTIVE))
    r.order(4, gone, "buy", "yes", usd(10), 1)
    r.do(DeleteEvent(event_id=3))
    r.order(4, a, "buy", "yes", 5000, 2)  # rests in a market resolved below
    r.do(CancelAll(user_id=4, market_id=rain))
    # resolution: the single market's YES wins; the multi-outcome event is voided
    r.do(ResolveEvent(event_id=1, winning_outcome_id=rain))
    r.do(ResolveEvent(event_id=2, void=True))
    return r


def random_session(orders: int, seed: int = 7, users: int = 20, markets: int = 4,
                   step_ms: int = 37) -> Recorder:
    """A seeded random order flow of ``orders`` placements plus some cancels and splits."""
    rng = random.Random(seed)
    r = Recorder(step_ms=step_ms)
    ids: list[int] = []
    for k in range(markets):
        ids += r.event(f"Market {k}", category="random", fee_rate=(0, 700, 100, 2_500)[k % 4])
    for user in range(1, users + 1):
        r.do(Deposit(user_id=user, amount=usd(10_000_000)))
        for mid in ids:
            r.do(Split(user_id=user, market_id=mid, quantity=1_000))
    placed: list[tuple[int, int]] = []
    for _ in range(orders):
        user = rng.randint(1, users)
        roll = rng.random()
        if roll < 0.1 and placed:
            oid_user = placed[rng.randrange(len(placed))]
            r.do(CancelOrder(user_id=oid_user[1], order_id=oid_user[0]))
            continue
        oid = r.order(user, rng.choice(ids), rng.choice(("buy", "sell")),
                      rng.choice(("yes", "no")), rng.randint(30, 70) * 100,
                      rng.randint(1, 20))
        if oid is not None:
            placed.append((oid, user))
    return r
