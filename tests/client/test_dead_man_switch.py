"""The client's dead-man switch against the real embedded server: heartbeats in the
background, disarmed on a normal exit, left to fire after an exception, and a firing
reported once.

The module has its own server (``conftest.server`` is module-scoped) whose engine clock
the tests push forward instead of waiting for the 5 s timeout to pass.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from pmarket.client import ApiError, AsyncClient, Client, DeadManSwitch
from pmarket.runtime.runner import now_ms
from tests.client.conftest import ADMIN

_n = itertools.count()
TIMEOUT_S = 5
FAST = 0.05  # seconds between heartbeats in these tests


class Clock:
    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return now_ms() + self.offset


@pytest.fixture(scope="module")
def clock(server) -> Clock:
    service = server._server.config.app.state.runtime.service
    clock = Clock()
    service.clock = clock
    service.expire_every_s = 0.02
    return clock


def trader(server) -> tuple[Client, int]:
    """A funded user with one resting order: (client, market id)."""
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    market = admin.create_event(f"E{next(_n)}").outcomes[0].market_id
    api = Client(server.url)
    i = next(_n)
    api.signup(f"dms{i}@example.com", f"User {i}", "a-long-password")
    api.onramp("100")
    api.place_order(market, "yes", "buy", 1, "0.40")
    return api, market


def open_count(api: Client) -> int:
    return api.orders(status="open").total


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pass_the_deadline(api: Client, clock: Clock, switch: DeadManSwitch) -> None:
    assert switch.last is not None
    clock.offset += int(switch.last.expires_at.timestamp() * 1000) - clock() + 1_000


def test_heartbeats_go_out_in_the_background_and_a_normal_exit_disarms(server, clock):
    api, market = trader(server)
    with api.dead_man_switch(timeout_s=TIMEOUT_S, interval_s=FAST) as switch:
        first = switch.last
        wait_for(lambda: switch.beats >= 3, "three heartbeats")
        assert switch.last.expires_at > first.expires_at
        assert switch.fired_at is None and switch.last_error is None
    pass_the_deadline(api, clock, switch)
    api.place_order(market, "yes", "buy", 1, "0.30")  # a command past the old deadline
    time.sleep(0.1)
    assert open_count(api) == 2


def test_leaving_by_an_exception_leaves_the_switch_to_fire(server, clock):
    api, _ = trader(server)
    with pytest.raises(KeyError), api.dead_man_switch(TIMEOUT_S, FAST) as switch:
        raise KeyError("the bot failed")
    beats = switch.beats
    pass_the_deadline(api, clock, switch)
    wait_for(lambda: open_count(api) == 0, "the switch to cancel the order")
    assert switch.beats == beats  # nothing beats any more


def test_a_firing_is_reported_once_to_on_fired(server, clock):
    api, _ = trader(server)
    fired = []
    with api.dead_man_switch(TIMEOUT_S, FAST, on_fired=fired.append) as switch:
        pass_the_deadline(api, clock, switch)
        wait_for(lambda: fired, "on_fired")
        time.sleep(5 * FAST)  # later beats arm it again and report nothing
        assert len(fired) == 1 and switch.fired_at == fired[0].fired_at
        assert open_count(api) == 0


def test_bad_settings_fail_at_once(server, clock):
    api, _ = trader(server)
    with pytest.raises(ApiError) as err, api.dead_man_switch(timeout_s=4):
        pass
    assert (err.value.status, err.value.code) == (422, "invalid_field")
    with pytest.raises(ValueError):
        api.dead_man_switch(timeout_s=5, interval_s=5)


def test_the_async_switch_beats_reports_a_firing_and_disarms(server, clock):
    sync_api, market = trader(server)

    async def main() -> None:
        api = AsyncClient(server.url, sync_api.token)
        fired = []

        async def note(beat) -> None:
            fired.append(beat)

        async with api.dead_man_switch(TIMEOUT_S, FAST, on_fired=note) as switch:
            while switch.beats < 3:
                await asyncio.sleep(FAST)
            pass_the_deadline(sync_api, clock, switch)
            while not fired:
                await asyncio.sleep(0.02)
        assert switch.fired_at == fired[0].fired_at and len(fired) == 1
        await api.place_order(market, "yes", "buy", 1, "0.30")
        pass_the_deadline(sync_api, clock, switch)  # disarmed at the exit: nothing fires
        await api.place_order(market, "yes", "buy", 1, "0.31")
        assert (await api.orders(status="open")).total == 2
        await api.close()

    asyncio.run(main())
