"""``pmarket bench engine`` runs every workload and reports sane figures (never judged
against the targets here: the machine is shared)."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from pmarket.bench import engine as bench
from pmarket.cli import load_commands

from .helpers import run_cli

FIELDS = {"name", "size", "orders_per_s", "p50_us", "p99_us", "mib", "target", "verdict",
          "rust", "engine"}
THROUGHPUT = {"matching_heavy", "book_building", "concurrent", "concurrent_ceiling"}
LATENCY = {"single_order_matching", "single_order_resting", "cancel", "best_bid",
           "best_ask", "full_book", "open_orders", "open_orders_changed"}
MEMORY = "memory_1m_orders"


@pytest.fixture(scope="module")
def quick_rows() -> list[dict]:
    """The rows of ``pmarket bench engine --quick --json`` (a couple of seconds)."""
    return orjson.loads(run_cli("bench", "engine", "--quick", "--json").stdout)


def test_quick_run_reports_every_workload(quick_rows: list[dict]):
    names = [row["name"] for row in quick_rows]

    # Every workload that has a target or a Rust figure to compare with is measured,
    # and the ceiling of concurrent users beside them.
    assert set(names) == THROUGHPUT | LATENCY | {MEMORY}
    assert set(bench.TARGETS) | set(bench.RUST) == set(names) - {"concurrent_ceiling"}
    assert [row["size"] for row in quick_rows if row["name"] == "matching_heavy"] == [1_000,
                                                                                      10_000]
    assert names.count("concurrent") == 1
    assert names.index("concurrent_ceiling") == names.index("concurrent") + 1


def test_quick_run_json_has_the_documented_fields_and_verdicts(quick_rows: list[dict]):
    for row in quick_rows:
        name = row["name"]
        assert set(row) >= FIELDS, name
        assert row["size"] > 0
        assert row["engine"] == bench.engine_build()
        assert row["rust"] == bench.RUST.get(name)
        if name in bench.TARGETS:
            assert row["verdict"] in ("pass", "fail"), name
            assert row["target"] == bench._target_text(name)
        else:
            assert row["verdict"] is None and row["target"] is None, name


def test_quick_run_figures_are_present_and_sane(quick_rows: list[dict]):
    for row in quick_rows:
        name = row["name"]
        if name in THROUGHPUT:
            assert row["orders_per_s"] > 0, name
        if name in LATENCY:
            assert 0 < row["p50_us"] <= row["p99_us"], name
        if name == MEMORY:
            assert row["mib"] > 0
            assert row["size"] == 100_000  # every order rests: none of them cross
            assert row["bytes_per_order"] > 0
        else:
            assert row["mib"] is None
    concurrent = next(row for row in quick_rows if row["name"] == "concurrent")
    ceiling = next(row for row in quick_rows if row["name"] == "concurrent_ceiling")
    assert concurrent["size"] == concurrent["users"] * 100 == ceiling["size"]
    assert concurrent["ceiling_orders_per_s"] == ceiling["orders_per_s"]
    assert concurrent["cpu_orders_per_s"] > 0 and ceiling["cpu_orders_per_s"] > 0
    assert concurrent["of_ceiling"] == pytest.approx(
        concurrent["orders_per_s"] / ceiling["orders_per_s"])
    # The engine alone on the same orders, and both costs together: one over their sum.
    engine = concurrent["engine_orders_per_s"]
    assert engine > 0
    assert 1 / concurrent["expected_orders_per_s"] == pytest.approx(
        1 / engine + 1 / ceiling["orders_per_s"])
    for name in ("open_orders", "open_orders_changed"):
        open_orders = next(row for row in quick_rows if row["name"] == name)
        assert open_orders["open_orders_of_user"] > 0


def test_concurrent_users_pass_at_the_target_or_near_their_ceiling():
    def row(orders_per_s: float, ceiling: float) -> bench.Result:
        return bench.Result("concurrent", 10_000, orders_per_s=orders_per_s,
                            extra={"ceiling_orders_per_s": ceiling})

    assert row(600_000, 5_000_000).verdict() == "pass"  # the target itself
    assert row(500_000, 600_000).verdict() == "pass"  # within 1.2x of the ceiling
    assert row(400_000, 600_000).verdict() == "fail"  # 1.5x below it


def test_the_table_says_how_far_concurrent_users_are_below_their_ceiling(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    table = run_cli("bench", "engine", "--quick", "--only", "queries", "--only",
                    "concurrent").stdout
    assert "open_orders_changed" in table and "concurrent_ceiling" in table
    assert "concurrent, 100 clients:" in table and "x below concurrent_ceiling" in table
    assert "engine alone " in table and "engine + hand-off " in table
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80


def test_memory_at_a_small_size_is_measured():
    # Measured in a fresh interpreter: in this one, after other tests freed memory, a
    # few thousand orders would fit in reused memory and read as 0 MiB.
    result = bench._memory(2_000, 10, seed=1)

    assert result.name == MEMORY and result.size == 2_000
    assert result.mib > 0
    assert result.extra == {"markets": 10, "bytes_per_order": pytest.approx(
        result.mib * 2**20 / 2_000)}
    assert result.verdict() in ("pass", "fail")


def test_only_runs_the_named_workloads_and_the_table_prints(monkeypatch):
    rows = bench.run(quick=True, only={"cancel", "queries"})
    assert [r.name for r in rows] == ["cancel", "best_bid", "best_ask", "full_book",
                                      "open_orders", "open_orders_changed"]

    monkeypatch.setenv("COLUMNS", "200")  # a table as wide as a terminal's, unwrapped
    table = run_cli("bench", "engine", "--quick", "--only", "cancel",
                    "--only", "matching_heavy").stdout
    assert "matching_heavy" in table and "cancel" in table
    assert "book_building" not in table


def test_an_unknown_workload_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match=r"best_bid.*choose from matching_heavy"):
        bench.run(quick=True, only={"best_bid"})

    result = CliRunner().invoke(load_commands(), ["bench", "engine", "--only", "best_bid"])
    assert result.exit_code == 2
    assert "unknown workload best_bid" in result.output
