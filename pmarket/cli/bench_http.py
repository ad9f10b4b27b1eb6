"""``pmarket bench http``: orders/s and latency of a live server under many users, then
the read mix (what traders read) per path, then what other users see during floods."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import typer

from pmarket.cli.bench import bench_app, bench_table, verdict
from pmarket.cli.preflight import require

if TYPE_CHECKING:
    from rich.table import Table

TARGETS = {"embedded": (3000, 50.0), "deployment": (2000, 100.0)}
WS_TARGET_MS = 20.0
READ_TARGETS = {"balance": (4000, 30.0), "positions": (4000, 30.0),
                "open orders": (4000, 30.0), "portfolio": (4000, 30.0), "events": (3000, None)}
"""Embedded, this machine class, 32 connections (issue 12); the order book: no slower."""
ABUSE_TARGET_MS = 50.0
"""Issue 12: other users' read p99 and /health during a flood."""


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
    reads: bool = typer.Option(True, "--reads/--no-reads",
                               help="Run the read mix after the order load."),
    read_seconds: float = typer.Option(8.0, "--read-seconds",
                                       help="Measured duration of each read path."),
    connections: int = typer.Option(32, "--connections",
                                    help="Connections of the read mix."),
    generator: str = typer.Option("auto", "--generator",
                                  help="Read load generator: wrk, python, or auto (wrk "
                                       "when installed; the Python one steals CPU from "
                                       "the server and says so)."),
    server_python: str = typer.Option(None, "--server-python",
                                      help="Run the server processes with this Python "
                                           "(another checkout's .venv/bin/python) to "
                                           "compare builds with one benchmark."),
    api_keys: bool = typer.Option(False, "--api-keys",
                                  help="Traders act with API keys (read and trade) "
                                       "instead of session tokens."),
    abuse: str = typer.Option("all", "--abuse",
                              help="Abuse mixes after the read mix, comma-separated: "
                                   "signin, signin-spread, ws, ws-spread, cancel-all, "
                                   "history, sweep, or all."),
    no_abuse: bool = typer.Option(False, "--no-abuse", help="Run no abuse mix."),
    abuse_seconds: float = typer.Option(8.0, "--abuse-seconds",
                                        help="Measured duration of each abuse phase."),
    flood_clients: int = typer.Option(20, "--flood-clients",
                                      help="Concurrent clients of each flood."),
    book_levels: int = typer.Option(1000, "--book-levels",
                                    help="Price levels per side of the deep book the "
                                         "WebSocket flood subscribes to."),
    cancel_all_accounts: int = typer.Option(3, "--cancel-all-accounts",
                                            help="Traders of the cancel-all flood."),
    cancel_all_orders: int = typer.Option(10_000, "--cancel-all-orders",
                                          help="Open orders each cancel-all trader places "
                                               "(in batches) and cancels, again and again "
                                               "(the server's limit: 10,000)."),
    sweep_levels: int = typer.Option(9_000, "--sweep-levels",
                                     help="Price levels the sweep mix's maker fills "
                                          "and its taker takes with one order "
                                          "(1..9,999)."),
    slow_connections: int = typer.Option(2_000, "--slow-connections",
                                         help="Half-sent requests the slow mixes keep "
                                              "open."),
    history_orders: int = typer.Option(200_000, "--history-orders",
                                       help="Orders in the history the history mix "
                                            "pages (about half of them traded)."),
    json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Start a server, load it with orders and cancels over loopback, then read what
    traders read, path by path; print the figures."""
    from rich.console import Console

    from pmarket.bench import abuse as abuse_mix
    from pmarket.bench import http

    if generator not in ("auto", "wrk", "python"):
        raise typer.BadParameter("--generator must be wrk, python or auto")
    try:
        mixes = [] if no_abuse else abuse_mix.parse_mixes(abuse)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--abuse") from None
    if history_orders < 40:
        raise typer.BadParameter("must be 40 or more", param_hint="--history-orders")
    if not 1 <= book_levels <= 4999:
        raise typer.BadParameter("must be 1..4999", param_hint="--book-levels")
    if not 1 <= sweep_levels <= 9_999:
        raise typer.BadParameter("must be 1..9999", param_hint="--sweep-levels")
    if slow_connections < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--slow-connections")
    if cancel_all_accounts < 1 or cancel_all_orders < 1:
        raise typer.BadParameter("must be at least 1",
                                 param_hint="--cancel-all-accounts/--cancel-all-orders")
    require(redis_url=redis_url, database_url=database_url)
    console = Console(stderr=True)
    with console.status("benchmarking HTTP"):
        result = http.run(http.Options(
            users=users, seconds=seconds, redis_url=redis_url, database_url=database_url,
            reads=reads, read_seconds=read_seconds, read_connections=connections,
            generator=generator, server_python=server_python, api_keys=api_keys,
            abuse=mixes, abuse_seconds=abuse_seconds, flood_clients=flood_clients,
            book_levels=book_levels, cancel_all_accounts=cancel_all_accounts,
            cancel_all_orders=cancel_all_orders, sweep_levels=sweep_levels,
            slow_connections=slow_connections, history_orders=history_orders))
    figures = result.as_dict()
    if json:
        typer.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        return
    Console().print(http_table(result, users))
    if result.reads is not None:
        Console().print(reads_table(result))
    if result.abuse is not None:
        Console().print(abuse_table(result.abuse))
        Console().print(flood_table(result.abuse))


def http_table(result, users: int) -> Table:
    figures = result.as_dict()
    rate_target, p99_target = TARGETS[result.mode]
    table = bench_table(f"pmarket HTTP benchmark ({result.mode}, {users} users, "
                        f"{result.credentials})",
                        "figure", "value", "target", left=("figure",))

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
    return table


def reads_table(result) -> Table:
    mix = result.reads
    table = bench_table(f"read mix ({mix.generator}, {mix.connections} connections, "
                        f"{mix.users} users' tokens rotating, {mix.seconds:g} s per path)",
                        "path", "req/s", "p50 ms", "p99 ms", "target", left=("path", "target"))
    for p in mix.paths:
        rate, p99 = READ_TARGETS.get(p.name, (None, None))
        target = "" if rate is None else f"≥ {rate:,}/s" + (
            f", p99 ≤ {p99:.0f} ms" if p99 is not None else "")
        table.add_row(p.path, f"{p.per_s:,.0f}", f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", target)
    if mix.generator != "wrk":
        table.caption = ("Python load generator (wrk not installed): it shares the CPU with "
                         "the server, so these figures understate it")
    return table


def abuse_table(abuse) -> Table:
    """Other users' reads and /health in each phase, beside the target."""
    table = bench_table(f"other users during abuse ({abuse.generator}, {abuse.connections} "
                        f"connections, read mix, {abuse.seconds:g} s a phase)",
                        "phase", "reads/s", "p50 ms", "p99 ms", "health p50", "p99", "max",
                        "", left=("phase",),
                        caption=f"target during a flood: read p99 and /health ≤ "
                                f"{ABUSE_TARGET_MS:.0f} ms, no read or probe lost")
    for phase in abuse.phases:
        d = phase.as_dict()
        reads, health = d["reads"], d["health"]
        worst = [reads["p99_ms"], health["p99_ms"], health["max_ms"]]
        ok = None if phase.name == "quiet" else (
            None not in worst and max(worst) <= ABUSE_TARGET_MS and not reads["errors"]
            and not health["failures"])
        table.add_row(phase.name, f"{reads['req_per_s']:,.0f}", _ms(reads["p50_ms"]),
                      _ms(reads["p99_ms"]), _ms(health["p50_ms"]), _ms(health["p99_ms"]),
                      _ms(health["max_ms"]), verdict(ok))
    return table


