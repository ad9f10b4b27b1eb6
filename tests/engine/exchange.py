"""A thin test harness over ``Engine``: decimal prices in, readable results out."""

from __future__ import annotations

from pmarket.engine import (
    CreateEvent,
    Deposit,
    Engine,
    OrderType,
    Outcome,
    PlaceOrder,
    SelfTrade,
    Side,
    TimeInForce,
)
from pmarket.engine.events import EngineEvent, as_dict, of_kind
from pmarket.engine.units import SCALE, to_units

ALICE, BOB, CAROL = 1, 2, 3


def usd(value: str | int) -> int:
    """Dollars (decimal string) to units."""
    return to_units(value)


class Exchange:
    """An engine with helpers; every call returns the command's events."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.last: list[EngineEvent] = []
        self.log: list[EngineEvent] = []  # every event so far
        self.now = 0

    def apply(self, cmd) -> list[EngineEvent]:
        if not cmd.ts_ms:
            cmd.ts_ms = self.now
        self.last = self.engine.apply(cmd)
        self.log.extend(self.last)
        audit = self.engine.audit()
        assert audit.ok, audit.problems
        return self.last

    def event(self, title="Event", outcomes=(), tick="0.01",
              fee_rate="0") -> tuple[int, list[int]]:
        """Create an event; its id and its market ids."""
        ev = self.apply(CreateEvent(title=title, outcomes=tuple(outcomes), tick=usd(tick),
                                    fee_rate=usd(fee_rate)))
        (created,) = ev
        data = as_dict(created)
        return data["event_id"], [m for m, _ in data["markets"]]

    def market(self, tick="0.01", fee_rate="0") -> int:
        return self.event(tick=tick, fee_rate=fee_rate)[1][0]

    def fund(self, user: int, dollars: str | int = 1000) -> None:
        self.apply(Deposit(user_id=user, amount=usd(dollars)))

    def order(self, user, market, side, outcome, price=None, qty=10, **kw) -> list[EngineEvent]:
        return self.apply(PlaceOrder(
            user_id=user, market_id=market, side=Side(side), outcome=Outcome(outcome),
            price=None if price is None else usd(price), quantity=qty,
            order_type=OrderType(kw.pop("type", "limit")), tif=TimeInForce(kw.pop("tif", "gtc")),
            stp=SelfTrade(kw.pop("stp", "cancel_resting")), **kw))

    def buy_yes(self, user, market, price, qty=10, **kw):
        return self.order(user, market, "buy", "yes", price, qty, **kw)

    def sell_yes(self, user, market, price, qty=10, **kw):
        return self.order(user, market, "sell", "yes", price, qty, **kw)

    def buy_no(self, user, market, price, qty=10, **kw):
        return self.order(user, market, "buy", "no", price, qty, **kw)

    def sell_no(self, user, market, price, qty=10, **kw):
        return self.order(user, market, "sell", "no", price, qty, **kw)

    # --- reading results ---------------------------------------------------------

    def placed(self, events=None) -> dict:
        """The order a placement/modification created or changed (its first order event)."""
        return of_kind(self.last if events is None else events, "order")[0]

    def fills(self, events=None) -> list[dict]:
        return of_kind(self.last if events is None else events, "fill")

    def rejection(self, events=None) -> str | None:
        rejected = of_kind(self.last if events is None else events, "rejected")
        return rejected[0]["reason"] if rejected else None

    def cash(self, user) -> tuple[int, int]:
        return self.engine.balance(user)

    def holding(self, user, market) -> tuple[int, int, int, int]:
        """(yes, no, yes_reserved, no_reserved)."""
        for p in self.engine.positions(user):
            if p.market_id == market:
                return p.yes, p.no, p.yes_reserved, p.no_reserved
        return (0, 0, 0, 0)

    def levels(self, market, view="yes"):
        b = self.engine.book(market, view)
        return b.bids, b.asks


__all__ = ["ALICE", "BOB", "CAROL", "SCALE", "Exchange", "as_dict", "of_kind", "usd"]
