"""A failed expectation is reported with its step, the expected and the found value."""

from __future__ import annotations

from pmarket.sim import parse_scenario, run_scenario

from .helpers import SCENARIOS, SMALL, invoke, write


def test_wrong_expectation_fails_naming_step_expected_and_found():
    wrong = SMALL.replace("status: partially_filled, filled: 4", "status: filled, filled: 4")
    report = run_scenario(parse_scenario(wrong, "wrong.yaml"))
    assert not report.passed
    [failure] = report.failures
    assert failure.step == "step 2 'bob-mints' (line 12)"
    assert failure.check == "steps[1].expect.orders.ann-bids.status"
    assert (failure.expected, failure.found) == ("filled", "partially_filled")
    assert "expected filled, found partially_filled" in str(failure)


def test_every_wrong_value_is_reported_not_only_the_first():
    wrong = SMALL.replace('price: "0.60", quantity: 4', 'price: "0.61", quantity: 4')
    wrong = wrong.replace('available: "94"', 'available: "95"')
    report = run_scenario(parse_scenario(wrong))
    found = {(f.check, f.expected, f.found) for f in report.failures}
    assert found == {
        ("steps[1].expect.trades", "[0.61 x 4 mint]", "[0.60 x 4 mint]"),
        ("steps[1].expect.balances.ann.available", "95.0000", "94.0000"),
    }


def test_a_refused_scripted_step_fails_unless_the_refusal_is_expected():
    text = SMALL + """\
  - name: naked-sell
    place: {user: bob, market: rain, side: sell, outcome: "yes", price: "0.50", quantity: 1}
"""
    report = run_scenario(parse_scenario(text))
    [failure] = report.failures
    assert failure.step == "step 3 'naked-sell' (line 19)"
    assert failure.expected == "success"
    assert failure.found.startswith("rejected: insufficient_shares")
    expected = text + "    expect: {rejected: insufficient_shares}\n"
    assert run_scenario(parse_scenario(expected)).passed


def test_expecting_a_refusal_that_does_not_happen_fails():
    text = SMALL.replace("      status: filled\n", "      rejected: insufficient_cash\n")
    [failure] = run_scenario(parse_scenario(text)).failures
    assert (failure.expected, failure.found) == ("insufficient_cash", "nothing (it succeeded)")


def test_cli_exits_non_zero_and_prints_the_failure(tmp_path):
    wrong = SMALL.replace('reserved: "3.60"', 'reserved: "3.70"')
    result = invoke("simulate", "--quiet", str(write(tmp_path, wrong)))
    assert result.exit_code == 1
    assert "FAIL small" in result.output
    assert "step 2 'bob-mints' (line 12)" in result.output
    assert "expected 3.7000, found 3.6000" in result.output


def test_cli_exits_zero_when_every_expectation_holds(tmp_path):
    result = invoke("simulate", str(write(tmp_path, SMALL)), str(SCENARIOS /
                                                                "02-book-views.yaml"))
    assert result.exit_code == 0, result.output
    assert "2 of 2 scenarios passed" in result.output
    assert "final books" in result.output and "latency per request" in result.output


def test_http_target_without_admin_credentials_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("PMARKET_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("PMARKET_ADMIN_PASSWORD", raising=False)
    result = invoke("simulate", "--target", "http://127.0.0.1:8000", str(write(tmp_path, SMALL)))
    assert result.exit_code == 2
    assert "missing: --admin-email (or PMARKET_ADMIN_EMAIL) and --admin-password" in \
        result.output


def test_wrong_expectation_fails_over_http_too(tmp_path, http_url, monkeypatch):
    from .server import ADMIN_EMAIL, ADMIN_PASSWORD

    wrong = SMALL.replace("status: partially_filled, filled: 4", "status: filled, filled: 4")
    path = write(tmp_path, wrong, "wrong.yaml")
    monkeypatch.setenv("PMARKET_ADMIN_EMAIL", ADMIN_EMAIL)
    monkeypatch.setenv("PMARKET_ADMIN_PASSWORD", ADMIN_PASSWORD)
    result = invoke("simulate", "--quiet", "--target", http_url, str(path))
    assert result.exit_code == 1, result.output
    assert "FAIL small" in result.output
    assert "steps[1].expect.orders.ann-bids.status (line 17): expected filled, found " \
        "partially_filled" in result.output
    good = invoke("simulate", "--quiet", "--target", http_url,
                  str(write(tmp_path, SMALL, "good.yaml")))
    assert good.exit_code == 0, good.output
