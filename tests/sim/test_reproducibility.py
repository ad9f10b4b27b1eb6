"""The same scenario and seed always give the same report; a new seed a new run."""

from __future__ import annotations

import orjson

from pmarket.sim import parse_scenario, run_scenario

from .helpers import AGENTS, invoke, write


def test_same_seed_gives_the_same_report():
    scenario = parse_scenario(AGENTS)
    first, second = run_scenario(scenario), run_scenario(scenario)
    assert first.summary["trades"]["count"] > 0
    assert first.comparable() == second.comparable()
    assert first.summary["state_digest"] == second.summary["state_digest"]


def test_seed_override_changes_the_flow_and_is_reported():
    scenario = parse_scenario(AGENTS)
    base, other = run_scenario(scenario), run_scenario(scenario, seed=12345)
    assert other.seed == 12345 and base.seed == 11
    assert other.summary["state_digest"] != base.summary["state_digest"]
    assert other.comparable() == run_scenario(scenario, seed=12345).comparable()


def test_wall_clock_timings_are_kept_out_of_the_comparable_report():
    report = run_scenario(parse_scenario(AGENTS))
    assert "timing" not in report.comparable()
    timing = report.to_dict()["timing"]
    assert timing["commands"] > 0 and timing["latency_us"]["place"]["p50"] > 0


def test_cli_json_reports_match_for_the_same_seed(tmp_path):
    path = write(tmp_path, AGENTS)
    outputs = []
    for name in ("a.json", "b.json"):
        result = invoke("simulate", "--quiet", "--seed", "99", "--output",
                        str(tmp_path / name), str(path))
        assert result.exit_code == 0, result.output
        outputs.append(orjson.loads((tmp_path / name).read_bytes()))
    for data in outputs:
        assert data["passed"] is True
        [report] = data["reports"]
        assert report["seed"] == 99
        assert set(report["timing"]) >= {"wall_s", "throughput_per_s", "latency_us"}
        del report["timing"]
    assert outputs[0] == outputs[1]
