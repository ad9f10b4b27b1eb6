"""``pmarket bench http``: orders/s and latency of a live server under many users."""

from __future__ import annotations

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pmarket.cli.bench import bench_app

TARGETS = {"embedded": (3000, 50.0), "deployment": (2000, 100.0)}
WS_TARGET_MS = 20.0


@bench_app.command("http")
def bench_http(
    users: int = typer.Option(64, "--users", help="Concurrent traders (one connection each)."),
    seconds: float = typer.Option(15.0, "--seconds", help="Measured duration."),
    redis_url: str = typer.Option(None, "--redis-url",
                                  help="Bench the deployment on this Redis (with "
                                       "--database-url); default: the embedded server."),
    database_url: str = typer.Option(None, "--database-url",
                                     help="PostgreSQL of the server (a throwaway schema, "
                                          "dropped afterwards); default: a temporary "
                                          "SQLite file."),
    json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Start a server, load it with orders and cancels over loopback, print the figures."""
    from pmarket.bench import http

    console = Console(stderr=True)
    with console.status("benchmarking HTTP"):
        result = http.run(http.Options(users=users, seconds=seconds, redis_url=redis_url,
                                       database_url=database_url))
    figures = result.as_dict()
    if json:
        typer.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        return
    rate_target, p99_target = TARGETS[result.mode]
    table = Table(title=f"pmarket HTTP benchmark ({result.mode}, {users} users)")
    for col in ("figure", "value", "target"):
        table.add_column(col, justify="left" if col == "figure" else "right")

    def ms(v):
        return "-" if v is None else f"{v:.1f} ms"

    table.add_row("orders/s (place + cancel)", f"{figures['orders_per_s']:,.0f}",
                  f">= {rate_target:,}")
    table.add_row("placements / cancels", f"{result.placements:,} / {result.cancels:,}", "")
    table.add_row("latency p50", ms(figures["p50_ms"]), "")
    table.add_row("latency p99", ms(figures["p99_ms"]), f"<= {p99_target:.0f} ms")
    table.add_row("latency max", ms(figures["max_ms"]), "")
    table.add_row("trades seen on WebSocket", f"{result.trades_seen:,}", "")
    table.add_row("WebSocket trade latency p99", ms(figures["ws_trade_p99_ms"]),
                  f"<= {WS_TARGET_MS:.0f} ms")
    Console().print(table)
