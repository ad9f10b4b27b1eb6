"""The in-process target: a ``Target`` over a fresh ``pmarket.engine.Engine``.

The default target of ``pmarket simulate``. Requests become engine commands stamped with
the runner's simulated time (``advance_to``), so gtd expiry happens exactly when the
scenario's clock says, and the engine's events are read back into the API's values
(``values``): decimal strings, error codes, orders in their owner's terms, through the
conversion the server uses (``pmarket.api.convert``), so that both targets report the
same objects.
"""

from __future__ import annotations

from functools import lru_cache

from ..api import convert
from ..engine import Engine, units
from ..engine import commands as c
from ..engine import events as ev
from ..engine.queries import market_result
from .values import (
    AuditCheck,
    Balance,
    BookLevels,
    ErrorDetail,
    EventInfo,
    Fill,
    Holding,
    Market,
    OrderRequest,
    OrderState,
    Result,
    Trader,
    price_text,
)

__all__ = ["InProcessTarget"]


# Request words to engine enums (a dict lookup is ~20x cheaper than ``Enum(value)``).
_OUTCOMES = {e.value: e for e in c.Outcome}
_SIDES = {e.value: e for e in c.Side}
_TYPES = {e.value: e for e in c.OrderType}
_TIFS = {e.value: e for e in c.TimeInForce}
_STPS = {e.value: e for e in c.SelfTrade}


@lru_cache(maxsize=65_536)
def _price_units(text: str, tick: int) -> int:
    return units.parse_price(text, tick)


@lru_cache(maxsize=4_096)
def _amount_units(text: str) -> int:
    return units.parse_amount(text)


