"""What a scenario run produced: recording requests, building the report, printing it.

``Recorder`` times and counts every request the runner sends. ``build`` turns the
recording and the target's final state into a ``Report``: orders, trades by settlement
kind, volume, final books and candles, balances and P&L per user, the audit invariant,
and throughput and latency percentiles. ``render`` prints it as rich tables.

Invariant: everything in ``Report.comparable()`` is a function of the scenario, its seed
and the engine's behaviour alone — wall-clock measurements live only in
``Report.timing`` — so two runs with the same seed have equal comparable reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..engine import units
from ..engine.units import SCALE
from .expectations import show_price
from .scenario import MarketRef, Scenario
from .targets import Result, Target, Trader

KINDS = ("transfer_yes", "mint", "merge", "transfer_no")
ORDER_OPS = ("place", "place_batch")
TOP_LEVELS = 5
TABLE_USERS = 12


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed expectation: where, what was expected, what was found."""

    step: str
    check: str
    line: int
    expected: str
    found: str

    def __str__(self) -> str:
        return (f"{self.step}: {self.check} (line {self.line}): expected {self.expected}, "
                f"found {self.found}")

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "check": self.check, "line": self.line,
                "expected": self.expected, "found": self.found, "message": str(self)}


@lru_cache(maxsize=65_536)
def _units(text: str | Decimal) -> int:
    return units.to_units(text)


def _text(value: Decimal | None) -> str | None:
    """A price of an API object as its decimal string (None stays None)."""
    return None if value is None else str(value)


class Recorder:
    """Counts, times and remembers every request of a run, and the trades they made."""

    def __init__(self) -> None:
        self.ops: dict[str, int] = {}
        self.latency_ns: dict[str, list[int]] = {}
        self.rejections: dict[str, int] = {}
        self.orders_placed = 0
        self.orders_rejected = 0
        self.busy_ns = 0
        # market, price, qty, kind, ts, the taker's fee
        self.trades: list[tuple[int, int, int, str, int, int]] = []

    def record(self, op: str, elapsed_ns: int, result: Result) -> None:
        """Account for one request that took ``elapsed_ns`` and returned ``result``."""
        self.ops[op] = self.ops.get(op, 0) + 1
        self.busy_ns += elapsed_ns
        lat = self.latency_ns.get(op)
        if lat is None:
            lat = self.latency_ns[op] = []
        lat.append(elapsed_ns)
        outcomes = result.items if op == "place_batch" else [result]
        if op in ORDER_OPS:
            self.orders_placed += len(outcomes)
        for item in outcomes:
            if item.error is not None:
                self.rejections[item.error.code] = self.rejections.get(item.error.code, 0) + 1
                if op in ORDER_OPS:
                    self.orders_rejected += 1
        if result.trades:
            self.trades.extend((t.market_id, _units(t.price), t.quantity, t.kind, t.ts_ms,
                                _units(t.fee)) for t in result.trades)


