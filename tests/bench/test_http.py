"""``pmarket bench http`` loads a live server — embedded, or the deployment on Redis and
PostgreSQL — and stops every process and deletes every key and schema it made."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pmarket.bench import abuse, reads
from pmarket.bench import http as bench
from pmarket.cli import bench_http
from tests.services import postgres_url_or_skip, redis_url_or_skip

from .helpers import Traces, assert_nothing_left, run_cli, spy

USERS, SECONDS, READ_SECONDS = 4, 1.5, 0.4
FIELDS = {"mode", "users", "seconds", "orders", "placements", "cancels", "orders_per_s",
          "p50_ms", "p99_ms", "max_ms", "trades_seen", "ws_trade_p50_ms", "ws_trade_p99_ms",
          "reads", "credentials", "abuse"}
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
    assert figures["abuse"] is None
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
                  "--database-url", postgres_url, "--api-keys", "--no-abuse", "--json").stdout

    figures = orjson.loads(out)
    assert_sane(figures, "deployment")
    assert figures["credentials"] == "api keys"  # orders and reads made with keys
    assert figures["abuse"] is None
    assert figures["reads"]["generator"] == ("wrk" if reads.wrk_path() else "python")
    assert [db.schema is not None for db in traces.databases] == [True]
    assert [p.startswith("bench-") for p in traces.prefixes] == [True]
    assert_nothing_left(traces, redis_url, postgres_url)
    assert workdirs and not any(w.exists() for w in workdirs)


def test_cli_abuse_mixes_report_other_users_reads_and_health(monkeypatch: pytest.MonkeyPatch):
    """Two floods at tiny sizes on the embedded server with its real limits: a phase
    per mix beside the quiet one, each with the read mix, /health probes and what the
    flood got back; nothing left behind (the floods' processes included, conftest)."""
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    traces, workdirs = spy_http(monkeypatch)

    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", "0.5", "--no-reads",
                  "--abuse", "signin-spread,ws", "--abuse-seconds", "1", "--flood-clients",
                  "3", "--book-levels", "20", "--json").stdout

    figures = orjson.loads(out)
    assert figures["reads"] is None
    mixes = figures["abuse"]
    assert (mixes["clients"], mixes["book_levels"], mixes["connections"]) == (3, 20, 32)
    assert list(mixes["phases"]) == ["quiet", "signin-spread", "ws"]
    for name, phase in mixes["phases"].items():
        r, h = phase["reads"], phase["health"]
        assert r["requests"] > 0 and r["errors"] == 0, name
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], name
        assert h["probes"] > 0 and h["failures"] == 0, name
        assert 0 < h["p50_ms"] <= h["p99_ms"] <= h["max_ms"], name
    assert mixes["phases"]["quiet"]["flood"] is None
    signin, ws = mixes["phases"]["signin-spread"]["flood"], mixes["phases"]["ws"]["flood"]
    assert (signin["clients"], signin["addresses"], ws["addresses"]) == (3, 3, 1)
    # Every sign-in was answered as a wrong password or refused; never a success.
    assert signin["sent"] > 0 and set(signin["answers"]) <= {"401", "429", "503"}
    assert sum(signin["answers"].values()) <= signin["sent"]
    assert ws["answers"]["connections"] == 3 and ws["answers"]["snapshot"] > 0
    assert [db.directory is not None for db in traces.databases] == [True]
    assert_nothing_left(traces, None, None)
    assert workdirs and not any(w.exists() for w in workdirs)


