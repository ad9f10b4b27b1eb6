"""A crafted poison event inside a delivery of many users' commands, and its fix.

``poison_plan()`` takes the full session, merges seven commands of four users (the
placement of order 1, the trades that fill it, other users' orders) into one delivery,
as the engine does with a batch, and gives every event of order 1 an expiry in the
year 10000 — a value the database cannot store (``from_ms`` refuses it). The order rests
first and is filled later in the same delivery, so it has two events there (the first
superseded by the second) and a third, its cancellation at resolution, much later.

``clamped_from_ms`` is the operator's fix: a worker version that clamps such times to
9999-12-31. Projecting the plan under the fix gives the reference database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pmarket.db.types import from_ms, to_ms
from pmarket.runtime.eventlog import Delivery

from .scenario import full_session

POISON_ORDER = 1
YEAR_10000_MS = to_ms(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) + 86_400_000
MAX_MS = to_ms(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))
_EXPIRES = 14  # position of expires_at_ms in an order event


@dataclass
class Plan:
    """Deliveries before the poisoned one, the poisoned one, and those after it."""

    before: list[Delivery]
    poisoned: Delivery
    after: list[Delivery]
    engine: object

    @property
    def all(self) -> list[Delivery]:
        return [*self.before, self.poisoned, *self.after]

    @property
    def last_seq(self) -> int:
        return self.all[-1].last_seq

    @property
    def poison_index(self) -> int:
        """Index (in the poisoned delivery) of order 1's last event there."""
        return max(i for i, e in enumerate(self.poisoned.events)
                   if e[0] == "order" and e[1] == POISON_ORDER)


def _poison(delivery: Delivery) -> Delivery:
    events = tuple(
        (*e[:_EXPIRES], YEAR_10000_MS, *e[_EXPIRES + 1:])
        if e[0] == "order" and e[1] == POISON_ORDER else e
        for e in delivery.events)
    return Delivery(delivery.first_seq, delivery.last_seq, events, delivery.ts_ms)


def merge(deliveries: list[Delivery]) -> Delivery:
    """One delivery of several commands' events, as the engine publishes a batch."""
    return Delivery(deliveries[0].first_seq, deliveries[-1].last_seq,
                    tuple(e for d in deliveries for e in d.events), deliveries[-1].ts_ms)


def poison_plan() -> Plan:
    r = full_session()
    ds = [_poison(d) for d in r.deliveries]
    start = next(i for i, d in enumerate(ds)
                 if any(e[0] == "order" and e[1] == POISON_ORDER for e in d.events))
    batch = ds[start:start + 7]
    users = {e[1] for d in batch for e in d.events if e[0] == "balance"}
    assert len(users) >= 3, users  # several users' commands share the delivery
    plan = Plan(ds[:start], merge(batch), ds[start + 7:], r.engine)
    order_events = [e for e in plan.poisoned.events if e[0] == "order"
                    and e[1] == POISON_ORDER]
    assert len(order_events) == 2 and any(
        e[0] == "fill" and POISON_ORDER in (e[7], e[9]) for e in plan.poisoned.events)
    return plan


def clamped_from_ms(ms: int | None):
    """The fix: times past what the database holds are clamped to 9999-12-31."""
    return None if ms is None else from_ms(min(ms, MAX_MS))
