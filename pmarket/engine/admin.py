"""Operator commands: create, update, close/reopen, delete and resolve events.

Resolution cancels every open order of the event, pays each share what it is worth and
burns it, and leaves the event's collateral at zero: a winner's YES and every loser's NO
pay $1; a void event of N outcomes pays 1/N per YES and 1 - 1/N per NO, rounded down per
position, the remainder going to the exchange's rounding account.
"""

from __future__ import annotations

from .book import CANCELLED
from .commands import EventStatus
from .events import EVENT_DELETED, RESOLVED, Reason
from .ledger import Event, Market
from .units import SCALE, VALID_TICKS

MAX_OUTCOMES = 100


class AdminMixin:
    """Event lifecycle handlers of ``Engine``."""

    def _on_create_event(self, cmd) -> None:
        title = cmd.title.strip() if isinstance(cmd.title, str) else ""
        names = [n.strip() if isinstance(n, str) else "" for n in cmd.outcomes] or ["Yes"]
        problem = None
        if not title:
            problem = "an event needs a title"
        elif cmd.tick not in VALID_TICKS:
            problem = "tick must be 100, 10 or 1 units (0.01, 0.001 or 0.0001)"
        elif not all(names) or len(set(names)) != len(names):
            problem = "outcome names must be distinct and not empty"
        elif len(names) > MAX_OUTCOMES:
            problem = f"an event has at most {MAX_OUTCOMES} outcomes"
        if problem:
            self._reject(None, "CreateEvent", Reason.INVALID_EVENT, problem)
            return
        event = Event(self._next_id("event"), title, cmd.tick, self.now_ms)
        event.description = cmd.description
        event.category = cmd.category
        event.slug = cmd.slug
        event.close_time_ms = cmd.close_time_ms
        for name in names:
            market = Market(self._next_id("market"), event, name, cmd.tick, SCALE)
            event.markets.append(market)
            self.markets[market.id] = market
        self.events[event.id] = event
        self._out.append(event.snapshot())

    def _event_or_reject(self, cmd, command: str) -> Event | None:
        event = self.events.get(cmd.event_id)
        if event is None:
            self._reject(None, command, Reason.UNKNOWN_EVENT,
                         f"event {cmd.event_id} does not exist")
            return None
        if event.status == "resolved":
            self._reject(None, command, Reason.ALREADY_RESOLVED, f"event {event.id} is resolved")
            return None
        return event

    def _on_update_event(self, cmd) -> None:
        event = self._event_or_reject(cmd, "UpdateEvent")
        if event is None:
            return
        if cmd.title is not None and not cmd.title.strip():
            self._reject(None, "UpdateEvent", Reason.INVALID_EVENT, "an event needs a title")
            return
        if cmd.status not in (None, EventStatus.ACTIVE, EventStatus.CLOSED):
            self._reject(None, "UpdateEvent", Reason.INVALID_EVENT,
                         "status may only be set to active or closed (resolve to resolve)")
            return
        for field in ("title", "description", "category", "close_time_ms"):
            value = getattr(cmd, field)
            if value is not None:
                setattr(event, field, value.strip() if field == "title" else value)
        if cmd.status is not None and cmd.status.value != event.status:
            event.status = cmd.status.value
            for market in event.markets:
                market.status = event.status
            if event.status == "closed":
                self._cancel_event_orders(event, Reason.EVENT_CLOSED)
        self._out.append(event.snapshot())

    def _cancel_event_orders(self, event: Event, reason: str) -> None:
        ids = {m.id for m in event.markets}
        for order in [o for o in self.orders.values() if o.market.id in ids]:
            self._close(order, CANCELLED, reason)

    def _on_delete_event(self, cmd) -> None:
        event = self.events.get(cmd.event_id)
        if event is None:
            self._reject(None, "DeleteEvent", Reason.UNKNOWN_EVENT,
                         f"event {cmd.event_id} does not exist")
            return
        if event.collateral or any(m.volume for m in event.markets):
            self._reject(None, "DeleteEvent", Reason.EVENT_NOT_DELETABLE,
                         f"event {event.id} has traded or has shares outstanding")
            return
        self._cancel_event_orders(event, Reason.EVENT_DELETED)
        self._flush()  # the cancellations refer to markets that are about to go
        gone = set(event.markets)
        for key in [k for k, o in self.client_orders.items() if o.market in gone]:
            del self.client_orders[key]
        for market in event.markets:
            del self.markets[market.id]
            for pos in market.holders.values():
                self.accounts[pos.user].positions.pop(market.id, None)
        del self.events[event.id]
        self._out.append((EVENT_DELETED, event.id))

    def _on_resolve(self, cmd) -> None:
        event = self._event_or_reject(cmd, "ResolveEvent")
        if event is None:
            return
        winner = cmd.winning_outcome_id
        ids = [m.id for m in event.markets]
        if cmd.void and winner is not None:
            self._reject(None, "ResolveEvent", Reason.UNKNOWN_OUTCOME,
                         "a void resolution has no winning outcome")
            return
        if not cmd.void and winner is None and event.is_multi:
            self._reject(None, "ResolveEvent", Reason.UNKNOWN_OUTCOME,
                         f"event {event.id} has several outcomes: name the winner or void it")
            return
        if winner is not None and winner not in ids:
            self._reject(None, "ResolveEvent", Reason.UNKNOWN_OUTCOME,
                         f"outcome {winner} is not an outcome of event {event.id}")
            return
        self._cancel_event_orders(event, Reason.EVENT_RESOLVED)
        n = len(event.markets) if event.is_multi else 2
        paid = 0
        for market in event.markets:
            won = market.id == winner
            for pos in market.holders.values():
                if pos.is_empty:
                    continue
                if cmd.void:
                    amount = (pos.yes * SCALE + pos.no * SCALE * (n - 1)) // n
                else:
                    amount = (pos.yes if won else pos.no) * SCALE
                quantity = pos.yes + pos.no
                pos.yes = pos.no = 0
                self._d_positions[pos] = None
                if amount:
                    acct = self.accounts[pos.user]
                    acct.available += amount
                    self._d_accounts[acct] = None
                paid += amount
                self._ledger(pos.user, "payout", amount, event.id, market.id, quantity)
            market.status = "resolved"
        rounding = event.collateral - paid
        if rounding < 0 or (rounding and not cmd.void):
            raise AssertionError(
                f"event {event.id}: collateral {event.collateral} does not cover payouts {paid}")
        self.treasury.rounding += rounding
        event.collateral = 0
        event.status = "resolved"
        event.winning_outcome_id = winner
        event.void = bool(cmd.void)
        self._out.append((RESOLVED, event.id, winner, event.void, paid, rounding, self.now_ms))
        self._out.append(event.snapshot())