@dataclass
class Report:
    """The outcome of one scenario run (see the module docstring for what is comparable)."""

    scenario: str
    file: str
    seed: int
    target: str
    failures: list[Failure]
    summary: dict[str, Any]
    timing: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Steps the target could not run as written ("not available over HTTP: ...")."""

    @property
    def passed(self) -> bool:
        return not self.failures

    def comparable(self) -> dict[str, Any]:
        """Everything but wall-clock timings: equal for equal seeds."""
        return {"scenario": self.scenario, "file": self.file, "seed": self.seed,
                "target": self.target, "passed": self.passed,
                "failures": [f.to_dict() for f in self.failures], "notes": self.notes,
                **self.summary}

    def to_dict(self) -> dict[str, Any]:
        """The full report, JSON-ready."""
        return {**self.comparable(), "timing": self.timing}


# --- building --------------------------------------------------------------------------


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def build(scenario: Scenario, seed: int, target: Target, rec: Recorder,
          users: dict[str, Trader], net_deposits: dict[str, int],
          markets: dict[MarketRef, int], failures: list[Failure], sim_ms: int,
          wall_ns: int, notes: list[str] | None = None) -> Report:
    """Assemble the report of a finished run from the recording and the target's state.

    Args:
        scenario: what ran.
        seed: the seed actually used.
        target: the exchange, queried for final books, balances and the audit.
        rec: the run's recording.
        users: every signed-up user by name.
        net_deposits: deposits minus withdrawals per user name, in units.
        markets: market id of every market reference.
        failures: the failed expectations, in order.
        sim_ms: simulated time the run covered.
        wall_ns: real time the run took.
        notes: what the target could not run as written, one line per step.
    """
    by_kind = dict.fromkeys(KINDS, 0)
    volume = notional = fees = 0
    per_market: dict[int, list[tuple[int, int, int]]] = {}
    market_fees: dict[int, int] = {}
    for market_id, price, qty, kind, ts, fee in rec.trades:
        by_kind[kind] += 1
        volume += qty
        notional += price * qty
        fees += fee
        market_fees[market_id] = market_fees.get(market_id, 0) + fee
        per_market.setdefault(market_id, []).append((ts, price, qty))
    market_rows, marks = [], {}
    for ref, market_id in markets.items():
        info = target.market(market_id)
        book = target.book(market_id, "yes")
        marks[market_id] = _mark(info.status, book.best_bid, book.best_ask,
                                 _text(info.last_price))
        trades = per_market.get(market_id, [])
        market_rows.append({
            "market": str(ref), "id": market_id, "status": info.status,
            "last_price": _text(info.last_price), "volume": info.volume, "trades": len(trades),
            "fees": units.format_money(market_fees.get(market_id, 0)),
            "best_bid": book.best_bid, "best_ask": book.best_ask,
            "bid_levels": len(book.bids), "ask_levels": len(book.asks),
            "bids": [[p, q] for p, q in book.bids[:TOP_LEVELS]],
            "asks": [[p, q] for p, q in book.asks[:TOP_LEVELS]],
            "candles": candles(trades, scenario.candle_ms),
        })
    labels = {mid: str(ref) for ref, mid in markets.items()}
    user_rows = [_user_row(name, user, target, net_deposits.get(name, 0), marks, labels)
                 for name, user in users.items()]
    audit = target.audit()
    summary = {
        "steps": len(scenario.steps),
        "sim_time_ms": sim_ms,
        "commands": dict(sorted(rec.ops.items())),
        "orders": {"placed": rec.orders_placed, "rejected": rec.orders_rejected},
        "rejections": dict(sorted(rec.rejections.items())),
        "trades": {"count": len(rec.trades), "by_kind": by_kind, "volume": volume,
                   "notional": units.format_money(notional), "fees": units.format_money(fees)},
        "markets": market_rows,
        "users": user_rows,
        "audit": {"ok": audit.ok, "difference": audit.difference, "problems": audit.problems},
        "state_digest": target.state_digest(),
    }
    return Report(scenario.name, scenario.file, seed, target.name, failures, summary,
                  _timing(rec, wall_ns), list(notes or []))


def _mark(status: str, bid: str | None, ask: str | None, last: str | None) -> int:
    """The price shares of a market are valued at: last trade, else mid, else 0.50."""
    if status == "resolved":
        return 0
    if last is not None:
        return _units(last)
    if bid is not None and ask is not None:
        return (_units(bid) + _units(ask)) // 2
    return SCALE // 2


def _user_row(name: str, user: Trader, target: Target, deposited: int, marks: dict[int, int],
              labels: dict[int, str]) -> dict[str, Any]:
    bal = target.balance(user)
    cash = _units(bal.available) + _units(bal.reserved)
    value = cash
    holdings = {}
    for h in target.holdings(user):
        if h.yes or h.no:
            mark = marks.get(h.market_id, SCALE // 2)
            value += h.yes * mark + h.no * (SCALE - mark)
            holdings[labels.get(h.market_id, str(h.market_id))] = {"yes": h.yes, "no": h.no}
    return {"user": name, "id": user.id, "available": str(bal.available),
            "reserved": str(bal.reserved),
            "holdings": holdings, "deposited": units.format_money(deposited),
            "value": units.format_money(value), "pnl": units.format_money(value - deposited)}


def candles(trades: list[tuple[int, int, int]], interval_ms: int) -> list[dict[str, Any]]:
    """OHLCV candles of ``(ts_ms, price, quantity)`` trades in ``interval_ms`` buckets."""
    out: list[dict[str, Any]] = []
    current = None
    for ts, price, qty in trades:
        start = ts - ts % interval_ms
        if current is None or current["start_ms"] != start:
            current = {"start_ms": start, "open": price, "high": price, "low": price,
                       "close": price, "volume": 0}
            out.append(current)
        current["high"] = max(current["high"], price)
        current["low"] = min(current["low"], price)
        current["close"] = price
        current["volume"] += qty
    return [{"start": datetime.fromtimestamp(c["start_ms"] / 1000, UTC).isoformat(),
             **{k: show_price(c[k]) for k in ("open", "high", "low", "close")},
             "volume": c["volume"]} for c in out]


def _timing(rec: Recorder, wall_ns: int) -> dict[str, Any]:
    commands = sum(rec.ops.values())
    latency = {}
    for op, values in sorted(rec.latency_ns.items()):
        values.sort()
        latency[op] = {"count": len(values),
                       **{f"p{p}": round(percentile(values, p) / 1000, 1) for p in (50, 90, 99)},
                       "max": round(values[-1] / 1000, 1)}
    return {
        "wall_s": round(wall_ns / 1e9, 4),
        "target_s": round(rec.busy_ns / 1e9, 4),
        "commands": commands,
        "throughput_per_s": round(commands / (rec.busy_ns / 1e9)) if rec.busy_ns else 0,
        "wall_throughput_per_s": round(commands / (wall_ns / 1e9)) if wall_ns else 0,
        "latency_us": latency,
    }


# --- printing --------------------------------------------------------------------------


def render(report: Report) -> Group:
    """The report as rich renderables: failures, summary, markets, users, latency."""
    s, t = report.summary, report.timing
    parts: list[Any] = []
    verdict = Text("PASS", style="bold green") if report.passed else Text(
        f"FAIL ({len(report.failures)} expectation(s))", style="bold red")
    parts.append(Text.assemble(f"{report.scenario} ", (f"[{report.file}]", "dim"), "  ",
                               verdict))
    for failure in report.failures:
        parts.append(Text(f"  x {failure}", style="red", overflow="fold"))
    for note in report.notes:
        parts.append(Text(f"  ! {note}", style="yellow", overflow="fold"))
    summary = Table(title="summary", show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    trades = s["trades"]
    kinds = ", ".join(f"{k} {v}" for k, v in trades["by_kind"].items())
    rejected = ", ".join(f"{k} {v}" for k, v in s["rejections"].items()) or "none"
    audit = s["audit"]
    summary.add_row("seed / target", f"{report.seed} / {report.target}")
    summary.add_row("steps / simulated time", f"{s['steps']} / {_duration(s['sim_time_ms'])}")
    summary.add_row("orders", f"{s['orders']['placed']} placed, {s['orders']['rejected']} "
                              f"rejected")
    summary.add_row("rejections", rejected)
    summary.add_row("trades", f"{trades['count']} ({kinds})")
    summary.add_row("volume", f"{trades['volume']} shares, ${trades['notional']} notional")
    summary.add_row("fees", f"${trades['fees']} paid by takers")
    summary.add_row("invariant", Text("ok", style="green") if audit["ok"] else
                    Text("; ".join(audit["problems"]), style="red"))
    if t:
        summary.add_row("throughput", f"{t['throughput_per_s']:,} commands/s in the target, "
                                      f"{t['wall_throughput_per_s']:,}/s wall "
                                      f"({t['commands']:,} commands, {t['wall_s']} s)")
    parts.append(summary)
    parts.append(_markets_table(s["markets"]))
    parts.append(_users_table(s["users"]))
    if t and t["latency_us"]:
        parts.append(_latency_table(t["latency_us"]))
    return Group(*parts)


def _markets_table(rows: list[dict]) -> Table:
    table = Table(title="final books (YES view)", title_justify="left")
    for name in ("market", "status", "last", "volume", "bids (top)", "asks (top)"):
        table.add_column(name, justify="right" if name in ("last", "volume") else "left")
    for m in rows:
        table.add_row(m["market"], m["status"], m["last_price"] or "-", str(m["volume"]),
                      _levels(m["bids"], m["bid_levels"]), _levels(m["asks"], m["ask_levels"]))
    return table


def _levels(levels: list, total: int) -> str:
    if not levels:
        return "-"
    text = " ".join(f"{p}x{q}" for p, q in levels[:3])
    return f"{text} (+{total - 3})" if total > 3 else text


def _users_table(rows: list[dict]) -> Table:
    shown = sorted(rows, key=lambda r: (-abs(_units(r["pnl"])), r["user"]))[:TABLE_USERS]
    more = f" — {len(shown)} of {len(rows)} by |P&L|" if len(rows) > len(shown) else ""
    table = Table(title=f"balances and P&L{more}", title_justify="left")
    for name in ("user", "available", "reserved", "holdings", "P&L"):
        table.add_column(name, justify="left" if name in ("user", "holdings") else "right")
    for r in sorted(shown, key=lambda r: r["user"]):
        holdings = ", ".join(f"{m}: {h['yes']}Y/{h['no']}N" for m, h in r["holdings"].items())
        pnl = _units(r["pnl"])
        style = "green" if pnl > 0 else "red" if pnl < 0 else ""
        table.add_row(r["user"], r["available"], r["reserved"], holdings or "-",
                      Text(r["pnl"], style=style))
    return table


def _latency_table(latency: dict[str, dict]) -> Table:
    table = Table(title="latency per request (µs)", title_justify="left")
    for name in ("request", "count", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="left" if name == "request" else "right")
    for op, v in latency.items():
        table.add_row(op, f"{v['count']:,}", *(f"{v[k]:,}" for k in ("p50", "p90", "p99", "max")))
    return table


def _duration(ms: int) -> str:
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}.{ms:03d}s"
