"""Sign-in protection: lockouts per account and address, per-address limits, bcrypt pool.

A wrong e-mail and a wrong password must stay indistinguishable under lockouts too: the
same statuses in the same order, the same bcrypt cost.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
import pytest_asyncio

from pmarket.server.security import HASHER_NICE, HasherBusy, PasswordHasher, hash_password
from pmarket.server.throttle import FailureThrottle, SigninGuard

from .harness import Client, start_server

# --- the throttle itself, on a fake clock ---------------------------------------------


def test_free_failures_then_a_lockout_that_doubles_up_to_the_cap():
    t = FailureThrottle(free_failures=3, base_lockout_s=1.0, max_lockout_s=4.0)
    assert [t.attempt("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert t.attempt("k", now=0.0) == 0.0      # the 4th may run, and locks the key 1 s
    assert t.attempt("k", now=0.5) == pytest.approx(0.5)
    assert t.attempt("k", now=1.0) == 0.0      # 5th: locks 2 s
    assert t.attempt("k", now=2.9) == pytest.approx(0.1)
    assert t.attempt("k", now=3.0) == 0.0      # 6th: 4 s
    assert t.attempt("k", now=7.0) == 0.0      # 7th: still 4 s (the cap)
    assert t.attempt("k", now=10.9) == pytest.approx(0.1)


def test_concurrent_guesses_cannot_slip_through_together():
    t = FailureThrottle(free_failures=2, base_lockout_s=10.0)
    # Twenty attempts at the same instant, none answered yet: only 3 may check a password.
    allowed = [t.attempt("k", now=0.0) == 0.0 for _ in range(20)]
    assert allowed.count(True) == 3 and allowed[:3] == [True] * 3


def test_success_forgets_and_idle_keys_are_forgotten():
    t = FailureThrottle(free_failures=1, base_lockout_s=5.0, forget_after_s=60.0)
    t.attempt("a", now=0.0)
    t.succeeded("a")
    assert t.failures("a") == 0
    t.attempt("b", now=0.0)
    t.attempt("b", now=0.0)                    # locked until 5
    assert t.attempt("b", now=100.0) == 0.0    # idle past forget_after: a fresh start
    assert t.failures("b") == 1


def test_an_address_gets_only_its_own_attempt_back_on_success():
    guard = SigninGuard(FailureThrottle(free_failures=100), FailureThrottle(free_failures=3))
    for i in range(3):
        guard.attempt(f"victim{i}@x.io", "10.0.0.1")        # three failed guesses
    guard.attempt("me@x.io", "10.0.0.1")
    guard.succeeded("me@x.io", "10.0.0.1")                   # its own valid account
    assert guard.address.failures(("addr", "10.0.0.1")) == 3  # the guesses still count


def test_memory_stays_bounded():
    t = FailureThrottle(max_keys=100, forget_after_s=1e9)
    for i in range(1000):
        t.attempt(i, now=float(i))
    assert len(t._keys) <= 101


# --- the bcrypt pool ----------------------------------------------------------------


async def test_hasher_refuses_calls_beyond_its_queue_at_once():
    hasher = PasswordHasher(rounds=4, threads=1, max_waiting=1)
    try:
        first = asyncio.ensure_future(hasher.hash("a long enough password"))
        await asyncio.sleep(0)
        with pytest.raises(HasherBusy):
            await hasher.hash("another password")
        assert (await first).startswith("$2b$04$")
    finally:
        hasher.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="a thread has a CPU priority of its own on Linux only")
async def test_hashing_threads_yield_the_cpu_to_the_event_loop():
    """A sign-in flood keeps the hashing threads busy: they run at a lower priority
    than the server's own threads, so the event loop serving everyone comes first."""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    hasher = PasswordHasher(rounds=4, threads=2)
    try:
        loop = asyncio.get_running_loop()
        niceness = await asyncio.gather(*(
            loop.run_in_executor(hasher._pool, os.getpriority, os.PRIO_PROCESS, 0)
            for _ in range(4)))
        assert set(niceness) == {min(19, mine + HASHER_NICE)}
        assert os.getpriority(os.PRIO_PROCESS, 0) == mine  # this thread is left alone
        assert await asyncio.to_thread(os.getpriority, os.PRIO_PROCESS, 0) == mine
    finally:
        hasher.close()


