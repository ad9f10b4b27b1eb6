"""A position's average cost is computed with integers, exactly as the decimal definition
(``cost / qty`` dollars to the unit, halves to even) says."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from pmarket.engine.units import SCALE
from pmarket.server.views import avg_cost


def by_decimal(cost: int, qty: int) -> str:
    return str((Decimal(cost) / qty / SCALE).quantize(Decimal("0.0001")))


@given(st.integers(-10**18, 10**18), st.integers(1, 10**12))
@example(cost=5, qty=2)  # 2.5 units: to even, 2
@example(cost=15, qty=2)  # 7.5 units: to even, 8
@example(cost=-1, qty=3)  # rounds to zero, keeps its sign
@example(cost=10**18, qty=1)
def test_average_cost_equals_the_decimal_definition(cost, qty):
    assert avg_cost(cost, qty) == by_decimal(cost, qty)


def test_no_shares_have_no_average_cost():
    assert avg_cost(0, 0) is None
    assert avg_cost(123, 0) is None
