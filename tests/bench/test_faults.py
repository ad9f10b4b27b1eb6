"""``pmarket bench faults`` in small: kill -9 under concurrent order load, restart, and
nothing acknowledged is missing or doubled; no process, key or schema is left behind.

The embedded run kills ``pmarket serve`` — the main process alone (its worker child must
die with it) and the whole process group, in turn; the deployment run kills the worker
and the engine. The larger runs (10 rounds, 8 clients) are the command itself.
"""

from __future__ import annotations

import orjson
import pytest

from pmarket.bench import faults
from tests.services import postgres_url_or_skip, redis_url_or_skip

from .helpers import run_cli

pytestmark = pytest.mark.slow


def assert_nothing_lost(result: faults.FaultResult, rounds: int) -> None:
    assert len(result.rounds) == rounds
    assert result.acknowledged > 100 and result.resent > 0, result  # kills hit the load
    assert result.missing == 0, result.problems
    assert result.duplicated == 0 and result.mismatched == 0, result.problems
    assert result.balances_checked == result.clients and result.balance_mismatches == 0
    assert result.reconcile_differences == 0, result.problems
    assert result.audit_ok and result.audit_exact, result.problems
    assert result.ok
    assert all(r.recover_s > 0 for r in result.rounds)


def test_embedded_server_killed_alone_and_with_its_group(monkeypatch):
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    result = faults.run(faults.Options(mode="embedded", rounds=3, clients=3, load_s=1.0))
    assert_nothing_lost(result, 3)
    assert [r.killed for r in result.rounds] == [
        "server (main process alone)", "server and worker (process group)",
        "server (main process alone)"]
    assert result.orphans == 0 and not any(r.orphan for r in result.rounds)


@pytest.mark.redis
@pytest.mark.postgres
def test_deployment_worker_and_engine_killed_through_the_cli():
    redis_url, postgres_url = redis_url_or_skip(), postgres_url_or_skip()
    out = run_cli("bench", "faults", "--mode", "deployment", "--rounds", "2", "--clients",
                  "3", "--load-seconds", "1", "--kill-engine", "--redis-url", redis_url,
                  "--database-url", postgres_url, "--json").stdout
    figures = orjson.loads(out)
    assert figures["ok"] is True, figures["problems"]
    assert [r["killed"] for r in figures["rounds"]] == ["worker", "worker and engine"]
    assert figures["missing"] == figures["duplicated"] == 0
    assert figures["acknowledged"] > 100 and figures["reconcile_differences"] == 0


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        faults.run(faults.Options(mode="cluster"))
    with pytest.raises(ValueError, match="Redis URL"):
        faults.run(faults.Options(mode="deployment"))
