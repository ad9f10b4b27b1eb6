"""Exact decimal parsing and formatting of money and prices."""

import pytest

from pmarket.engine.units import (
    format_money,
    format_price,
    parse_amount,
    parse_price,
    parse_tick,
    to_units,
)


def test_prices_parse_exactly_on_their_grid():
    assert parse_price("0.57") == 5700
    assert parse_price("0.123", tick=10) == 1230
    assert parse_price("0.0001", tick=1) == 1
    assert parse_price(0.57) == 5700  # a JSON number is read by its decimal text


@pytest.mark.parametrize(("value", "tick", "words"), [
    ("0.575", 100, "grid"), ("0", 100, "between"), ("1", 100, "between"),
    ("abc", 100, "decimal"), ("0.00001", 1, "decimal places"), ("NaN", 100, "finite"),
    (True, 100, "boolean"),
])
def test_bad_prices_are_refused_with_a_reason(value, tick, words):
    with pytest.raises(ValueError, match=words):
        parse_price(value, tick)


def test_amounts_must_be_positive_and_bounded():
    assert parse_amount("125.40") == 1_254_000
    with pytest.raises(ValueError, match="greater than 0"):
        parse_amount("0")
    with pytest.raises(ValueError, match="at most"):
        parse_amount("100000000000000000000")
    with pytest.raises(ValueError, match="exponent"):
        parse_amount("1e20")


def test_ticks():
    assert [parse_tick(t) for t in ("0.01", "0.001", "0.0001")] == [100, 10, 1]
    with pytest.raises(ValueError):
        parse_tick("0.05")


def test_formatting_is_exact():
    assert format_money(1_254_000) == "125.4000"
    assert format_money(-5) == "-0.0005"
    assert format_price(5700) == "0.57"
    assert format_price(1230, tick=10) == "0.123"
    assert format_price(5701, tick=100) == "0.5701"  # never hides a digit
    assert to_units(format_money(123_456_789)) == 123_456_789
