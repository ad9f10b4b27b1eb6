"""Accounts: sign-up and sign-in, who is signed in, API keys, money and holdings, and
the dead-man switch.

Invariant: no object here has a password hash field, so no answer can carry one; an
API key's secret (``key``) is only in ``ApiKeyCreated``, the answer that made it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Dec, Out, Time
from .fields import (
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    Amount,
    Email,
    In,
    Name,
    Password,
    SignInEmail,
    SignInPassword,
    text,
)

# --- auth ---------------------------------------------------------------------------


class SignUp(In):
    """``POST /auth/signup``."""

    email: Email
    name: Name
    password: Password


class SignIn(In):
    """``POST /auth/signin`` and ``POST /auth/admin/signin``."""

    email: SignInEmail
    password: SignInPassword


class User(Out):
    """A user or admin account as the API shows it (never a password hash)."""

    id: int
    email: str
    name: str


class Me(User):
    """``GET /me``: the caller, and whether it is a user or an admin."""

    role: Literal["user", "admin"]


class Auth(Out):
    """A signed-in user's session: the bearer ``token`` and who it belongs to."""

    token: str
    user: User

    @property
    def role(self) -> Literal["user", "admin"]:
        """Who signed in: a user (an admin's session is an ``AdminAuth``)."""
        return "user"


class AdminAuth(Out):
    """A signed-in admin's session (``POST /auth/admin/signin``)."""

    token: str
    admin: User

    @property
    def user(self) -> User:
        """The admin's account (the same as ``admin``, named as in ``Auth``)."""
        return self.admin

    @property
    def role(self) -> Literal["user", "admin"]:
        """Who signed in: an admin."""
        return "admin"


ApiKeyName = text(100, 1)


class ApiKeyCreate(In):
    """``POST /api-keys``."""

    name: ApiKeyName
    scopes: Annotated[list[Literal["read", "trade"]], Field(min_length=1, max_length=2)]


class ApiKey(Out):
    """An API key as listed (its secret is never shown again)."""

    id: int
    name: str
    scopes: list[str]
    created_at: Time
    last_used_at: Time | None


class ApiKeyCreated(Out):
    """A new API key, with its secret ``key`` (shown this once)."""

    id: int
    name: str
    scopes: list[str]
    key: str
    created_at: Time


# --- money and holdings --------------------------------------------------------------


class AmountIn(In):
    """``POST /onramp`` and ``POST /offramp``."""

    amount: Amount


class Balance(Out):
    """Cash: ``total`` = ``available`` + ``reserved`` (locked by open buy orders)."""

    available: Dec
    reserved: Dec
    total: Dec


class Position(Out):
    """Shares held in one market, with cost basis, mark and P&L."""

    market_id: int
    event_id: int
    outcome_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    yes_reserved: int
    no_reserved: int
    avg_cost_yes: Dec | None
    avg_cost_no: Dec | None
    mark_price: Dec | None
    """Once ``settled``, what one YES share paid (1, 0, or 1/N when void)."""
    value: Dec
    unrealized_pnl: Dec
    realized_pnl: Dec
    settled: bool = False
    """The event resolved and paid this position out (its shares are gone)."""


class Payout(Out):
    """What a resolution paid one position: its YES and NO shares, and the cash."""

    event_id: int
    market_id: int
    outcome_name: str
    yes_quantity: int
    no_quantity: int
    amount: Dec
    paid_at: Time


class Portfolio(Out):
    """``GET /portfolio``: balance, positions and their totals."""

    balance: Balance
    positions: list[Position]
    positions_value: Dec
    total_value: Dec
    pnl: Dec


# --- dead-man switch -----------------------------------------------------------------


class HeartbeatIn(In):
    """``POST /heartbeat``."""

    timeout_s: Annotated[int, Field(ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S, strict=True,
                                    examples=[30])]


class Heartbeat(Out):
    """The dead-man switch after a heartbeat: armed until ``expires_at``; ``fired_at``
    is when it fired since the previous heartbeat (it cancelled every open order)."""

    expires_at: Time
    timeout_s: int
    fired_at: Time | None
