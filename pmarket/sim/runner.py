"""Running a scenario against a target and checking its expectations.

The runner creates the scenario's events and users, then executes its steps in order
on the simulated clock: scripted commands, agent simulations and load bursts. After
every step it checks the step's expectations, treats a refused scripted command as a
failure unless the step expects that refusal, and audits the money invariant. It never
stops at the first failure: the report lists them all.

A target may not offer everything (the HTTP API has no simulated clock): a step whose
request raises ``Unsupported`` is skipped, and a gtd order still open when the simulated
clock passes its expiry cannot expire on a target without ``simulated_clock``. Either
way the report gets a note at that step ("not available over <target>: ..."), and from
then on the exchange no longer follows the scenario, so later expectations are skipped
with a note each (the audit still runs).

Invariant: a run is a pure function of (scenario, seed, scale) and the target's
behaviour: time comes from ``SimClock``, randomness from generators seeded by the seed,
and the iteration order of everything is fixed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from time import perf_counter_ns

from ..engine import units
from .agents import AGENTS, Agent, burst_orders
from .clock import SimClock
from .expectations import check
from .report import Failure, Recorder, Report, build
from .scenario import (
    Advance,
    Batch,
    Burst,
    Cancel,
    CancelAll,
    Collateral,
    EventAdmin,
    MarketRef,
    Modify,
    Money,
    OrderSpec,
    Place,
    Resolve,
    Scenario,
    Simulate,
    Step,
)
from .targets import (
    ErrorDetail,
    EventInfo,
    InProcessTarget,
    OrderRequest,
    Result,
    Target,
    Trader,
    Unsupported,
)

__all__ = ["estimate_work", "run_scenario"]

Progress = Callable[[int], None]
"""Called with how many units of work (steps, generated orders, agent actions) finished."""

MIN_GROUP = 10
"""A load scenario's user groups keep at least this many members when scaled down."""

_BURST_TICK = 1_000
_SIM_TICK = 100


def run_scenario(scenario: Scenario, target: Target | None = None, seed: int | None = None,
                 scale: float = 1.0, progress: Progress | None = None) -> Report:
    """Run one scenario and report what happened.

    Args:
        scenario: a validated scenario (see ``load_scenario``).
        target: the exchange to drive; default a fresh in-process engine.
        seed: overrides the scenario's seed.
        scale: multiplies generated flow: the order count of every load burst, the size
            of a load scenario's user groups (at least ``MIN_GROUP``) and the duration of
            every agent simulation (tests run them small).
        progress: receives units of finished work (``estimate_work`` gives the total).

    Returns:
        The report; ``report.passed`` is False when any expectation failed.
    """
    return Runner(scenario, target or InProcessTarget(), seed, scale, progress).run()


def estimate_work(scenario: Scenario, scale: float = 1.0) -> int:
    """How many units of work ``run_scenario`` will report through ``progress``."""
    total = 0
    for step in scenario.steps:
        action = step.action
        if isinstance(action, Burst):
            total += _scaled(action.count, scale)
        elif isinstance(action, Simulate):
            duration = _scaled(action.duration_ms, scale)
            total += sum(int(a.count * duration / a.interval_ms)
                         for a in action.agents)
        else:
            total += 1
    return total


def _scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def _scaled_groups(scenario: Scenario, scale: float) -> dict[str, tuple[str, ...]]:
    """A load scenario's user groups cut to ``scale`` (never below ``MIN_GROUP``)."""
    if not scenario.is_load or scale >= 1:
        return scenario.groups
    return {name: members[:max(min(len(members), MIN_GROUP), _scaled(len(members), scale))]
            for name, members in scenario.groups.items()}