def test_cli_cancel_all_mix_reports_other_users_reads_and_health(
        monkeypatch: pytest.MonkeyPatch):
    """The cancel-all flood at a tiny size on the embedded server: its accounts fill
    their books with batches and cancel all, again, during the phase; other users'
    reads and /health are measured meanwhile; nothing is left behind."""
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    traces, workdirs = spy_http(monkeypatch)

    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", "0.5", "--no-reads",
                  "--abuse", "cancel-all", "--abuse-seconds", "1.5",
                  "--cancel-all-accounts", "2", "--cancel-all-orders", "60", "--json").stdout

    figures = orjson.loads(out)
    mixes = figures["abuse"]
    assert (mixes["cancel_all_accounts"], mixes["cancel_all_orders"]) == (2, 60)
    assert list(mixes["phases"]) == ["quiet", "cancel-all"]
    for name, phase in mixes["phases"].items():
        r, h = phase["reads"], phase["health"]
        assert r["requests"] > 0 and r["errors"] == 0, name
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], name
        assert h["probes"] > 0 and h["failures"] == 0, name
    flood = mixes["phases"]["cancel-all"]["flood"]
    assert (flood["clients"], flood["addresses"]) == (2, 1)
    answers = flood["answers"]
    # Each account cancelled its full book at least once (the first cancel-alls are
    # spread over the phase), and filled it again with batches of 20.
    assert answers["cancel-all"] >= 2 and answers["cancelled"] >= 2 * 60
    assert answers["placed"] > 0
    assert set(answers) <= {"200", "cancel-all", "cancelled", "placed", "reconnects"}
    assert answers["200"] == flood["sent"]  # every batch and cancel-all answered 200
    latency = flood["cancel_all_ms"]
    assert latency["count"] == answers["cancel-all"]
    assert 0 < latency["p50_ms"] <= latency["max_ms"]
    assert [db.directory is not None for db in traces.databases] == [True]
    assert_nothing_left(traces, None, None)
    assert workdirs and not any(w.exists() for w in workdirs)


def test_cli_history_mix_pages_a_long_history_deep(monkeypatch: pytest.MonkeyPatch):
    """The history flood pages one account's history at deep offsets while the read mix
    and /health probes run: every page answered (200), its own latency and the history's
    size reported."""
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    traces, workdirs = spy_http(monkeypatch)

    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", "0.5", "--no-reads",
                  "--abuse", "history", "--abuse-seconds", "1", "--flood-clients", "2",
                  "--history-orders", "80", "--json").stdout

    phases = orjson.loads(out)["abuse"]["phases"]
    assert list(phases) == ["quiet", "history"]
    r, h, flood = (phases["history"][k] for k in ("reads", "health", "flood"))
    assert r["requests"] > 0 and r["errors"] == 0 and h["failures"] == 0
    assert (flood["mix"], flood["clients"], flood["addresses"]) == ("history", 2, 1)
    assert flood["sent"] > 0 and set(flood["answers"]) == {"200"}
    # 80 orders asked: 40 ioc buys that crossed the maker's bids, 40 that cancelled
    assert flood["history"] == {"orders": 80, "trades": 40}
    assert 0 < flood["latency_ms"]["p50"] <= flood["latency_ms"]["p99"] \
        <= flood["latency_ms"]["max"]
    assert_nothing_left(traces, None, None)
    assert workdirs and not any(w.exists() for w in workdirs)


def test_abuse_mix_names():
    assert abuse.parse_mixes("all") == list(abuse.MIXES)
    assert "cancel-all" in abuse.MIXES and "history" in abuse.MIXES
    assert abuse.parse_mixes("ws, signin,ws") == ["ws", "signin"]
    with pytest.raises(ValueError, match="unknown abuse mix sigin"):
        abuse.parse_mixes("sigin")
    assert abuse.flood_addresses("signin", 20) == ["127.0.2.1"]
    assert len(set(abuse.flood_addresses("ws-spread", 20))) == 20


def test_cli_refuses_an_unknown_mix_before_running():
    from typer.testing import CliRunner

    from pmarket.cli import load_commands

    result = CliRunner().invoke(load_commands(), ["bench", "http", "--abuse", "signin,dos"])
    assert result.exit_code == 2 and "unknown abuse mix dos" in result.output


def test_abuse_tables_fit_80_columns_and_judge_the_targets():
    from rich.console import Console

    quiet = abuse.Phase("quiet", reads.PathFigures("mix", "mix", 900, 1.0, 2.0, 9.0, 12.0),
                        [1.0, 3.0])
    slow = abuse.Phase("signin-spread", reads.PathFigures("mix", "mix", 10, 1.0, None, None,
                                                          None, errors=32),
                       [80.0], 2, {"mix": "signin-spread", "addresses": 20, "clients": 20,
                                   "sent_per_s": 12.5,
                                   "answers": {"401": 24, "429": 1000}})
    figures = abuse.Abuse("wrk", 32, 8.0, 20, 1000, 100, [quiet, slow])
    console = Console(width=80, record=True)
    console.print(bench_http.abuse_table(figures))
    console.print(bench_http.flood_table(figures))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "fail" in text and " 32/2 " in text
    assert "429 1.0k" in text


