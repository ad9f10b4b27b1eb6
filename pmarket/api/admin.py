"""Administration: creating, updating and resolving events, users, the money audit,
fees, and the exchange's health.

Invariant: an event's ``tick_size`` and ``fee_rate`` arrive as decimals and become exact
integer units (``fields``); a default is written as a client would send it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .accounts import User
from .base import Dec, Out, Time
from .fields import (
    MAX_OUTCOMES,
    Category,
    FeeRate,
    Flag,
    Id,
    In,
    OutcomeName,
    Slug,
    Text,
    TickSize,
    Title,
    UtcTime,
)
from .markets import Event


class EventCreate(In):
    """``POST /admin/events`` (no outcomes: a single yes/no market)."""

    title: Title
    description: Text = ""
    category: Category = ""
    slug: Slug | None = None
    close_time: UtcTime | None = None
    outcomes: Annotated[list[OutcomeName], Field(max_length=MAX_OUTCOMES)] = []
    # The default is written as a client sends it (the schema shows it), converted to
    # units like any value sent.
    tick_size: TickSize = Field(default="0.01", validate_default=True)
    fee_rate: FeeRate | None = None  # None: the server's PMARKET_FEE_RATE


class EventUpdate(In):
    """``PATCH /admin/events/{id}`` (status "closed" cancels open orders)."""

    title: Title | None = None
    description: Text | None = None
    category: Category | None = None
    close_time: UtcTime | None = None
    status: Literal["active", "closed"] | None = None
    fee_rate: FeeRate | None = None


class EventResolve(In):
    """``POST /admin/events/{id}/resolve``: a winner, none (a yes/no event's NO), or
    void."""

    winning_outcome_id: Id | None = None
    void: Flag = False


class Resolution(Out):
    """A resolved (or voided) event and the total paid out."""

    event: Event
    payouts_total: Dec


class AdminUser(User):
    """A user as an admin lists it."""

    created_at: Time
    disabled: bool
    disabled_at: Time | None


class AuditMarket(Out):
    """One market's line of the audit: its supply and its event's collateral."""

    market_id: int
    event_id: int
    status: str
    yes_supply: int
    no_supply: int
    event_collateral: Dec


class Audit(Out):
    """``GET /admin/audit``: the exchange-wide money audit, ``ok`` iff nothing is off."""

    ok: bool
    deposits: Dec
    withdrawals: Dec
    user_cash: Dec
    collateral: Dec
    fees: Dec
    rounding: Dec
    difference: Dec
    markets: list[AuditMarket]


class EventFees(Out):
    """Fees one event collected."""

    event_id: int
    amount: Dec


class Fees(Out):
    """``GET /admin/fees``: taker fees collected, in total and per event (events that
    collected nothing left out)."""

    total: Dec
    by_event: list[EventFees]

    def amounts(self) -> dict[int, Dec]:
        """Event id -> fees collected."""
        return {e.event_id: e.amount for e in self.by_event}


class Health(Out):
    """``GET /health``: overall status and each component's."""

    status: Literal["ok", "degraded"]
    components: dict[str, Any]
    checks: dict[str, float] = {}
    """The background checks' ``interval_s``, ``timeout_s`` and ``max_age_s`` (beyond
    it a result is stale and reported down), in seconds (``server/health.py``)."""

    @property
    def ok(self) -> bool:
        """Whether every component is healthy."""
        return self.status == "ok"