class Runner:
    """The state of one run; also the ``Facts`` that expectations are checked against."""

    def __init__(self, scenario: Scenario, target: Target, seed: int | None, scale: float,
                 progress: Progress | None):
        self.scenario = scenario
        self.target = target
        self.seed = scenario.seed if seed is None else seed
        self.scale = scale
        self.progress = progress or (lambda n: None)
        self.clock = SimClock()
        self.rec = Recorder()
        self.users: dict[str, Trader] = {}
        self.net_deposits: dict[str, int] = {}
        self.events: dict[str, EventInfo] = {}
        self.markets: dict[MarketRef, int] = {}
        self.deleted: set[MarketRef] = set()
        self.named: dict[str, tuple[Trader, int]] = {}
        self.order_ticks: dict[str, int] = {}
        self.failures: list[Failure] = []
        self.step_result: Result | None = None
        self.trade_mark = 0
        self.notes: list[str] = []
        self.step: Step | None = None
        self.diverged: str | None = None
        self.clock_ok = getattr(target, "simulated_clock", True)
        self.reasons_ok = getattr(target, "order_reasons", True)
        self.groups = _scaled_groups(scenario, scale)
        self.members = {m for group in self.groups.values() for m in group}
        self.dropped = {m for group in scenario.groups.values() for m in group} - self.members
        self.gtd: list[tuple[int, int, Trader]] = []  # (simulated expiry, order id, owner)

    # --- facts for expectations ----------------------------------------------------

    def user(self, name: str) -> Trader:
        """The signed-up user of a scenario name (``expectations.Facts``)."""
        return self.users[name]

    def market_id(self, ref: MarketRef) -> int:
        """The target's id of a market reference (``expectations.Facts``)."""
        return self.markets[ref]

    def named_order(self, name: str) -> tuple[Trader, int] | None:
        """Owner and id of a named order, None if never placed (``expectations.Facts``)."""
        return self.named.get(name)

    def trades_since_mark(self) -> list[tuple[int, int, str, int]]:
        """(price, quantity, kind, fee) of trades since the last checkpoint step."""
        return [(p, q, k, f) for _m, p, q, k, _t, f in self.rec.trades[self.trade_mark:]]

    # --- the run -------------------------------------------------------------------

    def run(self) -> Report:
        """Set up, execute every step, check every expectation, build the report."""
        started = perf_counter_ns()
        self.target.advance_to(self.clock.now_ms)
        self._setup()
        for step in self.scenario.steps:
            self._step(step)
        wall = perf_counter_ns() - started
        return build(self.scenario, self.seed, self.target, self.rec, self.users,
                     self.net_deposits,
                     {r: m for r, m in self.markets.items() if r not in self.deleted},
                     self.failures, self.clock.elapsed_ms, wall, self.notes)

    def call(self, op: str, method: Callable[..., Result], *args) -> Result:
        """Send one request to the target, timing and recording it."""
        t0 = perf_counter_ns()
        result = method(*args)
        self.rec.record(op, perf_counter_ns() - t0, result)
        if not self.clock_ok and op in ("place", "place_batch"):
            self._track_gtd(args[0], args[1], result)
        return result

    # --- what the target cannot do -------------------------------------------------

    def _note(self, text: str) -> None:
        where = self.step.label if self.step else "setup"
        self.notes.append(f"{where}: not available over {self.target.name}: {text}")

    def _track_gtd(self, user: Trader, request, result: Result) -> None:
        """Remember gtd orders left resting, to notice expiries the target cannot make."""
        pairs = zip(request, result.items, strict=False) if isinstance(request, list) \
            else [(request, result)]
        for req, res in pairs:
            order = res.order
            if (req.time_in_force == "gtd" and req.expires_at_ms is not None
                    and order is not None and order.status in ("open", "partially_filled")):
                heapq.heappush(self.gtd, (req.expires_at_ms, order.id, user))

    def _missed_expiries(self, now_ms: int) -> None:
        """Note the gtd orders due by ``now_ms`` that the target still has open."""
        missed = []
        while self.gtd and self.gtd[0][0] <= now_ms:
            due, order_id, user = heapq.heappop(self.gtd)
            state = self.target.order(user, order_id)
            if state is not None and state.status in ("open", "partially_filled"):
                missed.append((due, order_id))
        if not missed:
            return
        due_s = ", ".join(f"#{oid} at +{(due - self.clock.start_ms) / 1000:g}s"
                          for due, oid in missed[:3])
        more = f" and {len(missed) - 3} more" if len(missed) > 3 else ""
        self._note(f"gtd expiry on the simulated clock ({len(missed)} order(s) due: "
                   f"{due_s}{more}); the server expires orders in wall-clock time, so they "
                   "stay on its book")
        self._diverge(f"gtd orders could not expire at {self._where()}")

    def _where(self) -> str:
        return self.step.label if self.step else "setup"

    def _diverge(self, reason: str) -> None:
        if self.diverged is None:
            self.diverged = reason

    def _setup(self) -> None:
        for spec in self.scenario.events:
            info = self.target.create_event(spec.title, list(spec.outcomes),
                                            units.format_price(spec.tick, spec.tick),
                                            units.format_units(spec.fee_rate, 2))
            self.events[spec.key] = info
            for outcome, market_id in info.markets.items():
                self.markets[MarketRef(spec.key, outcome, spec.is_multi)] = market_id
        for user in self.scenario.users:
            if user.name in self.dropped:
                continue
            self.users[user.name] = self.target.signup(user.name)
            self.net_deposits[user.name] = 0
            if user.deposit:
                self._money("deposit", user.name, user.deposit)

    def _move(self, now_ms: int) -> None:
        """Advance the clock (and the target's) to ``now_ms`` if it is later."""
        if self.clock.move_to(now_ms):
            self.call("advance", self.target.advance_to, now_ms)
            if self.gtd and self.gtd[0][0] <= now_ms:
                self._missed_expiries(now_ms)

    def _step(self, step: Step) -> None:
        self.step = step
        if step.at_ms is not None:
            self._move(self.clock.at(step.at_ms))
        action = step.action
        try:
            self.step_result = None if action is None else self._do(action, step)
        except Unsupported as exc:
            self.step_result = None
            self._note(f"{exc}; step skipped")
            self._diverge(f"{step.label} was skipped")
        if not isinstance(action, Simulate | Burst):
            self.progress(1)
        self._check(step)
        if action is None:
            self.trade_mark = len(self.rec.trades)

    def _check(self, step: Step) -> None:
        result = self.step_result
        expects_refusal = any(c.kind == "step" and c.field == "rejected" for c in step.expect)
        if result is not None and not expects_refusal:
            error = result.error or next((i.error for i in result.items if i.error), None)
            if error is not None:
                self._fail(step, "result", step.line, "success",
                           f"rejected: {error.code} ({error.message})")
        expect = step.expect
        if self.diverged is not None:
            skipped = [c for c in expect if c.kind != "audit"]
            if skipped:
                self._note(f"{len(skipped)} expectation(s) skipped: the exchange no longer "
                           f"follows the scenario ({self.diverged})")
                expect = [c for c in expect if c.kind == "audit"]
        if not self.reasons_ok:
            reasons = [c for c in expect if c.field == "reason"]
            if reasons:
                self._note(f"{len(reasons)} order close reason expectation(s) skipped (the "
                           "API's Order has no reason field)")
                expect = [c for c in expect if c.field != "reason"]
        for c in expect:
            miss = check(c, self)
            if miss is not None:
                self._fail(step, c.label, c.line, miss.expected, miss.found)
        audit = self.target.audit()
        if not audit.ok:
            self._fail(step, "audit (after every step)", step.line, "ok",
                       "; ".join(audit.problems) or f"off by {audit.difference}")

    def _fail(self, step: Step, what: str, line: int, expected: str, found: str) -> None:
        self.failures.append(Failure(step.label, what, line, expected, found))

    # --- scripted actions ----------------------------------------------------------

    def _do(self, action, step: Step) -> Result | None:
        t = self.target
        if isinstance(action, Place):
            user = self.users[action.user]
            result = self.call("place", t.place, user, self._request(action.order))
            self._name(action.order, user, result)
            return result
        if isinstance(action, Batch):
            user = self.users[action.user]
            requests = [self._request(o) for o in action.orders]
            result = self.call("place_batch", t.place_batch, user, requests)
            for spec, item in zip(action.orders, result.items, strict=False):
                self._name(spec, user, item)
            return result
        if isinstance(action, Modify | Cancel):
            return self._on_order(action)
        if isinstance(action, CancelAll):
            market = self.markets[action.market] if action.market else None
            return self._fan_out(action.user, lambda u: self.call(
                "cancel_all", t.cancel_all, u, market))
        if isinstance(action, Collateral):
            return self._collateral(action)
        if isinstance(action, Money):
            return self._fan_out_names(action.user, lambda name: self._money(
                action.op, name, action.amount))
        if isinstance(action, EventAdmin):
            event_id = self.events[action.event].id
            if action.op in ("close", "reopen"):
                status = "closed" if action.op == "close" else "active"
                return self.call(action.op, t.set_event_status, event_id, status)
            if action.op == "void":
                return self.call("void", t.void, event_id)
            result = self.call("delete_event", t.delete_event, event_id)
            if result.ok:  # its markets are gone: stop reporting on them
                self.deleted.update(r for r in self.markets if r.event == action.event)
            return result
        if isinstance(action, Resolve):
            info = self.events[action.event]
            winner = info.markets[action.winner] if action.winner else None
            return self.call("resolve", t.resolve, info.id, winner)
        if isinstance(action, Advance):
            self._move(self.clock.now_ms + action.ms)
            return None
        if isinstance(action, Simulate):
            self._simulate(action, step)
            return None
        self._burst(action, step)
        return None

    def _request(self, o: OrderSpec) -> OrderRequest:
        expires = None
        if o.expires_in_ms is not None:
            expires = self.clock.now_ms + o.expires_in_ms
        elif o.expires_at_ms is not None:
            expires = self.clock.at(o.expires_at_ms)
        price = None if o.price is None else units.format_price(o.price, o.tick)
        return OrderRequest(self.markets[o.market], o.outcome, o.side, o.quantity, price,
                            o.order_type, o.tif, expires, o.post_only, o.client_order_id, o.stp)

    def _name(self, spec: OrderSpec, user: Trader, result: Result) -> None:
        if spec.name is not None and result.order is not None:
            self.named[spec.name] = (user, result.order.id)
            self.order_ticks[spec.name] = spec.tick

    def _on_order(self, action: Modify | Cancel) -> Result:
        known = self.named.get(action.order)
        if known is None:
            return Result(error=ErrorDetail(
                code="unknown_order",
                message=f"the order named '{action.order}' was never placed"))
        owner, order_id = known
        user = self.users[action.user] if action.user else owner
        if isinstance(action, Cancel):
            return self.call("cancel", self.target.cancel, user, order_id)
        tick = self.order_ticks[action.order]
        price = None if action.price is None else units.format_price(action.price, tick)
        return self.call("modify", self.target.modify, user, order_id, price, action.quantity)

    def _collateral(self, a: Collateral) -> Result:
        t = self.target
        methods = {"split": t.split, "merge": t.merge, "split_event": t.split_event,
                   "merge_event": t.merge_event}
        if a.market is not None:
            market_id = self.markets[a.market]
            return self._fan_out(a.user, lambda u: self.call(a.op, methods[a.op], u,
                                                             market_id, a.quantity))
        info = self.events[str(a.event)]
        if a.op == "convert":
            ids = [info.markets[o] for o in a.outcomes]
            return self._fan_out(a.user, lambda u: self.call("convert", t.convert, u, info.id,
                                                             ids, a.quantity))
        return self._fan_out(a.user, lambda u: self.call(a.op, methods[a.op], u, info.id,
                                                         a.quantity))

    def _money(self, op: str, name: str, amount: int) -> Result:
        method = self.target.deposit if op == "deposit" else self.target.withdraw
        result = self.call(op, method, self.users[name], units.format_money(amount))
        if result.ok:
            self.net_deposits[name] += amount if op == "deposit" else -amount
        return result

    def _members(self, name: str) -> tuple[str, ...]:
        return self.groups.get(name, (name,))

    def _fan_out(self, name: str, send: Callable[[Trader], Result]) -> Result:
        return self._fan_out_names(name, lambda member: send(self.users[member]))

    def _fan_out_names(self, name: str, send: Callable[[str], Result]) -> Result:
        """Send to one user, or to every member of a group (first error kept)."""
        results = [send(member) for member in self._members(name)]
        if len(results) == 1:
            return results[0]
        combined = Result(error=next((r.error for r in results if r.error), None))
        for r in results:
            combined.cancelled.extend(r.cancelled)
        return combined

    # --- generated flow ------------------------------------------------------------

    def _simulate(self, sim: Simulate, step: Step) -> None:
        start = self.clock.now_ms
        end = start + _scaled(sim.duration_ms, self.scale)
        agents: list[Agent] = []
        for a_index, spec in enumerate(sim.agents):
            market_id = self.markets[spec.market]
            for i, name in enumerate(spec.user_names()):
                self._money("deposit", name, spec.deposit)
                rng = random.Random(f"{self.seed}:{step.index}:{a_index}:{i}")
                agents.append(AGENTS[spec.kind](spec, self.users[name], market_id, rng,
                                                self.target, self.call))
        heap = [(start + agent.next_delay_ms(), k) for k, agent in enumerate(agents)]
        heapq.heapify(heap)
        done = 0
        while heap and heap[0][0] <= end:
            when, k = heapq.heappop(heap)
            self._move(when)
            agents[k].act(when)
            heapq.heappush(heap, (when + agents[k].next_delay_ms(), k))
            done += 1
            if done % _SIM_TICK == 0:
                self.progress(_SIM_TICK)
        self.progress(done % _SIM_TICK)
        self._move(end)

    def _burst(self, burst: Burst, step: Step) -> None:
        count = _scaled(burst.count, self.scale)
        users = [self.users[name] for name in self._members(burst.users)]
        rng = random.Random(f"{self.seed}:{step.index}:burst")
        start = self.clock.now_ms
        place, call = self.target.place, self.call
        done = 0
        for offset, user, request in burst_orders(burst, count, users,
                                                  self.markets[burst.market], rng):
            if offset:
                self._move(start + offset)
            call("place", place, user, request)
            done += 1
            if done % _BURST_TICK == 0:
                self.progress(_BURST_TICK)
        self.progress(done % _BURST_TICK)
        self._move(start + burst.over_ms)