class InProcessTarget:
    """A ``Target`` over a fresh ``pmarket.engine.Engine`` in this process.

    The engine keeps only open orders; this target remembers the last state of every
    order it has seen in the engine's events, so closed orders can be looked up as the
    API's ``GET /orders/{id}`` would.
    """

    name = "in-process"
    simulated_clock = True
    order_reasons = True

    def __init__(self) -> None:
        self.engine = Engine()
        self.now_ms = 0
        self._users = 0
        self._ticks: dict[int, int] = {}
        self._orders: dict[int, ev.OrderState] = {}

    # --- plumbing ------------------------------------------------------------------

    def _apply(self, cmd: c.Command) -> list[ev.EngineEvent]:
        cmd.ts_ms = self.now_ms
        return self.engine.apply(cmd)

    def _price(self, text: str | None, market_id: int) -> int | None:
        return None if text is None else _price_units(text, self._ticks.get(market_id, 1))

    def _result(self, events: list[ev.EngineEvent]) -> Result:
        """Read a command's events into a ``Result`` (batches: one per ``batch_item``)."""
        result = Result()
        current = result
        orders = self._orders
        for e in events:
            if isinstance(e, ev.OrderState):
                orders[e.order_id] = e
                if current.order is None:
                    current.order = self._order_state(e)
                if e.status == "cancelled" or e.status == "expired":
                    current.cancelled.append(e.order_id)
            elif isinstance(e, ev.Fill):
                current.trades.append(self._trade(e))
            elif isinstance(e, ev.Clock):  # what came before were expirations
                expired = current.cancelled
                result = current = Result()
                current.cancelled.extend(expired)
            elif isinstance(e, ev.Rejected):
                if current.error is None:
                    code, message = convert.rejection(e)
                    current.error = ErrorDetail(code=code, message=message)
            elif isinstance(e, ev.Duplicate):
                current.duplicate = True
            elif isinstance(e, ev.BatchItem):
                current = Result()
                result.items.append(current)
            elif isinstance(e, ev.Resolved):
                current.payouts_total = units.format_money(e.payouts_total)
        if result.items:
            for item in result.items:
                result.trades.extend(item.trades)
        return result

    def _order_state(self, e: ev.OrderState) -> OrderState:
        """The API's Order (``convert.order``) as the simulator's value, with what the API
        object leaves out: the owner, why it closed and its expiry on the simulated
        clock (the HTTP target builds the same value from the same API object)."""
        o = convert.order(e, self._ticks[e.market_id])
        return OrderState(o["id"], e.user_id, o["market_id"], o["outcome"], o["side"],
                          o["type"], o["price"] or "", o["quantity"], o["filled_quantity"],
                          o["status"], o["time_in_force"], e.reason, o["client_order_id"],
                          e.expires_at_ms)

    def _trade(self, fill: ev.Fill) -> Fill:
        """The API's public trade (``convert.public_trade``: YES terms) as the simulator's
        value, with the settlement, the orders and the fee the public trade leaves out."""
        t = convert.public_trade(fill, self._ticks[fill.market_id])
        return Fill(t["id"], t["market_id"], t["price"], t["quantity"], fill.settlement,
                    t["taker_side"], fill.taker_order_id, fill.maker_order_id, fill.ts_ms,
                    units.format_money(fill.fee))

    # --- users, events, time -------------------------------------------------------

    def signup(self, name: str) -> Trader:
        """Create a user (in-process: the next integer id, no token)."""
        self._users += 1
        return Trader(self._users, name)

    def create_event(self, title: str, outcomes: list[str], tick_size: str,
                     fee_rate: str = "0") -> EventInfo:
        """Create an event with one market per outcome (none: a single yes/no market).

        Raises:
            ValueError: if the engine refuses the event.
        """
        tick = units.parse_tick(tick_size)
        events = self._apply(c.CreateEvent(title=title, outcomes=tuple(outcomes), tick=tick,
                                           fee_rate=units.parse_fee_rate(fee_rate)))
        created = [e for e in events if isinstance(e, ev.EventState)]
        if not created:
            raise ValueError(f"event '{title}' was refused: {events}")
        event = created[0]
        for market_id, _name in event.markets:
            self._ticks[market_id] = tick
        return EventInfo(event.event_id, title, {name: mid for mid, name in event.markets},
                         tick_size)

    def advance_to(self, now_ms: int) -> Result:
        """Move the clock forward; gtd orders due by then expire (``cancelled`` lists them)."""
        if now_ms < self.now_ms:
            raise ValueError(f"time cannot go back from {self.now_ms} to {now_ms}")
        self.now_ms = now_ms
        return self._result(self._apply(c.Expire()))

    # --- money ---------------------------------------------------------------------

    def deposit(self, user: Trader, amount: str) -> Result:
        return self._result(self._apply(c.Deposit(user_id=user.id,
                                                  amount=_amount_units(amount))))

    def withdraw(self, user: Trader, amount: str) -> Result:
        return self._result(self._apply(c.Withdraw(user_id=user.id,
                                                   amount=_amount_units(amount))))

    # --- trading -------------------------------------------------------------------

    def _command(self, user: Trader, o: OrderRequest) -> c.PlaceOrder:
        return c.PlaceOrder(
            user_id=user.id, market_id=o.market_id, outcome=_OUTCOMES[o.outcome],
            side=_SIDES[o.side], quantity=o.quantity, price=self._price(o.price, o.market_id),
            order_type=_TYPES[o.type], tif=_TIFS[o.time_in_force],
            expires_at_ms=o.expires_at_ms, post_only=o.post_only,
            client_order_id=o.client_order_id, stp=_STPS[o.stp])

    def place(self, user: Trader, order: OrderRequest) -> Result:
        return self._result(self._apply(self._command(user, order)))

    def place_batch(self, user: Trader, orders: list[OrderRequest]) -> Result:
        cmd = c.PlaceBatch(user_id=user.id, orders=tuple(self._command(user, o) for o in orders))
        return self._result(self._apply(cmd))

    def modify(self, user: Trader, order_id: int, price: str | None,
               quantity: int | None) -> Result:
        known = self._orders.get(order_id)
        market_id = known.market_id if known else 0
        return self._result(self._apply(c.ModifyOrder(
            user_id=user.id, order_id=order_id, price=self._price(price, market_id),
            quantity=quantity)))

    def cancel(self, user: Trader, order_id: int) -> Result:
        return self._result(self._apply(c.CancelOrder(user_id=user.id, order_id=order_id)))

    def cancel_all(self, user: Trader, market_id: int | None = None) -> Result:
        return self._result(self._apply(c.CancelAll(user_id=user.id, market_id=market_id)))

    # --- collateral ----------------------------------------------------------------

    def split(self, user: Trader, market_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.Split(user_id=user.id, market_id=market_id,
                                                quantity=quantity)))

    def merge(self, user: Trader, market_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.Merge(user_id=user.id, market_id=market_id,
                                                quantity=quantity)))

    def split_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.SplitEvent(user_id=user.id, event_id=event_id,
                                                     quantity=quantity)))

    def merge_event(self, user: Trader, event_id: int, quantity: int) -> Result:
        return self._result(self._apply(c.MergeEvent(user_id=user.id, event_id=event_id,
                                                     quantity=quantity)))

    def convert(self, user: Trader, event_id: int, outcome_ids: list[int],
                quantity: int) -> Result:
        return self._result(self._apply(c.Convert(
            user_id=user.id, event_id=event_id, outcome_ids=tuple(outcome_ids),
            quantity=quantity)))

    # --- admin ---------------------------------------------------------------------

    def set_event_status(self, event_id: int, status: str) -> Result:
        """Close ("closed": open orders are cancelled) or reopen ("active") an event."""
        return self._result(self._apply(c.UpdateEvent(event_id=event_id,
                                                      status=c.EventStatus(status))))

    def resolve(self, event_id: int, winning_outcome_id: int | None) -> Result:
        return self._result(self._apply(c.ResolveEvent(
            event_id=event_id, winning_outcome_id=winning_outcome_id)))

    def void(self, event_id: int) -> Result:
        return self._result(self._apply(c.ResolveEvent(event_id=event_id, void=True)))

    def delete_event(self, event_id: int) -> Result:
        return self._result(self._apply(c.DeleteEvent(event_id=event_id)))

    # --- queries -------------------------------------------------------------------

    def book(self, market_id: int, view: str = "yes", depth: int | None = None) -> BookLevels:
        tick = self._ticks[market_id]
        b = self.engine.book(market_id, view, depth)

        def show(p: int | None) -> str | None:
            return None if p is None else price_text(p, tick)

        return BookLevels(market_id, view, [(price_text(p, tick), q) for p, q in b.bids],
                          [(price_text(p, tick), q) for p, q in b.asks], show(b.best_bid),
                          show(b.best_ask), show(b.last_price))

    def market(self, market_id: int) -> Market:
        tick = self._ticks[market_id]
        m = self.engine.market_view(market_id)

        def show(p: int | None) -> str | None:
            return None if p is None else price_text(p, tick)

        return Market.model_validate({
            "id": m.market_id, "event_id": m.event_id, "outcome_id": m.market_id,
            "outcome_name": m.name, "status": m.status, "tick_size": units.format_units(tick),
            "last_price": show(m.last_price), "best_bid": show(m.best_bid),
            "best_ask": show(m.best_ask), "volume": m.volume, "open_interest": m.open_interest,
            "result": self._market_result(m.event_id, m.market_id)})

    def _market_result(self, event_id: int, market_id: int) -> str | None:
        """The market's ``result``, from its event's resolution (as the API's)."""
        e = self.engine.events[event_id]
        return market_result(e.status, market_id, e.winning_outcome_id, bool(e.void))

    def balance(self, user: Trader) -> Balance:
        return Balance.model_validate(convert.balance_values(*self.engine.balance(user.id)))

    def holdings(self, user: Trader) -> list[Holding]:
        return [Holding(p.market_id, p.yes, p.no, p.yes_reserved, p.no_reserved)
                for p in self.engine.positions(user.id)]

    def open_orders(self, user: Trader, market_id: int | None = None) -> list[OrderState]:
        return [self._order_state(ev) for ev in self.engine.open_orders(user.id, market_id)]

    def order(self, user: Trader, order_id: int) -> OrderState | None:
        """An order of ``user`` in any state (another user's order: None, as a 404)."""
        e = self.engine.order(order_id) or self._orders.get(order_id)
        if e is None or e.user_id != user.id:
            return None
        return self._order_state(e)

    def audit(self) -> AuditCheck:
        report = self.engine.audit()
        return AuditCheck(report.ok, units.format_money(report.difference), list(report.problems))

    def state_digest(self) -> str | None:
        """A hash of the engine's whole state (identical runs give identical digests)."""
        return self.engine.digest()

    def close(self) -> None:
        """Nothing to release in-process."""
