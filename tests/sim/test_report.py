"""Report arithmetic: percentiles, candles, P&L and the summary's counts."""

from __future__ import annotations

from pmarket.sim import parse_scenario, render, run_scenario
from pmarket.sim.report import candles, percentile

from .helpers import SMALL


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert percentile([], 50) == 0


def test_candles_bucket_trades_by_interval_with_ohlcv():
    start = 1_767_225_600_000
    trades = [(start, 5_000, 1), (start + 10_000, 5_200, 2), (start + 30_000, 4_900, 3),
              (start + 61_000, 5_100, 4)]
    assert candles(trades, 60_000) == [
        {"start": "2026-01-01T00:00:00+00:00", "open": "0.50", "high": "0.52",
         "low": "0.49", "close": "0.49", "volume": 6},
        {"start": "2026-01-01T00:01:00+00:00", "open": "0.51", "high": "0.51",
         "low": "0.51", "close": "0.51", "volume": 4},
    ]


def test_summary_counts_orders_trades_and_pnl_marked_at_the_last_price():
    report = run_scenario(parse_scenario(SMALL))
    s = report.summary
    assert s["orders"] == {"placed": 2, "rejected": 0}
    assert s["trades"]["by_kind"]["mint"] == 1 and s["trades"]["volume"] == 4
    users = {u["user"]: u for u in s["users"]}
    # ann paid 0.60 for 4 YES now marked at 0.60: flat; bob paid 0.40 per NO marked 0.40.
    assert users["ann"]["pnl"] == "0.0000" and users["bob"]["pnl"] == "0.0000"
    assert users["ann"]["holdings"] == {"rain": {"yes": 4, "no": 0}}
    [market] = s["markets"]
    assert market["bids"] == [["0.60", 6]] and market["last_price"] == "0.60"
    assert s["audit"]["ok"]


def test_render_produces_the_summary_tables():
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render(run_scenario(parse_scenario(SMALL))))
    text = console.export_text()
    for heading in ("summary", "final books", "balances and P&L", "latency per request"):
        assert heading in text
    assert "PASS" in text
