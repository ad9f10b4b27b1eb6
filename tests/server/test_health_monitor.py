"""``HealthMonitor`` on its own: probes run concurrently and continuously, each attempt
is bounded, and a result older than the bound is reported down (stale), never ok."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pmarket.server import health
from pmarket.server.health import GRACE_S, HealthMonitor, Probe, Result


def ok(detail: str = "fine"):
    async def check():
        return {"status": "ok", "detail": detail}
    return check


@contextlib.asynccontextmanager
async def running(monitor: HealthMonitor):
    stop = asyncio.Event()
    task = asyncio.create_task(monitor.run(stop))
    try:
        yield monitor
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(predicate, timeout_s: float = 10.0, what: str = "condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, f"{what} never held within {timeout_s} s"
        await asyncio.sleep(0.01)


async def test_probes_run_concurrently():
    """Each probe finishes only once the next one has started: run in sequence, none
    would ever finish (each waits for a probe that has not started)."""
    started = {name: asyncio.Event() for name in ("a", "b", "c")}

    def waits_for(name: str, other: str):
        async def check():
            started[name].set()
            await started[other].wait()
            return {"status": "ok", "detail": name}
        return check

    monitor = HealthMonitor({"a": Probe(waits_for("a", "b")), "b": Probe(waits_for("b", "c")),
                             "c": Probe(waits_for("c", "a"))}, interval_s=0.05, timeout_s=5)
    async with running(monitor):
        await asyncio.wait_for(monitor.ready(), 10)
        assert [monitor.component(n)["status"] for n in "abc"] == ["ok", "ok", "ok"]


async def test_results_are_refreshed_and_carry_their_age():
    calls = 0

    async def counted():
        nonlocal calls
        calls += 1
        return {"status": "ok", "detail": f"call {calls}", "extra": calls}

    monitor = HealthMonitor({"x": Probe(counted)}, interval_s=0.02, timeout_s=1)
    async with running(monitor):
        await until(lambda: calls >= 5, what="five attempts")
        component = monitor.component("x")
        assert component["status"] == "ok" and component["extra"] >= 4
        assert 0 <= component["age_ms"] <= monitor.max_age_s * 1000
        assert component["check_ms"] >= 0
    assert monitor.bounds == {"interval_s": 0.02, "timeout_s": 1,
                              "max_age_s": pytest.approx(0.02 + 1 + GRACE_S)}


async def test_an_attempt_past_the_timeout_fails_and_the_others_go_on():
    """A hanging check is a failure after ``timeout_s``, with its probe's failure status;
    the other probes keep refreshing meanwhile."""
    async def hangs():
        await asyncio.sleep(3600)
        return {"status": "ok", "detail": "never"}

    monitor = HealthMonitor({"hangs": Probe(hangs), "shared": Probe(hangs, failure="degraded"),
                             "fine": Probe(ok())}, interval_s=0.02, timeout_s=0.3)
    async with running(monitor):
        await asyncio.wait_for(monitor.ready(), 10)
        assert monitor.component("hangs") | {"age_ms": 0, "check_ms": 0} == {
            "status": "down", "detail": "no answer within 0.3 s", "age_ms": 0, "check_ms": 0}
        assert monitor.component("shared")["status"] == "degraded"
        assert monitor.component("hangs")["check_ms"] >= 300
        assert monitor.component("fine")["age_ms"] < 300  # refreshed while the other hung


async def test_an_exception_is_a_failure_that_names_it():
    async def breaks():
        raise ConnectionRefusedError("the database refused the connection")

    monitor = HealthMonitor({"db": Probe(breaks)}, interval_s=0.02, timeout_s=1)
    async with running(monitor):
        await asyncio.wait_for(monitor.ready(), 10)
        component = monitor.component("db")
        assert component["status"] == "down"
        assert component["detail"] == ("ConnectionRefusedError: the database refused the "
                                       "connection")


async def test_a_stuck_checker_is_reported_stale_never_ok():
    """A check that ignores its cancellation holds its loop: no new result comes, and
    once the latest is older than ``max_age_s`` the component is down, saying why and
    what it last said."""
    release = asyncio.Event()
    calls = 0

    async def sticks():
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"status": "ok", "detail": "answered"}
        while not release.is_set():  # a library that swallows CancelledError
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()
        return {"status": "ok", "detail": "answered late"}

    monitor = HealthMonitor({"bus": Probe(sticks), "fine": Probe(ok())},
                            interval_s=0.05, timeout_s=0.2)
    try:
        async with running(monitor):
            await asyncio.wait_for(monitor.ready(), 10)
            assert monitor.component("bus")["status"] == "ok"
            await until(lambda: calls >= 2, what="the second attempt")
            seen_ok_at = []
            while (component := monitor.component("bus"))["status"] == "ok":
                seen_ok_at.append(component["age_ms"])
                await asyncio.sleep(0.02)
            # ok only while the result was younger than the bound, then down
            assert all(age <= monitor.max_age_s * 1000 for age in seen_ok_at)
            assert component["age_ms"] > monitor.max_age_s * 1000
            assert component["status"] == "down"
            assert component["detail"].startswith("stale: last checked ")
            assert "an attempt has been running for" in component["detail"]
            assert component["detail"].endswith("it said ok: answered")
            assert monitor.component("fine")["status"] == "ok"  # the others go on
            release.set()
            await until(lambda: monitor.component("bus")["status"] == "ok",
                        what="a fresh result")
    finally:
        release.set()


async def test_a_probe_without_a_result_is_down():
    async def slow():
        await asyncio.sleep(3600)
        return {"status": "ok", "detail": "never"}

    monitor = HealthMonitor({"engine": Probe(slow)}, interval_s=1, timeout_s=60)
    assert monitor.component("engine") == {"status": "down", "detail": "not checked yet",
                                           "age_ms": None, "check_ms": None}
    async with running(monitor):
        await asyncio.sleep(0.05)
        component = monitor.component("engine")
        assert component["status"] == "down"
        assert component["detail"].startswith("not checked yet; an attempt has been running")


async def test_ready_does_not_suspend_once_every_probe_answered():
    """/health must cost one turn of the event loop: once settled, awaiting it returns
    without suspending."""
    monitor = HealthMonitor({"a": Probe(ok()), "b": Probe(ok())}, interval_s=0.05,
                            timeout_s=1)
    async with running(monitor):
        await asyncio.wait_for(monitor.ready(), 10)
        waiting = monitor.ready()
        with pytest.raises(StopIteration):
            waiting.send(None)


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (-1, 1),
                                                   (float("nan"), 1)])
def test_a_bound_not_above_zero_is_refused(interval, timeout):
    with pytest.raises(ValueError, match="above 0 s"):
        HealthMonitor({}, interval_s=interval, timeout_s=timeout)


async def test_an_on_demand_probe_runs_only_while_health_is_asked(monkeypatch):
    """The engine's probe writes to the log: parked while nobody asks, woken (and
    waited for) by a request, parked again ``DEMAND_S`` after the last one."""
    monkeypatch.setattr(health, "DEMAND_S", 0.3)
    calls = 0

    async def writes():
        nonlocal calls
        calls += 1
        return {"status": "ok", "detail": f"round trip {calls}"}

    monitor = HealthMonitor({"engine": Probe(writes, on_demand=True), "db": Probe(ok())},
                            interval_s=0.02, timeout_s=1)
    async with running(monitor):
        await until(lambda: "db" in monitor.results, what="the read-only probe")
        await asyncio.sleep(0.2)
        assert calls == 0  # nobody asked
        await asyncio.wait_for(monitor.ready(), 10)  # wakes it and waits for the result
        assert calls >= 1 and monitor.component("engine")["status"] == "ok"
        await until(lambda: calls >= 5, what="attempts while asked")
        await asyncio.sleep(0.6)  # DEMAND_S passes without a request: parked again
        parked_at = calls
        await asyncio.sleep(0.3)
        assert calls == parked_at
        assert "engine" in monitor._parked
        await asyncio.wait_for(monitor.ready(), 10)  # the first request after a quiet spell
        assert calls == parked_at + 1
        assert monitor.component("engine")["age_ms"] < 1000


def test_staleness_is_decided_on_the_age_shown():
    """A result is stale exactly when the ``age_ms`` shown exceeds the bound: 0.4 ms past
    it shows the bound and is fresh, 0.6 ms past it shows bound + 1 and is stale (it was
    stale while showing the bound: a CI failure, ``2500 > 2500.0``)."""
    now = [100.0]
    monitor = HealthMonitor({}, interval_s=0.5, timeout_s=1, clock=lambda: now[0])
    bound_ms = round(monitor.max_age_s * 1000)
    monitor.results["x"] = Result({"status": "ok", "detail": "fine"}, 100.0, 0.001)
    for past_ms, shown, status in ((0.4, bound_ms, "ok"), (0.6, bound_ms + 1, "down")):
        now[0] = 100.0 + monitor.max_age_s + past_ms / 1000
        component = monitor.component("x")
        assert (component["age_ms"], component["status"]) == (shown, status)
