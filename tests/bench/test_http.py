"""``pmarket bench http`` loads a live server — embedded, or the deployment on Redis and
PostgreSQL — and stops every process and deletes every key and schema it made."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pmarket.bench import http as bench
from pmarket.bench import reads
from tests.services import postgres_url_or_skip, redis_url_or_skip

from .helpers import Traces, assert_nothing_left, run_cli, spy

USERS, SECONDS, READ_SECONDS = 4, 1.5, 0.4
FIELDS = {"mode", "users", "seconds", "orders", "placements", "cancels", "orders_per_s",
          "p50_ms", "p99_ms", "max_ms", "trades_seen", "ws_trade_p50_ms", "ws_trade_p99_ms",
          "reads", "credentials"}
READS = {"balance", "positions", "open orders", "portfolio", "events", "order book"}


def spy_http(monkeypatch: pytest.MonkeyPatch) -> tuple[Traces, list[Path]]:
    """Spies on the run's key prefix, databases and working directory."""
    traces, workdirs = spy(monkeypatch, bench), []
    start = bench.start_processes

    def start_processes(options, workdir, port, database_url, redis_prefix):
        workdirs.append(workdir)
        if options.redis_url:
            traces.prefixes.append(redis_prefix)
        return start(options, workdir, port, database_url, redis_prefix)

    monkeypatch.setattr(bench, "start_processes", start_processes)
    return traces, workdirs


def assert_sane(figures: dict, mode: str) -> None:
    assert set(figures) == FIELDS
    assert (figures["mode"], figures["users"]) == (mode, USERS)
    assert figures["seconds"] >= SECONDS - 0.1
    assert figures["orders"] > 0
    assert figures["placements"] > 0 and figures["cancels"] >= 0
    assert figures["placements"] + figures["cancels"] == figures["orders"]
    assert figures["orders_per_s"] == pytest.approx(figures["orders"] / figures["seconds"],
                                                    rel=0.01)
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["trades_seen"] >= 0
    if figures["trades_seen"]:
        assert figures["ws_trade_p50_ms"] <= figures["ws_trade_p99_ms"]
    else:
        assert figures["ws_trade_p50_ms"] is None and figures["ws_trade_p99_ms"] is None
    reads = figures["reads"]
    assert (reads["connections"], reads["users"]) == (32, USERS)
    assert set(reads["paths"]) == READS
    for name, p in reads["paths"].items():
        assert p["requests"] > 0, name
        assert p["seconds"] >= READ_SECONDS * 0.9, name
        assert p["req_per_s"] == pytest.approx(p["requests"] / p["seconds"], rel=0.02)
        assert 0 < p["p50_ms"] <= p["p99_ms"] <= p["max_ms"], name


def test_embedded_without_wrk_says_so(monkeypatch: pytest.MonkeyPatch, caplog):
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    monkeypatch.setattr(reads, "wrk_path", lambda: None)
    traces, workdirs = spy_http(monkeypatch)

    result = bench.run(bench.Options(users=USERS, seconds=SECONDS, warmup_s=0.5,
                                     read_seconds=READ_SECONDS))

    figures = orjson.loads(orjson.dumps(result.as_dict()))
    assert_sane(figures, "embedded")
    assert figures["credentials"] == "tokens"
    assert result.reads.generator == "python"
    assert "wrk is not installed" in caplog.text
    assert len(result.latencies_ms) == result.orders
    assert len(result.ws_latencies_ms) == result.trades_seen
    assert [db.directory is not None for db in traces.databases] == [True]  # SQLite
    assert_nothing_left(traces, None, None)
    assert workdirs and not any(w.exists() for w in workdirs)


@pytest.mark.redis
@pytest.mark.postgres
def test_cli_json_on_the_deployment(monkeypatch: pytest.MonkeyPatch):
    redis_url, postgres_url = redis_url_or_skip(), postgres_url_or_skip()
    traces, workdirs = spy_http(monkeypatch)

    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", str(SECONDS),
                  "--read-seconds", str(READ_SECONDS), "--redis-url", redis_url,
                  "--database-url", postgres_url, "--api-keys", "--json").stdout

    figures = orjson.loads(out)
    assert_sane(figures, "deployment")
    assert figures["credentials"] == "api keys"  # orders and reads made with keys
    assert figures["reads"]["generator"] == ("wrk" if reads.wrk_path() else "python")
    assert [db.schema is not None for db in traces.databases] == [True]
    assert [p.startswith("bench-") for p in traces.prefixes] == [True]
    assert_nothing_left(traces, redis_url, postgres_url)
    assert workdirs and not any(w.exists() for w in workdirs)
