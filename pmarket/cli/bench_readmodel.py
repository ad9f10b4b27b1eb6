"""``pmarket bench readmodel``: the read model's memory per user, position and open
order, and its seeding time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import typer

from pmarket.cli.bench import bench_app, bench_table

if TYPE_CHECKING:
    from rich.table import Table


@bench_app.command("readmodel")
def bench_readmodel(
    users: int = typer.Option(10_000, "--users", help="Funded users."),
    positions: int = typer.Option(5, "--positions", help="Positions per user."),
    orders: int = typer.Option(5, "--orders", help="Open orders per user."),
    database_url: str = typer.Option(None, "--database-url",
                                     help="PostgreSQL to seed from (a throwaway schema, "
                                          "dropped afterwards); default: a temporary "
                                          "SQLite file."),
    json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Fill a throwaway database, seed the read model from it, print what it costs."""
    from rich.console import Console

    from pmarket.bench import readmodel

    with Console(stderr=True).status("filling a database and seeding the read model"):
        figures = readmodel.run(readmodel.Options(users=users, positions=positions,
                                                  orders=orders, database_url=database_url))
    if json:
        typer.echo(orjson.dumps(figures.as_dict(), option=orjson.OPT_INDENT_2))
        return
    Console().print(readmodel_table(figures))


def readmodel_table(figures) -> Table:
    table = bench_table(f"read model ({figures.backend}: {figures.users:,} users, "
                        f"{figures.positions:,} positions, {figures.orders:,} open orders)",
                        "figure", "value", left=("figure",))
    table.add_row("seeding time (read + install)", f"{figures.seed_s:.2f} s")
    table.add_row("memory held", f"{figures.total_bytes / 2**20:,.1f} MiB")
    table.add_row("per user (balance)", f"{figures.bytes_per_user:,.0f} B")
    table.add_row("per position", f"{figures.bytes_per_position:,.0f} B")
    table.add_row("per open order", f"{figures.bytes_per_order:,.0f} B")
    return table
