"""Through a real server (embedded and deployment): an order the worker cannot store is
parked while the other user's side of the trade is stored, ``/health`` names it, and
``pmarket worker dlq replay`` after the fix makes it readable and health ok again."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from pmarket.cli import load_commands
from pmarket.worker import batch
from tests.server.harness import Client, start_server

KINDS = ["embedded", pytest.param("deployment", marks=[pytest.mark.redis,
                                                       pytest.mark.postgres])]
POISON_COID = "poison-1"


async def _health(client: Client) -> tuple[int, dict]:
    r = await client.http.get("/health")
    return r.status_code, r.json()


async def _until(predicate, what: str, timeout_s: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_parked_order_is_named_by_health_and_healed_by_a_replay(kind, tmp_path,
                                                                       monkeypatch):
    real_order = batch.Batch._order

    def poisoned(self, e, d, index):  # a crafted poison value, at the worker's boundary
        if e.client_order_id == POISON_COID:
            raise ValueError("crafted poison: this order cannot be stored")
        real_order(self, e, d, index)

    monkeypatch.setattr(batch.Batch, "_order", poisoned)
    # The worker in this process (not a child), so the crafted poison reaches it.
    server = await start_server(kind, tmp_path, worker_process=False)
    client = Client(server)
    try:
        status, body = await _health(client)
        assert (status, body["components"]["projection"]["status"]) == (200, "ok")
        market = await client.market()
        maker, _ = await client.user()
        taker, _ = await client.user()
        resting = (await client.order(maker, market, "yes", "buy", "0.5", 2))["order"]
        placed = await client.order(taker, market, "no", "buy", "0.5", 2,
                                    client_order_id=POISON_COID)
        assert placed["order"]["status"] == "filled" and placed["trades"]

        async def parked_count():
            _, body = await _health(client)
            return body["components"]["projection"]["parked"]

        await _until(parked_count, "the poison order parked")
        status, body = await _health(client)
        projection = body["components"]["projection"]
        assert status == 200 and body["status"] == "degraded"
        assert projection["status"] == "degraded" and projection["parked"] == 1
        assert projection["detail"].startswith("1 event(s) parked")
        # The other user's order, the trade and both balances are stored.
        r = await client.http.get(f"/orders/{resting['id']}", headers=client.auth(maker))
        assert r.status_code == 200 and r.json()["status"] == "filled"
        r = await client.http.get(f"/orders/{placed['order']['id']}",
                                  headers=client.auth(taker))
        assert r.status_code == 404  # the database lacks it, and /health says so

        monkeypatch.setattr(batch.Batch, "_order", real_order)  # the fix
        result = await asyncio.to_thread(
            CliRunner().invoke, load_commands(),
            ["worker", "dlq", "replay", "--all", "--database-url",
             server.settings.database_url])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith(": stored")
        r = await client.http.get(f"/orders/{placed['order']['id']}",
                                  headers=client.auth(taker))
        assert r.status_code == 200 and r.json()["status"] == "filled"

        async def healed():  # the next background check of the projection sees it
            status, body = await _health(client)
            return (status, body["status"], body["components"]["projection"]["parked"]) \
                == (200, "ok", 0)
        await _until(healed, "health ok again after the replay")
    finally:
        await client.aclose()
        await server.stop()
