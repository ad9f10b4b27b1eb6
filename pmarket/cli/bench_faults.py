"""``pmarket bench faults``: kill -9 under load and count what was lost (must be 0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import typer

from pmarket.cli.bench import bench_app, bench_table
from pmarket.cli.preflight import require

if TYPE_CHECKING:
    from rich.table import Table


@bench_app.command("faults")
def bench_faults(
    mode: str = typer.Option("embedded", "--mode",
                             help="embedded (kill -9 pmarket serve) or deployment (kill -9 "
                                  "the worker; needs --redis-url)."),
    rounds: int = typer.Option(10, "--rounds", min=1, help="Kills (each one a round)."),
    clients: int = typer.Option(8, "--clients", min=1, help="Concurrent traders."),
    load_s: float = typer.Option(3.0, "--load-seconds", min=0.1,
                                 help="Trading between two kills."),
    redis_url: str = typer.Option(None, "--redis-url", envvar="PMARKET_REDIS_URL",
                                  help="Redis of the deployment (a throwaway key prefix, "
                                       "deleted afterwards)."),
    database_url: str = typer.Option(None, "--database-url",
                                     help="PostgreSQL (a throwaway schema, dropped "
                                          "afterwards); default: a temporary SQLite file."),
    kill_engine: bool = typer.Option(False, "--kill-engine",
                                     help="Deployment: also kill -9 the engine every "
                                          "second round."),
    seed: int = typer.Option(1, "--seed", help="Seed of the traders' order flow."),
    json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Kill -9 under concurrent order load, restart, and prove nothing acknowledged is
    missing or doubled (exit status 1 if anything is)."""
    from rich.console import Console

    from pmarket.bench import faults

    if mode not in ("embedded", "deployment"):
        raise typer.BadParameter("embedded or deployment", param_hint="--mode")
    if mode == "deployment" and not redis_url:
        raise typer.BadParameter("the deployment needs a Redis URL", param_hint="--redis-url")
    require(redis_url=redis_url if mode == "deployment" else None, database_url=database_url)
    console = Console(stderr=True)
    options = faults.Options(mode=mode, rounds=rounds, clients=clients, load_s=load_s,
                             redis_url=redis_url if mode == "deployment" else None,
                             database_url=database_url, kill_engine=kill_engine, seed=seed)
    with console.status("fault run") as status:
        result = faults.run(options, progress=lambda text: status.update(text))
    if json:
        typer.echo(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2))
    else:
        _print(result)
    if not result.ok:
        raise typer.Exit(1)


def _print(result) -> None:
    from rich.console import Console
    for table in fault_tables(result):
        Console().print(table)
    for problem in result.problems:
        Console(stderr=True).print(f"[red]{problem}[/]")


def fault_tables(result) -> tuple[Table, Table]:
    """The rounds, then the totals after the last restart."""
    table = bench_table(f"pmarket fault run ({result.mode}, {result.clients} clients)",
                        "round", "killed (kill -9)", "orders acked", "back in",
                        left=("killed (kill -9)",))
    if any(r.orphan for r in result.rounds):
        table.caption = "(orphan): the worker child outlived its killed parent"
    for r in result.rounds:
        orphan = " [red](orphan)[/]" if r.orphan else ""
        table.add_row(str(r.number), r.killed + orphan, f"{r.acknowledged:,}",
                      f"{r.recover_s:.2f} s")
    recover = sorted(r.recover_s for r in result.rounds)
    totals = bench_table("after the last restart", "figure", "value", left=("figure",))
    totals.show_header = False
    for name, value in (
            ("orders acknowledged", f"{result.acknowledged:,}"),
            ("cancels acknowledged", f"{result.cancels:,}"),
            ("requests resent (no answer)", f"{result.resent:,}"),
            ("missing (must be 0)", f"{result.missing:,}"),
            ("duplicated (must be 0)", f"{result.duplicated:,}"),
            ("read back different (must be 0)", f"{result.mismatched:,}"),
            ("balances ≠ engine (must be 0)",
             f"{result.balance_mismatches} of {result.balances_checked}"),
            ("database ≠ engine (reconcile)", f"{result.reconcile_differences}"),
            ("audit", "ok, exact" if result.audit_ok and result.audit_exact else "FAILED"),
            ("orphaned worker processes", f"{result.orphans}"),
            ("recovery median / max",
             f"{recover[len(recover) // 2]:.2f} s / {recover[-1]:.2f} s" if recover else "-"),
            ("run time", f"{result.seconds:.0f} s")):
        totals.add_row(name, value)
    return table, totals
