"""Reading and validating scenario files into the ``scenario`` model.

Validation is complete before anything runs: the structure (unknown keys are errors),
every value (prices exact on their market's tick grid, quantities whole, durations with
units) and every reference (a step may only name users, markets and orders defined
before it). Each problem is reported with the file, line, column and field path, and
one pass reports as many problems as it can (each step is checked on its own).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..engine.units import parse_fee_rate, parse_tick
from . import expectations
from .reader import Field, Invalid, Problems, ScenarioError, compose
from .scenario import (
    Action,
    Advance,
    AgentSpec,
    Batch,
    Burst,
    Cancel,
    CancelAll,
    Collateral,
    EventAdmin,
    EventSpec,
    MarketRef,
    Modify,
    Money,
    OrderSpec,
    Place,
    Resolve,
    Scenario,
    Simulate,
    Step,
    UserSpec,
)

__all__ = ["ScenarioError", "load_scenario", "parse_scenario"]

ORDER_KEYS = ("market", "side", "outcome", "quantity", "price", "type", "tif", "expires_in",
              "expires_at", "post_only", "client_order_id", "stp")
GROUP_ACTIONS = ("deposit", "withdraw", "split", "merge", "split_event", "merge_event",
                 "convert", "cancel_all")
ACTIONS = ("place", "batch", "modify", "cancel", "cancel_all", "split", "merge",
           "split_event", "merge_event", "convert", "deposit", "withdraw", "close", "reopen",
           "resolve", "void", "delete_event", "advance", "simulate", "burst")
AGENT_COMMON = ("kind", "name", "count", "market", "deposit", "every", "rate", "size")
AGENT_KEYS = {
    "market_maker": ("fair_value", "spread", "levels", "drift"),
    "noise": ("width", "market_orders", "ttl"),
    "informed": ("knows", "edge"),
}
AGENT_PREFIX = {"market_maker": "mm", "noise": "noise", "informed": "informed"}


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file.

    Raises:
        ScenarioError: listing every problem found, each with line, column and field.
        OSError: if the file cannot be read.
    """
    path = Path(path)
    return parse_scenario(path.read_text(encoding="utf-8"), str(path))


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text (``file`` is only used in messages).

    Raises:
        ScenarioError: listing every problem found.
    """
    return Loader(file).load(compose(text, file))


class Loader:
    """Validation state: what the file has defined so far, in file order."""

    def __init__(self, file: str):
        self.file = file
        self.problems = Problems()
        self.events: dict[str, EventSpec] = {}
        self.users: dict[str, UserSpec] = {}
        self.groups: dict[str, tuple[str, ...]] = {}
        self.orders: dict[str, tuple[str, MarketRef, int]] = {}  # name -> owner, market, tick
        self.names: set[str] = set()
        self.broken: set[str] = set()  # names of steps that failed validation
        self.cursor_ms = 0  # the earliest simulated time the next step may start at

    # --- the file ------------------------------------------------------------------

    def load(self, root: Field) -> Scenario:
        try:
            top = root.keys(("name", "setup", "steps"),
                            ("description", "seed", "tags", "candles"))
        except Invalid as exc:
            raise ScenarioError([exc.problem] if exc.problem else []) from None
        guard = self.problems.guard
        name, description, seed, candle_ms = "", "", 1, 60_000
        tags: tuple[str, ...] = ()
        with guard():
            name = top["name"].name()
        with guard():
            description = top["description"].text() if "description" in top else ""
        with guard():
            seed = top["seed"].integer(0, 2**63 - 1) if "seed" in top else 1
        with guard():
            tags = tuple(f.name() for f in top["tags"].items()) if "tags" in top else ()
        with guard():
            candle_ms = top["candles"].duration_ms(False) if "candles" in top else 60_000
        self._setup(top["setup"])
        steps = []
        with guard():
            items = top["steps"].items()
            if not items:
                raise top["steps"].fail("a scenario needs at least one step")
            for index, item in enumerate(items, 1):
                with guard():
                    steps.append(self._step(index, item))
        self.problems.raise_if_any()
        users = tuple(self.users.values())
        return Scenario(name, self.file, description, seed, tuple(self.events.values()),
                        users, dict(self.groups), tuple(steps), candle_ms, tags)

    def _setup(self, setup: Field) -> None:
        with self.problems.guard():
            fields = setup.keys((), ("events", "users"))
            if "events" in fields:
                for key, spec in fields["events"].entries():
                    with self.problems.guard():
                        self._event(key, spec)
            if "users" in fields:
                for name, spec in fields["users"].entries():
                    with self.problems.guard():
                        self._user(name, spec)

    def _event(self, key: str, spec: Field) -> None:
        if "/" in key or not key.strip():
            raise spec.fail(f"event key '{key}' must be a non-empty name without '/'")
        f = spec.keys(("title",), ("outcomes", "tick_size", "fee_rate"))
        outcomes: tuple[str, ...] = ()
        if "outcomes" in f:
            outcomes = tuple(o.name() for o in f["outcomes"].items())
            if len(set(outcomes)) != len(outcomes):
                raise f["outcomes"].fail("outcome names must be distinct")
            if len(outcomes) == 1:
                raise f["outcomes"].fail("one outcome is a yes/no event: leave outcomes out")
        tick = 100
        if "tick_size" in f:
            tick = f["tick_size"].units_of(parse_tick)
        fee_rate = f["fee_rate"].units_of(parse_fee_rate) if "fee_rate" in f else 0
        self.events[key] = EventSpec(key, f["title"].name(), outcomes, tick, spec.line,
                                     fee_rate)

    def _user(self, name: str, spec: Field) -> None:
        self._claim(name, spec)
        if not spec.is_mapping:
            self.users[name] = UserSpec(name, spec.amount())
            return
        f = spec.keys((), ("deposit", "count"))
        deposit = f["deposit"].amount() if "deposit" in f else 0
        if "count" not in f:
            self.users[name] = UserSpec(name, deposit)
            return
        count = f["count"].integer(1, 100_000)
        members = tuple(f"{name}-{i}" for i in range(1, count + 1))
        for member in members:
            self._claim(member, spec)
            self.users[member] = UserSpec(member, deposit, name)
        self.groups[name] = members

    def _claim(self, name: str, where: Field) -> None:
        if name in self.users or name in self.groups:
            raise where.fail(f"user '{name}' is defined twice")

    # --- steps ---------------------------------------------------------------------

    def _step(self, index: int, item: Field) -> Step:
        f = item.keys((), ("name", "at", "expect", *ACTIONS))
        actions = [k for k in f if k in ACTIONS]
        if len(actions) > 1:
            raise f[actions[1]].fail(f"a step does one thing: found both '{actions[0]}' and "
                                     f"'{actions[1]}'")
        if not actions and "expect" not in f:
            raise item.fail(f"a step needs an action ({', '.join(ACTIONS)}) or 'expect'")
        name = None
        if "name" in f:
            name = f["name"].name()
            if name in self.names:
                raise f["name"].fail(f"name '{name}' is already used by an earlier step")
        at_ms = None
        if "at" in f:
            at_ms = f["at"].duration_ms()
            if at_ms < self.cursor_ms:
                raise f["at"].fail(f"time goes forward only: this step cannot run at "
                                   f"{at_ms} ms, the scenario is already at {self.cursor_ms} ms")
            self.cursor_ms = at_ms
        kind = actions[0] if actions else None
        try:
            action: Action = self._action(kind, f[kind], name) if kind else None
        except Invalid:
            if name is not None:  # later references to it would only repeat the error
                self.broken.add(name)
            raise
        if name is not None:
            self.names.add(name)
        checks: tuple = ()
        if "expect" in f:
            checks = expectations.parse(self, f["expect"], action, standalone=kind is None)
        return Step(index, item.line, action, name, at_ms, checks)

    def _action(self, kind: str, f: Field, name: str | None) -> Action:
        if kind == "place":
            keys = f.keys(("user", "market", "side", "outcome", "quantity"), ORDER_KEYS)
            user = self.user(keys["user"])
            order = self._order(keys, name)
            self._name_order(name, user, order, f)
            return Place(user, order)
        if kind == "batch":
            return self._batch(f)
        if kind in ("modify", "cancel"):
            return self._modify(kind, f)
        if kind == "cancel_all":
            keys = f.keys(("user",), ("market",))
            market = self.market(keys["market"])[0] if "market" in keys else None
            return CancelAll(self.user(keys["user"], group=True), market)
        if kind in ("split", "merge", "split_event", "merge_event", "convert"):
            return self._collateral(kind, f)
        if kind in ("deposit", "withdraw"):
            keys = f.keys(("user", "amount"))
            return Money(kind, self.user(keys["user"], group=True), keys["amount"].amount())
        if kind in ("close", "reopen", "void", "delete_event"):
            return EventAdmin(kind, self.event(f).key)
        if kind == "resolve":
            return self._resolve(f)
        if kind == "advance":
            ms = f.duration_ms(allow_zero=False)
            self.cursor_ms += ms
            return Advance(ms)
        if kind == "simulate":
            return self._simulate(f)
        return self._burst(f)

    # --- orders --------------------------------------------------------------------

    def _order(self, keys: dict[str, Field], name: str | None) -> OrderSpec:
        market, tick = self.market(keys["market"])
        side = keys["side"].choice(("buy", "sell"))
        outcome = keys["outcome"].choice(("yes", "no"))
        order_type = keys["type"].choice(("limit", "market")) if "type" in keys else "limit"
        price = keys["price"].price(tick) if "price" in keys else None
        if price is None and order_type == "limit":
            raise keys["market"].fail("a limit order needs a price")
        tif = keys["tif"].choice(("gtc", "gtd", "ioc", "fok")) if "tif" in keys else "gtc"
        expires_in = keys["expires_in"].duration_ms(False) if "expires_in" in keys else None
        expires_at = keys["expires_at"].duration_ms() if "expires_at" in keys else None
        if expires_in is not None and expires_at is not None:
            raise keys["expires_at"].fail("give expires_in or expires_at, not both")
        stp = "cancel_resting"
        if "stp" in keys:
            stp = keys["stp"].choice(("cancel_resting", "cancel_taker", "cancel_both"))
        return OrderSpec(
            market=market, tick=tick, side=side, outcome=outcome,
            quantity=keys["quantity"].integer(1), price=price, order_type=order_type, tif=tif,
            expires_in_ms=expires_in, expires_at_ms=expires_at,
            post_only=keys["post_only"].boolean() if "post_only" in keys else False,
            client_order_id=keys["client_order_id"].name() if "client_order_id" in keys
            else None,
            stp=stp, name=name)

    def _name_order(self, name: str | None, user: str, order: OrderSpec, where: Field) -> None:
        if name is None:
            return
        if name in self.names or name in self.orders:
            raise where.fail(f"name '{name}' is already used by an earlier step or order")
        self.orders[name] = (user, order.market, order.tick)

    def _batch(self, f: Field) -> Batch:
        keys = f.keys(("user", "orders"))
        user = self.user(keys["user"])
        items = keys["orders"].items()
        if not 1 <= len(items) <= 20:
            raise keys["orders"].fail("a batch holds 1 to 20 orders")
        orders = []
        for item in items:
            fields = item.keys(("market", "side", "outcome", "quantity"), (*ORDER_KEYS, "name"))
            name = fields["name"].name() if "name" in fields else None
            order = self._order(fields, name)
            self._name_order(name, user, order, fields.get("name", item))
            if name is not None:
                self.names.add(name)
            orders.append(order)
        return Batch(user, tuple(orders))

    def _modify(self, kind: str, f: Field) -> Modify | Cancel:
        optional = ("user", "price", "quantity") if kind == "modify" else ("user",)
        keys = f.keys(("order",), optional)
        name = keys["order"].name()
        _owner, _market, tick = self.order(keys["order"])
        user = self.user(keys["user"]) if "user" in keys else None
        if kind == "cancel":
            return Cancel(name, user)
        if "price" not in keys and "quantity" not in keys:
            raise f.fail("modify needs a new price, a new quantity or both")
        price = keys["price"].price(tick) if "price" in keys else None
        quantity = keys["quantity"].integer(1) if "quantity" in keys else None
        return Modify(name, user, price, quantity)

    # --- collateral, resolution ----------------------------------------------------

    def _collateral(self, kind: str, f: Field) -> Collateral:
        if kind in ("split", "merge"):
            keys = f.keys(("user", "market", "quantity"))
            return Collateral(kind, self.user(keys["user"], group=True),
                              keys["quantity"].integer(1), market=self.market(keys["market"])[0])
        required = ("user", "event", "quantity", "outcomes") if kind == "convert" else (
            "user", "event", "quantity")
        keys = f.keys(required)
        event = self.event(keys["event"])
        outcomes: tuple[str, ...] = ()
        if kind == "convert":
            outcomes = tuple(self._outcome(event, o) for o in keys["outcomes"].items())
            if not outcomes:
                raise keys["outcomes"].fail("convert needs at least one outcome")
        return Collateral(kind, self.user(keys["user"], group=True),
                          keys["quantity"].integer(1), event=event.key, outcomes=outcomes)

    def _resolve(self, f: Field) -> Resolve:
        keys = f.keys(("event", "winner"))
        event = self.event(keys["event"])
        if event.is_multi:
            return Resolve(event.key, self._outcome(event, keys["winner"]))
        winner = keys["winner"].choice(("yes", "no"))
        return Resolve(event.key, "Yes" if winner == "yes" else None)

    def _outcome(self, event: EventSpec, f: Field) -> str:
        name = f.name()
        if name not in event.outcomes:
            raise f.fail(f"'{name}' is not an outcome of '{event.key}' "
                         f"(outcomes: {', '.join(event.outcomes) or 'none'})")
        return name

    # --- generated flow ------------------------------------------------------------

    def _simulate(self, f: Field) -> Simulate:
        keys = f.keys(("duration", "agents"))
        duration = keys["duration"].duration_ms(allow_zero=False)
        agents = [self._agent(a) for a in keys["agents"].items()]
        if not agents:
            raise keys["agents"].fail("simulate needs at least one agent")
        self.cursor_ms += duration
        return Simulate(duration, tuple(agents))

    def _agent(self, f: Field) -> AgentSpec:
        kind_field = f.keys(("kind",), AGENT_COMMON + sum(AGENT_KEYS.values(), ()))["kind"]
        kind = kind_field.choice(tuple(AGENT_KEYS))
        keys = f.keys(("kind", "market"), AGENT_COMMON + AGENT_KEYS[kind])
        market, tick = self.market(keys["market"])
        if "every" in keys and "rate" in keys:
            raise keys["rate"].fail("give every or rate, not both")
        interval = 5_000.0
        if "every" in keys:
            interval = float(keys["every"].duration_ms(allow_zero=False))
        elif "rate" in keys:
            interval = keys["rate"].rate_interval_ms()
        extra: dict = {}
        if kind == "market_maker":
            if "fair_value" in keys:
                extra["fair_value"] = keys["fair_value"].price(tick)
            if "spread" in keys:
                extra["spread"] = keys["spread"].price(tick)
            if "levels" in keys:
                extra["levels"] = keys["levels"].integer(1, 10)
            if "drift" in keys:
                extra["drift_ticks"] = keys["drift"].integer(0, 100)
        elif kind == "noise":
            if "width" in keys:
                extra["width"] = keys["width"].price(tick)
            if "market_orders" in keys:
                extra["market_orders"] = keys["market_orders"].units_of(_parse_fraction)
            if "ttl" in keys:
                extra["ttl_ms"] = keys["ttl"].duration_ms(allow_zero=False)
        else:
            if "knows" in keys:
                extra["knows"] = keys["knows"].choice(("yes", "no"))
            if "edge" in keys:
                extra["edge"] = keys["edge"].price(tick)
        prefix = keys["name"].name() if "name" in keys else AGENT_PREFIX[kind]
        spec = AgentSpec(
            kind=kind, prefix=prefix,
            count=keys["count"].integer(1, 10_000) if "count" in keys else 1,
            market=market, tick=tick,
            deposit=keys["deposit"].amount() if "deposit" in keys else 1_000 * 10_000,
            interval_ms=interval, size=self._range(keys, "size", (1, 20)), line=f.line,
            **extra)
        for user in spec.user_names():
            self._claim(user, keys.get("name", f))
            self.users[user] = UserSpec(user, 0, prefix)
        self.groups[prefix] = tuple(spec.user_names())
        return spec

    def _burst(self, f: Field) -> Burst:
        keys = f.keys(("users", "market", "count", "side", "outcome", "price", "quantity"),
                      ("tif", "over", "pick"))
        market, tick = self.market(keys["market"])
        price = keys["price"]
        if price.is_sequence:
            bounds = price.items()
            if len(bounds) != 2:
                raise price.fail("a price range is [low, high]")
            low, high = bounds[0].price(tick), bounds[1].price(tick)
            if low > high:
                raise price.fail("the low end of a price range must not exceed the high end")
        else:
            low = high = price.price(tick)
        over = keys["over"].duration_ms() if "over" in keys else 0
        self.cursor_ms += over
        return Burst(
            users=self.user(keys["users"], group=True), market=market, tick=tick,
            count=keys["count"].integer(1, 10_000_000),
            side=keys["side"].choice(("buy", "sell", "random")),
            outcome=keys["outcome"].choice(("yes", "no", "random")),
            price=(low, high), quantity=self._range(keys, "quantity", (1, 1)),
            tif=keys["tif"].choice(("gtc", "ioc", "fok")) if "tif" in keys else "gtc",
            over_ms=over, pick=keys["pick"].choice(("cycle", "random")) if "pick" in keys
            else "cycle")

    @staticmethod
    def _range(keys: dict[str, Field], key: str, default: tuple[int, int]) -> tuple[int, int]:
        if key not in keys:
            return default
        f = keys[key]
        if not f.is_sequence:
            value = f.integer(1)
            return (value, value)
        bounds = f.items()
        if len(bounds) != 2:
            raise f.fail(f"a {key} range is [low, high]")
        low, high = bounds[0].integer(1), bounds[1].integer(1)
        if low > high:
            raise f.fail(f"the low end of a {key} range must not exceed the high end")
        return (low, high)

    # --- references (used by ``expectations`` too) ---------------------------------

    def user(self, f: Field, group: bool = False) -> str:
        """A defined user's name (or, with ``group``, a user group's)."""
        name = f.name()
        if name in self.users or (group and name in self.groups):
            return name
        if name in self.groups:
            raise f.fail(f"'{name}' is a group of users; this step needs one user")
        known = ", ".join(sorted(u for u, s in self.users.items() if s.group is None)) or "none"
        raise f.fail(f"unknown user '{name}' (users: {known})")

    def event(self, f: Field) -> EventSpec:
        """A defined event, by key."""
        key = f.name()
        if key not in self.events:
            raise f.fail(f"unknown event '{key}' (events: {', '.join(self.events) or 'none'})")
        return self.events[key]

    def market(self, f: Field) -> tuple[MarketRef, int]:
        """A market reference (``event`` or ``event/outcome``) and the market's tick."""
        text = f.name()
        key, _, outcome = text.partition("/")
        if key not in self.events:
            raise f.fail(f"unknown event '{key}' (events: {', '.join(self.events) or 'none'})")
        event = self.events[key]
        if not event.is_multi:
            if outcome:
                raise f.fail(f"'{key}' is a yes/no event: name its market '{key}'")
            return MarketRef(key, "Yes"), event.tick
        if outcome not in event.outcomes:
            raise f.fail(f"'{key}' has several outcomes: name a market as {key}/<outcome>, "
                         f"one of {', '.join(event.outcomes)}")
        return MarketRef(key, outcome, True), event.tick

    def order(self, f: Field) -> tuple[str, MarketRef, int]:
        """A named order placed by an earlier step: (owner, market, tick)."""
        name = f.name()
        if name in self.broken:
            raise Invalid(None)
        if name not in self.orders:
            raise f.fail(f"no earlier step placed an order named '{name}'")
        return self.orders[name]


def _parse_fraction(raw: str) -> float:
    """A probability from 0 to 1 (read exactly, then used by the random generator)."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"expected a number from 0 to 1, got {raw!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"expected a number from 0 to 1, got {raw}")
    return float(value)
