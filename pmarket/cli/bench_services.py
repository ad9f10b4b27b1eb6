"""``pmarket bench services``: engine and worker throughput and request latency over
Redis and the database (see ``pmarket.bench.services``)."""

from __future__ import annotations

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pmarket.cli.bench import bench_app
from pmarket.cli.engine import REDIS_DEFAULT


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


@bench_app.command("services")
def bench_services(
    redis_url: str = typer.Option(REDIS_DEFAULT, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help="Redis to run on (keys under a throwaway prefix)."),
    database_url: str = typer.Option(None, "--database-url", envvar="PMARKET_DATABASE_URL",
                                     help="PostgreSQL URL (a throwaway schema is used); "
                                          "default: a temporary SQLite file."),
    commands: int = typer.Option(50_000, help="Orders pushed through the engine."),
    rate: int = typer.Option(1_000, help="Requests per second of the latency run."),
    seconds: float = typer.Option(10.0, help="Length of the latency run."),
    seed: int = typer.Option(1, help="Seed of the order flow."),
    json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Commands/s into the engine, events/s into the database, p50/p99 command→reply."""
    from pmarket.bench import services as bench

    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        result = bench.run(redis_url, database_url, commands=commands, rate=rate,
                           seconds=seconds, seed=seed,
                           progress=lambda name: status.update(f"benchmarking {name}"))
    if json:
        typer.echo(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
        return

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else ("[green]pass[/]" if ok else "[red]fail[/]")

    t = bench.TARGETS
    rows = [
        ("engine via Redis", f"{result.commands:,} commands",
         _num(result.engine_commands_per_s) + " commands/s", f"≥ {t['engine']:,.0f}",
         verdict(None if result.engine_commands_per_s is None
                 else result.engine_commands_per_s >= t["engine"])),
        (f"worker into {result.database}", f"{result.events or 0:,} events",
         _num(result.worker_events_per_s) + " events/s", f"≥ {t['worker']:,.0f}",
         verdict(None if result.worker_events_per_s is None
                 else result.worker_events_per_s >= t["worker"])),
        (f"command→reply at {result.rate_per_s:,}/s",
         f"{result.requests:,} requests, {result.timeouts} timeouts",
         f"p50 {_num(result.latency_p50_ms, 2)} ms, p99 {_num(result.latency_p99_ms, 2)} ms,"
         f" max {_num(result.latency_max_ms, 1)} ms",
         f"p99 ≤ {t['latency_p99_ms']} ms",
         verdict(None if result.latency_p99_ms is None
                 else result.latency_p99_ms <= t["latency_p99_ms"])),
    ]
    table = Table(title="pmarket services benchmark (Redis Streams bus; shared machine: "
                        "figures vary between runs)")
    for col in ("what", "size", "measured", "target", ""):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
