"""Shared pieces of the simulator tests: paths, a small scenario, running the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pmarket.cli import load_commands

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LOAD_SCALE = 0.02
"""Load bursts run at 2% of their size in tests (full size from the CLI)."""

SMALL = """\
name: small
seed: 3
setup:
  events:
    rain: {title: "Will it rain?"}
  users:
    ann: {deposit: "100"}
    bob: {deposit: "100"}
steps:
  - name: ann-bids
    place: {user: ann, market: rain, side: buy, outcome: "yes", price: "0.60", quantity: 10}
  - name: bob-mints
    place: {user: bob, market: rain, side: buy, outcome: "no", price: "0.40", quantity: 4}
    expect:
      status: filled
      trades: [{price: "0.60", quantity: 4, kind: mint}]
      orders: {ann-bids: {status: partially_filled, filled: 4}}
      balances: {ann: {available: "94", reserved: "3.60"}}
"""

AGENTS = """\
name: small-agents
seed: 11
setup:
  events:
    rain: {title: "Will it rain?"}
steps:
  - simulate:
      duration: 20m
      agents:
        - {kind: market_maker, market: rain, fair_value: "0.55", every: 20s, levels: 2}
        - {kind: noise, count: 3, market: rain, rate: 3/m}
        - {kind: informed, market: rain, knows: "no", every: 1m}
    expect: {audit: ok}
  - resolve: {event: rain, winner: "no"}
    expect: {audit: ok}
"""


def invoke(*args: str):
    """Run ``pmarket <args>`` in-process and return typer's result."""
    return CliRunner().invoke(load_commands(), list(args))


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    """Write scenario text to a file and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
