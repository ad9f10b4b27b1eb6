"""Every benchmark table reads in an 80-column terminal: one line per row, none wider.

The tables are built from figures as large as the benchmarks produce (seven-digit
rates, the longest workload names and targets, an orphaned worker) and rendered as a
terminal of 80 columns shows them.
"""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console
from rich.table import Table

from pmarket.bench import engine as bench_engine
from pmarket.bench import faults, http, reads
from pmarket.bench import services as bench_services
from pmarket.cli.bench import engine_tables
from pmarket.cli.bench_faults import fault_tables
from pmarket.cli.bench_http import http_table, reads_table
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
