"""Scenario files are validated before anything runs, with errors at line and field."""

from __future__ import annotations

import pytest

from pmarket.sim import ScenarioError, parse_scenario

from .helpers import SMALL, invoke, write


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_a_valid_scenario_parses_into_exact_units():
    scenario = parse_scenario(SMALL)
    place = scenario.steps[0].action
    assert place.order.price == 6_000
    assert scenario.users[0].deposit == 1_000_000


def test_unknown_key_is_an_error_at_its_line_and_column():
    text = SMALL.replace('quantity: 10}', 'quantity: 10, colour: red}')
    [problem] = problems(text)
    assert problem.startswith("s.yaml:11:94: steps[0].place.colour: unknown key 'colour'")


def test_unknown_top_level_and_setup_keys_are_errors():
    assert problems(SMALL.replace("seed: 3", "seeds: 3"))[0].startswith(
        "s.yaml:2:1: seeds: unknown key 'seeds'")
    text = SMALL.replace("  users:", "  userz:")
    assert "s.yaml:6:3: setup.userz: unknown key 'userz'" in problems(text)[0]


def test_price_off_the_tick_grid_is_an_error_at_the_price():
    text = SMALL.replace('price: "0.60", quantity: 10', 'price: "0.605", quantity: 10')
    [problem] = problems(text)
    assert problem == ("s.yaml:11:72: steps[0].place.price: price 0.605 is not on the 0.0100 "
                       "tick grid")


def test_price_outside_zero_to_one_and_non_numbers_are_errors():
    assert "strictly between 0 and 1" in problems(SMALL.replace('"0.60", quantity: 10',
                                                                '"1.00", quantity: 10'))[0]
    assert "must be a decimal number" in problems(SMALL.replace('"0.60", quantity: 10',
                                                                'abc, quantity: 10'))[0]


def test_bare_yaml_numbers_are_read_exactly_never_as_floats():
    scenario = parse_scenario(SMALL.replace('price: "0.60", quantity: 10',
                                            'price: 0.29, quantity: 10'))
    assert scenario.steps[0].action.order.price == 2_900  # float(0.29) * 10_000 = 2899.99...


def test_finer_tick_accepts_finer_prices():
    text = SMALL.replace('{title: "Will it rain?"}', '{title: "Will it rain?", tick_size: 0.001}')
    text = text.replace('price: "0.60", quantity: 10', 'price: "0.605", quantity: 10')
    assert parse_scenario(text).steps[0].action.order.price == 6_050
    bad = text.replace("tick_size: 0.001", "tick_size: 0.002")
    assert "tick_size must be 0.01, 0.001 or 0.0001" in problems(bad)[0]


def test_references_must_name_something_defined_earlier():
    [problem] = problems(SMALL.replace("user: bob,", "user: zed,"))
    assert problem.startswith("s.yaml:13:19: steps[1].place.user: unknown user 'zed' "
                              "(users: ann, bob)")
    [problem] = problems(SMALL.replace("ann-bids: {status", "nobody: {status"))
    assert "steps[1].expect.orders.nobody: no earlier step placed an order named 'nobody'" \
        in problem


def test_a_reference_to_an_invalid_step_is_not_reported_twice():
    [problem] = problems(SMALL.replace("quantity: 10}", "quantity: -1}"))
    assert "steps[0].place.quantity: must be at least 1" in problem


def test_a_multi_outcome_market_must_name_its_outcome():
    text = SMALL.replace('{title: "Will it rain?"}', '{title: "Who?", outcomes: [A, B]}')
    found = problems(text)
    assert "'rain' has several outcomes: name a market as rain/<outcome>, one of A, B" in found[0]
    assert "s.yaml:11:" in found[0]


def test_every_bad_step_is_reported_in_one_pass():
    text = SMALL.replace("quantity: 10}", "quantity: 0}").replace("quantity: 4}", "quantity: x}")
    found = problems(text)
    assert len(found) == 2
    assert found[0].startswith("s.yaml:11:") and "must be at least 1" in found[0]
    assert found[1].startswith("s.yaml:13:") and "expected a whole number" in found[1]


def test_duplicate_keys_and_names_are_errors():
    dup = SMALL.replace("quantity: 10}", "quantity: 10, quantity: 11}")
    assert "duplicate key 'quantity'" in problems(dup)[0]
    again = SMALL.replace("name: bob-mints", "name: ann-bids")
    assert "name 'ann-bids' is already used" in problems(again)[0]


def test_time_only_goes_forward():
    text = SMALL.replace("  - name: bob-mints",
                         "  - advance: 10s\n  - at: 5s\n    expect: {audit: ok}\n"
                         "  - name: bob-mints")
    [problem] = problems(text)
    assert problem.startswith("s.yaml:13:9: steps[2].at: time goes forward only")


def test_durations_need_a_unit():
    text = SMALL.replace("  - name: bob-mints", "  - advance: 10\n  - name: bob-mints")
    assert "expected a duration such as 500ms, 5s" in problems(text)[0]


def test_a_limit_order_needs_a_price_and_a_step_needs_an_action():
    assert "a limit order needs a price" in problems(SMALL.replace('price: "0.60", ', ""))[0]
    text = SMALL.replace("  - name: bob-mints", "  - name: idle\n  - name: bob-mints")
    assert "a step needs an action" in problems(text)[0]


def test_expectations_are_validated_like_everything_else():
    text = SMALL.replace("status: filled\n", "status: done\n")
    assert "steps[1].expect.status: expected one of open, partially_filled" in problems(text)[0]
    text = SMALL.replace("kind: mint", "kind: swap")
    assert "expected one of transfer_yes, mint, merge, transfer_no" in problems(text)[0]


def test_malformed_yaml_points_at_its_line():
    found = problems(SMALL.replace("steps:", "steps: [", 1))
    assert found[0].startswith("s.yaml:") and "invalid YAML" in found[0]


def test_cli_prints_located_problems_and_exits_2(tmp_path):
    path = write(tmp_path, SMALL.replace("quantity: 10}", "quantity: 10, colour: red}"))
    result = invoke("simulate", str(path))
    assert result.exit_code == 2
    assert f"{path}:11:94: steps[0].place.colour: unknown key 'colour'" in result.output
