"""``pmarket bench ...``: run a benchmark and print its table (or JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import typer

from pmarket.cli import app

if TYPE_CHECKING:
    from rich.table import Table

bench_app = typer.Typer(help="Benchmarks: figures for the engine, the services and HTTP.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def bench_table(title: str, *columns: str, left: tuple[str, ...] = (),
                caption: str | None = None) -> Table:
    """A benchmark table that reads in an 80-column terminal: light rules, no outer
    padding, figures right-aligned and never wrapped (``left`` columns are text)."""
    from rich import box
    from rich.table import Table
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, title_justify="left", caption_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right",
                         no_wrap=column not in left)
    return table


def verdict(ok: bool | None) -> str:
    """``pass`` / ``fail`` (coloured), or nothing when there is no target."""
    return "" if ok is None else ("[green]pass[/]" if ok else "[red]fail[/]")


def count(n: int) -> str:
    """1,000,000 as ``1M``, 200,000 as ``200k``; other numbers with separators."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size:,}{suffix}"
    return f"{n:,}"


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
    from rich.console import Console

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
    for table in engine_tables(results, bench.engine_build()):
        Console().print(table)


def engine_tables(results, build: str) -> tuple[Table, Table]:
    """The figures (with pass/fail), then the targets and the Rust engine's figures."""
    from pmarket.bench import engine as bench

    caption = "\n".join([f"engine: {build}", *_ceiling_lines(results)])
    figures = bench_table("pmarket engine benchmark (whole engine: validation, ledger, "
                          "events)", "workload", "size", "orders/s", "p50 µs", "p99 µs",
                          "MiB", "", left=("workload",), caption=caption)
    targets = bench_table("targets, and the Rust engine's figures for the same workloads",
                          "workload", "target", "Rust engine", left=("workload", "target"))
    listed: set[str] = set()
    for r in results:
        ok = {"pass": True, "fail": False}.get(r.verdict())
        figures.add_row(r.name, count(r.size), _fmt(r.orders_per_s), _fmt(r.p50_us, 2),
                        _fmt(r.p99_us, 2), _fmt(r.mib), verdict(ok))
        target, rust = bench._target_text(r.name), bench.RUST.get(r.name, "")
        if (target or rust) and r.name not in listed:  # a workload may run at two sizes
            listed.add(r.name)
            targets.add_row(r.name, target or "", rust)
    return figures, targets


def _ceiling_lines(results) -> list[str]:
    """How far concurrent users are below their ceiling (the no-op engine's figure),
    and what the engine's own work and the hand-off's together allow."""
    lines = []
    for r in results:
        if "of_ceiling" in r.extra:
            lines += [f"concurrent, {r.extra['users']:,} clients: "
                      f"{1 / r.extra['of_ceiling']:.2f}x below concurrent_ceiling;",
                      f"  engine alone {_fmt(r.extra['engine_orders_per_s'])}/s, engine + "
                      f"hand-off {_fmt(r.extra['expected_orders_per_s'])}/s"]
    return lines
