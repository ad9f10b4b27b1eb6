"""``pmarket bench services``: engine and worker throughput and request latency over
Redis and the database (see ``pmarket.bench.services``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import typer

from pmarket.cli.bench import bench_app, bench_table, verdict
from pmarket.cli.engine import REDIS_DEFAULT

if TYPE_CHECKING:
    from rich.table import Table


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
    from rich.console import Console

    from pmarket.bench import services as bench

    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        result = bench.run(redis_url, database_url, commands=commands, rate=rate,
                           seconds=seconds, seed=seed,
                           progress=lambda name: status.update(f"benchmarking {name}"))
    if json:
        typer.echo(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
        return

    Console().print(services_table(result, bench.TARGETS))


def services_table(result, t: dict) -> Table:
    """One figure per row (the latency run's three too), short enough for 80 columns."""
    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    def ms(value: float | None, digits: int) -> str:
        return f"{_num(value, digits)} ms"

    table = bench_table("pmarket services benchmark (Redis Streams bus; a shared machine's "
                        "figures vary between runs)", "what", "size", "measured", "target",
                        "", left=("what", "size"))
    table.add_row("engine via Redis", f"{result.commands:,} commands",
                  f"{_num(result.engine_commands_per_s)}/s", f"≥ {t['engine']:,.0f}/s",
                  verdict(at_least(result.engine_commands_per_s, t["engine"])))
    table.add_row(f"worker into {result.database}", f"{result.events or 0:,} events",
                  f"{_num(result.worker_events_per_s)}/s", f"≥ {t['worker']:,.0f}/s",
                  verdict(at_least(result.worker_events_per_s, t["worker"])))
    table.add_row("command→reply p50", f"{result.rate_per_s:,} requests/s",
                  ms(result.latency_p50_ms, 2), "", "")
    table.add_row("command→reply p99", f"{result.requests:,} requests",
                  ms(result.latency_p99_ms, 2), f"≤ {t['latency_p99_ms']} ms",
                  verdict(at_most(result.latency_p99_ms, t["latency_p99_ms"])))
    table.add_row("command→reply max", f"{result.timeouts} timeouts",
                  ms(result.latency_max_ms, 1), "", "")
    return table