def test_cli_sweep_mix_takes_the_whole_book_with_one_order_again_and_again(
        monkeypatch: pytest.MonkeyPatch):
    """The sweep flood at a tiny size on the embedded server: its maker fills 50 levels
    in batches, its taker takes every level with one ioc order, again, during the phase;
    other users' reads and /health are measured meanwhile; nothing is left behind."""
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    traces, workdirs = spy_http(monkeypatch)

    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", "0.5", "--no-reads",
                  "--abuse", "sweep", "--abuse-seconds", "1.5", "--sweep-levels", "50",
                  "--json").stdout

    mixes = orjson.loads(out)["abuse"]
    assert mixes["sweep_levels"] == 50 and list(mixes["phases"]) == ["quiet", "sweep"]
    phase = mixes["phases"]["sweep"]
    r, h, flood = phase["reads"], phase["health"], phase["flood"]
    assert r["requests"] > 0 and r["errors"] == 0 and h["failures"] == 0
    assert (flood["clients"], flood["addresses"]) == (1, 1)
    answers = flood["answers"]
    # Each sweep took every level (a sweep that took fewer fails the flood).
    assert answers["sweeps"] >= 2 and answers["swept"] == 50 * answers["sweeps"]
    assert answers["placed"] >= answers["swept"] - 50  # refills (the first fill is setup)
    assert set(answers) <= {"200", "201", "sweeps", "swept", "placed", "reconnects"}
    assert answers.get("200", 0) + answers["201"] == flood["sent"]
    assert flood["sweep_ms"]["count"] == answers["sweeps"]
    assert_nothing_left(traces, None, None)
    assert workdirs and not any(w.exists() for w in workdirs)


def test_cli_refuses_a_sweep_of_more_levels_than_a_book_has():
    from typer.testing import CliRunner

    from pmarket.cli import load_commands

    result = CliRunner().invoke(load_commands(), ["bench", "http", "--abuse", "sweep",
                                                  "--sweep-levels", "10000"])
    assert result.exit_code == 2 and "--sweep-levels" in result.output


def test_cli_slow_mixes_hold_half_sent_requests_and_others_still_read(
        monkeypatch: pytest.MonkeyPatch):
    """The slowloris floods at a small size on the embedded server (its real limits: 256
    connections an address): from one address, the connections past 256 are answered
    503 at once and opened again; spread over 3 addresses, every one is held (none
    answered within the phase, the read deadline being 10 s). Other users' reads and
    /health lose nothing meanwhile."""
    monkeypatch.delenv("PMARKET_REDIS_URL", raising=False)
    out = run_cli("bench", "http", "--users", str(USERS), "--seconds", "0.5", "--no-reads",
                  "--abuse", "slow,slow-spread", "--abuse-seconds", "1",
                  "--flood-clients", "3", "--slow-connections", "300", "--json").stdout
    mixes = orjson.loads(out)["abuse"]
    assert mixes["slow_connections"] == 300
    assert list(mixes["phases"]) == ["quiet", "slow", "slow-spread"]
    for name, phase in mixes["phases"].items():
        assert phase["reads"]["requests"] > 0 and phase["reads"]["errors"] == 0, name
        assert phase["health"]["failures"] == 0, name
    slow = mixes["phases"]["slow"]["flood"]
    assert (slow["clients"], slow["addresses"]) == (300, 1)
    refused = slow["answers"].get("503", 0) + slow["answers"].get("reset", 0)
    assert refused >= 44 and "408" not in slow["answers"], slow  # 300 - 256 at least
    spread = mixes["phases"]["slow-spread"]["flood"]
    assert (spread["clients"], spread["addresses"]) == (300, 3)
    assert spread["sent"] == 300 and not spread["answers"], spread  # all held
