"""``pmarket bench services`` measures the engine, the worker and the request latency over
the real Redis and database, and leaves no key and no schema behind."""

from __future__ import annotations

import orjson
import pytest

from pmarket.bench import services as bench
from tests.services import postgres_url_or_skip, redis_url_or_skip

from .helpers import Traces, assert_nothing_left, run_cli, spy

pytestmark = pytest.mark.redis

COMMANDS, RATE, SECONDS = 300, 300, 1.0
FIELDS = {"commands", "engine_commands_per_s", "events", "worker_events_per_s", "database",
          "rate_per_s", "requests", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
          "timeouts", "targets"}


def spy_services(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Traces:
    """Spies on the run's key prefixes (engine and latency parts) and databases."""
    traces = spy(monkeypatch, bench)
    for name in ("bench_engine", "bench_latency"):
        measure = getattr(bench, name)

        def recording(url, prefix, *args, measure=measure, **kwargs):
            traces.prefixes.append(prefix)
            return measure(url, prefix, *args, **kwargs)

        monkeypatch.setattr(bench, name, recording)
    return traces


def assert_sane(figures: dict, database: str) -> None:
    assert figures["commands"] == len(bench.setup_commands()) + COMMANDS
    assert figures["engine_commands_per_s"] > 0
    assert figures["database"] == database
    assert figures["events"] >= figures["commands"]  # a rejection is an event too
    assert figures["worker_events_per_s"] > 0
    assert figures["rate_per_s"] == RATE
    assert figures["requests"] > 0
    assert figures["requests"] + figures["timeouts"] == int(RATE * SECONDS)
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"] <= figures[
        "latency_max_ms"]


def test_cli_json_on_sqlite(monkeypatch: pytest.MonkeyPatch):
    redis_url = redis_url_or_skip()
    monkeypatch.delenv("PMARKET_DATABASE_URL", raising=False)  # the default: SQLite
    traces = spy_services(monkeypatch, redis_url)

    out = run_cli("bench", "services", "--redis-url", redis_url, "--commands", str(COMMANDS),
                  "--rate", str(RATE), "--seconds", str(SECONDS), "--json").stdout
    figures = orjson.loads(out)

    assert set(figures) == FIELDS
    assert figures["targets"] == bench.TARGETS
    assert_sane(figures, "sqlite")
    assert len(traces.prefixes) == 2  # the engine + worker part, and the latency part
    assert_nothing_left(traces, redis_url, None)


@pytest.mark.postgres
def test_run_on_postgresql(monkeypatch: pytest.MonkeyPatch):
    redis_url, postgres_url = redis_url_or_skip(), postgres_url_or_skip()
    traces = spy_services(monkeypatch, redis_url)

    result = bench.run(redis_url, postgres_url, commands=COMMANDS, rate=RATE,
                       seconds=SECONDS)

    assert_sane(result.as_dict(), "postgresql")
    assert [db.schema is not None for db in traces.databases] == [True]
    assert_nothing_left(traces, redis_url, postgres_url)
