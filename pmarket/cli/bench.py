"""``pmarket bench ...``: run a benchmark and print its table (or JSON)."""

from __future__ import annotations

import orjson
import typer
from rich.console import Console
from rich.table import Table

from pmarket.cli import app

bench_app = typer.Typer(help="Benchmarks: figures for the engine, the services and HTTP.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.{digits}f}"


@bench_app.command("engine")
def bench_engine(
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes (~15 s instead of ~1 min)."),
    json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    seed: int = typer.Option(1, help="Seed of the generated order flow."),
    only: list[str] = typer.Option(None, "--only", help="Run only these workloads: "
                                   "matching_heavy, book_building, concurrent, "
                                   "single_order_matching, single_order_resting, cancel, "
                                   "queries, memory_1m_orders."),
) -> None:
    """The engine alone: matching, book building, concurrency, latency, queries, memory."""
    from pmarket.bench import engine as bench

    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        try:
            results = bench.run(quick=quick, seed=seed, only=set(only) if only else None,
                                progress=lambda name: status.update(f"benchmarking {name}"))
        except ValueError as exc:  # an unknown --only name, before anything ran
            raise typer.BadParameter(str(exc), param_hint="--only") from None
    if json:
        typer.echo(orjson.dumps([r.as_dict() for r in results], option=orjson.OPT_INDENT_2))
        return
    table = Table(title="pmarket engine benchmark (whole engine: validation, ledger, events)",
                  caption=f"engine: {bench.engine_build()}")
    for col in ("workload", "size", "orders/s", "p50 µs", "p99 µs", "MiB", "target", "",
                "Rust engine"):
        table.add_column(col, justify="left" if col in ("workload", "target") else "right")
    for r in results:
        verdict = r.verdict()
        mark = {"pass": "[green]pass[/]", "fail": "[red]fail[/]"}.get(verdict, "")
        table.add_row(r.name, f"{r.size:,}", _fmt(r.orders_per_s), _fmt(r.p50_us, 2),
                      _fmt(r.p99_us, 2), _fmt(r.mib), bench._target_text(r.name) or "",
                      mark, bench.RUST.get(r.name, ""))
    Console().print(table)
