"""The scenario simulator: scripted order flows and seeded agents against an exchange.

``load_scenario(path)`` validates a YAML scenario file (``loader``), ``run_scenario``
executes it on a ``Target`` (``targets``; in-process by default) under a simulated
clock (``clock``) with generated flow from ``agents``, checks its expectations
(``expectations``) and returns a ``Report`` (``report``). ``pmarket simulate`` is the
command line over these.
"""

from .connect import open_target
from .loader import load_scenario, parse_scenario
from .reader import Problem, ScenarioError
from .report import Failure, Report, render
from .runner import estimate_work, run_scenario
from .scenario import Scenario
from .targets import InProcessTarget, Target, TargetUnavailable

__all__ = [
    "Failure",
    "InProcessTarget",
    "Problem",
    "Report",
    "Scenario",
    "ScenarioError",
    "Target",
    "TargetUnavailable",
    "estimate_work",
    "load_scenario",
    "open_target",
    "parse_scenario",
    "render",
    "run_scenario",
]
