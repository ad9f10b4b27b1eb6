"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Schemathesis generates requests for every operation (valid and invalid bodies, paths
and queries, plus stateful sequences following the documented links) against a live
embedded server with a funded user's token, and checks that no response is a 5xx and
that every response matches its documented schema. Bounded to ~35 s.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from .harness import Client, start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUZZ_SECONDS = 35


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory):
    srv = await start_server("embedded", tmp_path_factory.mktemp("fuzz"))
    c = Client(srv)
    try:
        yield c
    finally:
        await c.aclose()
        await srv.stop()


async def test_no_server_errors_and_every_response_matches_the_schema(live):
    st = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    if not Path(st).exists():
        pytest.skip("schemathesis is not installed")
    token, _ = await live.user("fuzzer")
    market = await live.market()
    await live.order(token, market, "yes", "buy", "0.5", 1)
    proc = await asyncio.create_subprocess_exec(
        st, "run", f"{live.server.url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        "-H", f"Authorization: Bearer {token}", "--max-time", str(FUZZ_SECONDS),
        "-n", "40", "--seed", "7", "--request-timeout", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), FUZZ_SECONDS + 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
