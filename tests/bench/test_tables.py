"""Every benchmark table reads in an 80-column terminal: one line per row, none wider.

The tables are built from figures as large as the benchmarks produce (seven-digit
rates, the longest workload names and targets, an orphaned worker) and rendered as a
terminal of 80 columns shows them.
"""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console
from rich.table import Table

from pmarket.bench import abuse, faults, http, reads
from pmarket.bench import engine as bench_engine
from pmarket.bench import services as bench_services
from pmarket.cli.bench import engine_tables
from pmarket.cli.bench_faults import fault_tables
from pmarket.cli.bench_http import abuse_table, flood_table, http_table, reads_table
from pmarket.cli.bench_readmodel import readmodel_table
from pmarket.cli.bench_services import services_table


def assert_fits(table: Table) -> None:
    """At 80 columns no line is wider and each row keeps to one line."""
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    body = [line for line in lines if line.strip()]
    title = 1 if table.title else 0
    header = 2 if table.show_header else 0  # the header and its rule
    caption = 1 if table.caption else 0
    allowed = title + header + table.row_count + caption
    # A title or caption may wrap once; a row never.
    assert len(body) <= allowed + 2 and len(body) >= table.row_count, "\n".join(lines)
    for row in range(table.row_count):
        first = str(table.columns[0]._cells[row])
        if first:
            assert sum(first in line for line in lines) >= 1, "\n".join(lines)


def test_engine_tables_fit():
    names = set(bench_engine.TARGETS) | set(bench_engine.RUST)
    results = [bench_engine.Result(name, size, orders_per_s=1_234_567.8, p50_us=123.45,
                                   p99_us=12_345.67, mib=1_234.5)
               for name in sorted(names) for size in (10_000, 1_000_000)]
    figures, targets = engine_tables(results, "pure Python: not compiled (run `make build`)")
    assert figures.row_count == len(results) and targets.row_count == len(names)
    assert_fits(figures)
    assert_fits(targets)


def test_services_table_fits():
    result = SimpleNamespace(commands=1_000_000, engine_commands_per_s=1_234_567.0,
                             database="postgresql", events=3_000_000,
                             worker_events_per_s=123_456.0, rate_per_s=10_000,
                             requests=100_000, timeouts=12, latency_p50_ms=1.23,
                             latency_p99_ms=123.45, latency_max_ms=1_234.5)
    assert_fits(services_table(result, bench_services.TARGETS))


def test_http_tables_fit():
    mix = reads.ReadMix("python", 32, 64, 5.0, [
        reads.PathFigures(name, path, 123_456, 5.0, 12.3, 123.4, 1_234.5)
        for name, path in reads.PATHS])
    result = http.Result("deployment", 64, 30.0, orders=3_000_000, placements=1_500_000,
                         cancels=1_500_000, trades_seen=1_234_567,
                         latencies_ms=[1_234.5], ws_latencies_ms=[123.4], reads=mix)
    assert_fits(http_table(result, 64))
    assert_fits(reads_table(result))


def test_abuse_tables_fit():
    floods = {
        "signin": {"401": 1_234, "429": 1_234_567, "dropped": 12},
        "signin-spread": {"401": 1_234, "429": 1_234_567, "503": 12_345},
        "ws": {"closed": 1_234, "connections": 1_234, "rate_limited": 1_234_567,
               "snapshot": 123_456},
        "ws-spread": {"connections": 20, "rate_limited": 1_234_567, "snapshot": 123_456},
        "cancel-all": {"200": 123_456, "cancel-all": 1_234, "cancelled": 12_345_678,
                       "placed": 12_345_678, "reconnects": 12}}
    phases = [abuse.Phase("quiet", reads.PathFigures("m", "m", 1_234_567, 8.0, 1.2, 12.3,
                                                     123.4), [1.5, 12.3, 1_234.5])]
    phases += [abuse.Phase(name, reads.PathFigures("m", "m", 12, 8.0, 1_234.5, 12_345.6,
                                                   12_345.6, errors=1_234), [12_345.6], 12,
                           {"addresses": 20, "clients": 20, "sent_per_s": 123_456.7,
                            "answers": answers})
               for name, answers in floods.items()]
    figures = abuse.Abuse("python", 32, 8.0, 20, 4_999, 100, phases)
    assert_fits(abuse_table(figures))
    assert_fits(flood_table(figures))


def test_fault_tables_fit():
    rounds = [faults.Round(n, "server and worker (process group)", 1_234_567, 12.34,
                           orphan=True) for n in range(1, 11)]
    result = SimpleNamespace(mode="deployment", clients=32, rounds=rounds,
                             acknowledged=1_234_567, cancels=1_234_567, resent=1_234,
                             missing=0, duplicated=0, mismatched=0, balance_mismatches=0,
                             balances_checked=1_234, reconcile_differences=0, audit_ok=True,
                             audit_exact=True, orphans=0, seconds=1_234.0)
    for table in fault_tables(result):
        assert_fits(table)


def test_readmodel_table_fits():
    figures = SimpleNamespace(backend="postgresql", users=1_000_000, positions=10_000_000,
                              orders=1_000_000, seed_s=123.45, total_bytes=12_345_678_901,
                              bytes_per_user=1_234, bytes_per_position=1_234,
                              bytes_per_order=1_234)
    assert_fits(readmodel_table(figures))