async def test_unknown_account_costs_a_hash_of_the_configured_cost():
    hasher = PasswordHasher(rounds=5)
    try:
        assert await hasher.verify("guess", None) is False
        assert hasher._dummy.startswith("$2b$05$")
        real = hash_password("correct horse", 5)
        assert await hasher.verify("correct horse", real) is True
        assert await hasher.verify("wrong", real) is False
    finally:
        hasher.close()


# --- through the server -------------------------------------------------------------

PASSWORD = "harness trader key"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("guarded"),
                             signin_free_failures=3, signin_lockout_s=30.0,
                             signin_address_free_failures=1000)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def _signin(c: Client, email: str, password: str):
    return await c.http.post("/auth/signin", json={"email": email, "password": password})


async def _account(c: Client) -> str:
    email = f"t-{uuid.uuid4().hex[:10]}@example.com"
    r = await c.http.post("/auth/signup", json={"email": email, "name": "T",
                                                "password": PASSWORD})
    assert r.status_code == 201, r.text
    return email


@pytest.mark.asyncio(loop_scope="module")
async def test_lockout_answers_429_and_does_not_reveal_whether_the_email_exists(guarded):
    email = await _account(guarded)
    known = [(await _signin(guarded, email, "wrong password")).status_code
             for _ in range(6)]
    unknown = [(await _signin(guarded, "nobody-" + email, "wrong password")).status_code
               for _ in range(6)]
    assert known == unknown == [401, 401, 401, 401, 429, 429]
    r = await _signin(guarded, email, "wrong password")
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 30


@pytest.mark.asyncio(loop_scope="module")
async def test_a_locked_account_refuses_even_the_right_password(guarded):
    email = await _account(guarded)
    for _ in range(4):
        await _signin(guarded, email, "wrong password")
    r = await _signin(guarded, email, PASSWORD)
    assert r.status_code == 429


@pytest.mark.asyncio(loop_scope="module")
async def test_success_resets_the_count(guarded):
    email = await _account(guarded)
    for _ in range(2):
        assert (await _signin(guarded, email, "wrong password")).status_code == 401
    assert (await _signin(guarded, email, PASSWORD)).status_code == 200
    for _ in range(3):
        assert (await _signin(guarded, email, "wrong password")).status_code == 401


@pytest.mark.asyncio(loop_scope="module")
async def test_admin_and_user_accounts_are_throttled_apart(guarded):
    from .harness import ADMIN_EMAIL, ADMIN_PASSWORD

    for _ in range(5):
        await _signin(guarded, ADMIN_EMAIL, "wrong password")   # user sign-in: no such user
    r = await guarded.http.post("/auth/admin/signin",
                                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def by_address(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("by_address"),
                             auth_rate_limit_per_s=0.01, auth_rate_limit_burst=3,
                             public_rate_limit_per_s=0.01, public_rate_limit_burst=5)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_signups_and_signins_are_limited_per_address(by_address):
    codes = []
    for i in range(3):
        r = await by_address.http.post("/auth/signup", json={
            "email": f"addr{i}@example.com", "name": "A", "password": "a password long"})
        codes.append(r.status_code)
    r = await _signin(by_address, "addr0@example.com", "a password long")
    assert codes == [201, 201, 201] and r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1


@pytest.mark.asyncio(loop_scope="module")
async def test_public_market_data_is_limited_per_address(by_address):
    codes = [(await by_address.http.get("/events")).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]


def test_an_attempt_that_was_never_checked_does_not_count():
    t = FailureThrottle(free_failures=1, base_lockout_s=10.0)
    t.attempt("k", now=0.0)
    t.attempt("k", now=0.0)                  # past the free one: locks
    assert t.attempt("k", now=1.0) > 0
    t.withdraw("k")                          # ... but its password was never checked
    assert t.failures("k") == 1 and t.attempt("k", now=1.0) == 0.0


async def test_a_database_outage_during_sign_in_locks_nobody_out(monkeypatch):
    from pmarket.server.routes import auth

    class Outage(Exception):
        pass

    async def broken_read(*args, **kwargs):
        raise Outage

    guard = SigninGuard(FailureThrottle(free_failures=1), FailureThrottle(free_failures=1))

    class Runtime:
        signin_guard = guard

    class Request:
        client = None
        scope: dict = {}  # no client: "unknown" (clientaddr.scope_address)

    monkeypatch.setattr(auth, "read", broken_read)
    for _ in range(5):
        with pytest.raises(Outage):
            await auth._signin(Runtime, Request, None, "user", "a@x.io", "pw")
    assert guard.account.failures(("email", "user:a@x.io")) == 0
