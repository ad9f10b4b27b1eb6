"""The scenario model: what a validated scenario file says, as plain values.

``loader`` builds these from YAML; ``runner`` executes them. Everything here is already
checked and exact: prices and money are integer units (``engine.units``), times are
milliseconds of simulated time after the scenario's start, and every name a step uses
(user, market, order) was defined before that step. Nothing in this module does work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

START_MS = 1_767_225_600_000
"""Simulated time zero of every scenario: 2026-01-01T00:00:00Z, in Unix milliseconds."""


@dataclass(frozen=True, slots=True)
class MarketRef:
    """A market named by its event's key and, for multi-outcome events, its outcome."""

    event: str
    outcome: str
    multi: bool = False

    def __str__(self) -> str:
        return f"{self.event}/{self.outcome}" if self.multi else self.event


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event created during setup: key (how steps name it), title, outcomes, tick,
    and the taker fee rate (units: 700 is 7%)."""

    key: str
    title: str
    outcomes: tuple[str, ...]
    tick: int
    line: int
    fee_rate: int = 0

    @property
    def is_multi(self) -> bool:
        return len(self.outcomes) > 1


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A user signed up during setup, with the deposit made for them (units, 0: none)."""

    name: str
    deposit: int
    group: str | None = None


# --- actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One order as written in a scenario (price in the owner's terms, units)."""

    market: MarketRef
    tick: int
    side: str
    outcome: str
    quantity: int
    price: int | None = None
    order_type: str = "limit"
    tif: str = "gtc"
    expires_in_ms: int | None = None
    expires_at_ms: int | None = None
    post_only: bool = False
    client_order_id: str | None = None
    stp: str = "cancel_resting"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    user: str
    order: OrderSpec


@dataclass(frozen=True, slots=True)
class Batch:
    user: str
    orders: tuple[OrderSpec, ...]


@dataclass(frozen=True, slots=True)
class Modify:
    """Change a named order; ``user`` defaults to its owner (another user: not_owner)."""

    order: str
    user: str | None = None
    price: int | None = None
    quantity: int | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    order: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAll:
    user: str
    market: MarketRef | None = None


@dataclass(frozen=True, slots=True)
class Collateral:
    """split / merge (of a market) and split_event / merge_event / convert (of an event)."""

    op: str
    user: str
    quantity: int
    market: MarketRef | None = None
    event: str | None = None
    outcomes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Money:
    """deposit or withdraw ``amount`` units."""

    op: str
    user: str
    amount: int


@dataclass(frozen=True, slots=True)
class EventAdmin:
    """close, reopen, void or delete_event an event."""

    op: str
    event: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve with ``winner`` (an outcome name); None: a single-outcome event's NO wins."""

    event: str
    winner: str | None


@dataclass(frozen=True, slots=True)
class Advance:
    """Let simulated time pass (gtd orders expire on the way)."""

    ms: int


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A population of ``count`` seeded agents of one kind trading one market."""

    kind: str
    prefix: str
    count: int
    market: MarketRef
    tick: int
    deposit: int
    interval_ms: float
    size: tuple[int, int]
    line: int
    fair_value: int = 5_000
    spread: int = 200
    levels: int = 1
    drift_ticks: int = 1
    width: int = 500
    market_orders: float = 0.25
    ttl_ms: int = 120_000
    knows: str = "yes"
    edge: int = 200

    def user_names(self) -> list[str]:
        """The names of the users this population signs up."""
        return [f"{self.prefix}-{i}" for i in range(1, self.count + 1)]


@dataclass(frozen=True, slots=True)
class Simulate:
    """Run agents for ``duration_ms`` of simulated time."""

    duration_ms: int
    agents: tuple[AgentSpec, ...]


@dataclass(frozen=True, slots=True)
class Burst:
    """``count`` generated orders from a group of users: the load-test workload shape.

    ``price`` is a (low, high) range in the owner's terms, drawn uniformly on the grid;
    ``side`` and ``outcome`` may be "random". ``over_ms`` spreads the orders evenly over
    simulated time (0: all at one instant).
    """

    users: str
    market: MarketRef
    tick: int
    count: int
    side: str
    outcome: str
    price: tuple[int, int]
    quantity: tuple[int, int]
    tif: str = "gtc"
    over_ms: int = 0
    pick: str = "cycle"


Action = (Place | Batch | Modify | Cancel | CancelAll | Collateral | Money | EventAdmin
          | Resolve | Advance | Simulate | Burst | None)


# --- expectations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One expected value.

    Attributes:
        kind: what is checked — ``step`` (this step's own order/result), ``order``,
            ``trades``, ``book``, ``balance``, ``holding``, ``market``, ``audit`` or
            ``open_orders``.
        subject: what it is checked on (order name, user, (user, market), market ...).
        field: which value of the subject.
        expected: normalised value (units for prices and money).
        label: the dotted field path used in failure messages.
        line: where the expectation is written.
        tick: the market's tick, to print prices as written.
        fmt: how to print values: ``plain``, ``price``, ``money``, ``levels`` or ``trades``.
    """

    kind: str
    subject: Any
    field: str
    expected: Any
    label: str
    line: int
    tick: int = 100
    fmt: str = "plain"


@dataclass(frozen=True, slots=True)
class TradeExpect:
    """One expected trade; a None field is not checked. Price in YES terms (units); fee
    is what the taker paid (units)."""

    price: int | None = None
    quantity: int | None = None
    kind: str | None = None
    fee: int | None = None


# --- the scenario ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of ``steps``: an optional action, optional expectations, a position."""

    index: int
    line: int
    action: Action
    name: str | None = None
    at_ms: int | None = None
    expect: tuple[Check, ...] = ()

    @property
    def label(self) -> str:
        """How failure messages name the step: ``step 4 'alice-bids' (line 31)``."""
        named = f" '{self.name}'" if self.name else ""
        return f"step {self.index}{named} (line {self.line})"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole validated scenario file."""

    name: str
    file: str
    description: str
    seed: int
    events: tuple[EventSpec, ...]
    users: tuple[UserSpec, ...]
    groups: dict[str, tuple[str, ...]]
    steps: tuple[Step, ...]
    candle_ms: int = 60_000
    tags: tuple[str, ...] = field(default=())

    @property
    def is_load(self) -> bool:
        """Whether the scenario is tagged ``load`` (a load test rather than a spec)."""
        return "load" in self.tags