ANSWER_LABELS = {"rate_limited": "limited", "snapshot": "snap", "connections": "conn",
                 "refused 429": "refused", "cancel-all": "cancel-alls",
                 "sweeps": "sweeps",
                 "reconnects": "reconn"}


def flood_table(abuse) -> Table:
    """What each flood sent, how the server answered, and the reads and /health probes
    lost (failed or timed out) meanwhile."""
    table = bench_table(f"the floods ({abuse.clients} clients; deep book {abuse.book_levels} "
                        f"levels a side, named {abuse.repeat}x a frame)",
                        "flood", "addr", "sent/s", "lost", "answers",
                        left=("flood", "answers"),
                        caption="sent: sign-ins, WebSocket rounds or order requests; lost: "
                                "reads / probes")
    for phase in abuse.phases:
        if phase.flood is None:
            continue
        f = phase.flood
        answers = ", ".join(f"{ANSWER_LABELS.get(k, k)} {_short(v)}"
                            for k, v in f["answers"].items()
                            if not (k == "connections" and v == f["clients"]))  # reconnects
        if "latency_ms" in f:  # the history mix: what one of its deep pages took
            answers += f", page p50 {_ms(f['latency_ms']['p50'])} ms"
        if "sweep_ms" in f:  # the sweep mix: what one sweep took
            answers += f", sweep p50 {_ms(f['sweep_ms']['p50_ms'])} ms"
        lost = f"{_short(phase.reads.errors)}/{_short(phase.health_failures)}"
        table.add_row(phase.name, str(f["addresses"]), _short(round(f["sent_per_s"])), lost,
                      answers)
    return table


def _short(n: int) -> str:
    """999 / 1.2k / 12k / 1.2M: counts in a few characters."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"
