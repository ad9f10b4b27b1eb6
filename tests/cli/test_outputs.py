"""A command's output goes where it is asked and never over one of its inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .test_failures import run

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "01-settlement-kinds.yaml"


def test_simulate_json_is_the_whole_standard_output(tmp_path):
    scenario = shutil.copy(SCENARIO, tmp_path / "s.yaml")
    before = Path(scenario).read_bytes()
    done = run("simulate", "--json", str(scenario), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["passed"] is True and len(data["reports"]) == 1
    assert "PASS" in done.stderr  # the human summary goes to stderr then
    assert Path(scenario).read_bytes() == before


def test_simulate_output_writes_a_file_and_refuses_an_input(tmp_path):
    scenario = Path(shutil.copy(SCENARIO, tmp_path / "s.yaml"))
    before = scenario.read_bytes()
    refused = run("simulate", "--quiet", "--output", "./s.yaml", str(scenario), cwd=tmp_path)
    assert refused.returncode == 2 and "one of the scenario files" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2
    assert scenario.read_bytes() == before
    done = run("simulate", "--quiet", "--output", "report.json", str(scenario), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "report.json").read_bytes())["passed"] is True
    assert "PASS" in done.stdout and scenario.read_bytes() == before
