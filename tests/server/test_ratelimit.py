"""Per-user rate limits answer 429 with Retry-After, and only for the caller over it."""

from __future__ import annotations

import pytest
import pytest_asyncio

from .harness import Client, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("limited"),
                             rate_limit_per_s=1.0, rate_limit_burst=5)
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def test_a_user_over_the_limit_gets_429_and_others_do_not(limited):
    a, _ = await limited.user(cash=None)
    b, _ = await limited.user(cash=None)
    codes = [(await limited.http.get("/balance", headers=limited.auth(a))).status_code
             for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    r = await limited.http.get("/balance", headers=limited.auth(a))
    assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    assert (await limited.http.get("/balance", headers=limited.auth(b))).status_code == 200
