"""Every shipped scenario runs and meets all of its expectations, on every target.

``TARGETS`` lists the exchanges scenarios are replayed against: the in-process engine
now; the HTTP target joins it once the server exists (issue 5).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from pmarket.sim import load_scenario, run_scenario
from pmarket.sim.targets import InProcessTarget

from .helpers import LOAD_SCALE, SCENARIOS

FILES = sorted(SCENARIOS.glob("*.yaml"))
TARGETS = {"in-process": InProcessTarget}


@cache
def report_for(path: Path, target: str = "in-process"):
    """Run a shipped scenario once per test session (load scenarios scaled down)."""
    scenario = load_scenario(path)
    return run_scenario(scenario, TARGETS[target](),
                        scale=LOAD_SCALE if scenario.is_load else 1.0)


def test_at_least_fifteen_feature_scenarios_and_three_load_scenarios_ship():
    scenarios = [load_scenario(path) for path in FILES]
    assert len([s for s in scenarios if not s.is_load]) >= 15
    assert len([s for s in scenarios if s.is_load]) >= 3


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_meets_its_expectations(path, target):
    report = report_for(path, target)
    assert report.passed, "\n".join(str(f) for f in report.failures)
    assert report.summary["audit"]["ok"], report.summary["audit"]["problems"]


def test_shipped_scenarios_cover_every_settlement_kind_and_engine_command():
    kinds: set[str] = set()
    commands: set[str] = set()
    for path in FILES:
        report = report_for(path)
        kinds |= {k for k, n in report.summary["trades"]["by_kind"].items() if n}
        commands |= set(report.summary["commands"])
    assert kinds == {"transfer_yes", "mint", "merge", "transfer_no"}
    assert commands >= {
        "place", "place_batch", "modify", "cancel", "cancel_all", "split", "merge",
        "split_event", "merge_event", "convert", "deposit", "withdraw", "close", "reopen",
        "resolve", "void", "delete_event", "advance",
    }
