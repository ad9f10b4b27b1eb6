"""Order-entry arithmetic: ticks, lots, the canonical-book mirror, and hit/lift plans."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pmarket.client import Position
from pmarket.engine import units
from pmarket.engine.units import MAX_QUANTITY
from pmarket.tui import format as fmt
from pmarket.tui.trading import plan_hit, plan_lift

TICKS = st.sampled_from([Decimal("0.01"), Decimal("0.001"), Decimal("0.0001")])


@st.composite
def priced(draw):
    """A tick and a valid price on its grid."""
    tick = draw(TICKS)
    steps = int(1 / tick)
    return tick, draw(st.integers(1, steps - 1)) * tick


def position(yes: int = 0, no: int = 0, yes_reserved: int = 0, no_reserved: int = 0):
    return Position(market_id=1, event_id=1, outcome_id=1, outcome_name="Rain",
                    yes_quantity=yes, no_quantity=no, yes_reserved=yes_reserved,
                    no_reserved=no_reserved, avg_cost_yes=None, avg_cost_no=None,
                    mark_price=None, value=Decimal(0), unrealized_pnl=Decimal(0),
                    realized_pnl=Decimal(0))


@given(priced(), st.integers(-50, 50))
def test_a_stepped_price_stays_on_the_grid_strictly_inside_0_and_1(tp, steps):
    tick, price = tp
    moved = fmt.step_price(price, tick, steps)
    assert tick <= moved <= 1 - tick
    assert moved % tick == 0
    expected = min(max(price + steps * tick, tick), 1 - tick)
    assert moved == expected


@given(TICKS, st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.9999"),
                          places=6), st.integers(-3, 3))
def test_an_off_grid_price_snaps_onto_the_grid_in_the_direction_stepped(tick, price, steps):
    moved = fmt.step_price(price, tick, steps)
    assert moved % tick == 0 and tick <= moved <= 1 - tick
    if steps > 0:
        assert moved > price or moved == 1 - tick
    if steps < 0:
        assert moved < price or moved == tick


@given(st.integers(1, MAX_QUANTITY), st.integers(1, 5))
def test_quantity_steps_by_whole_lots_within_one_and_the_largest_order(quantity, steps):
    up = fmt.step_quantity(quantity, steps)
    down = fmt.step_quantity(quantity, -steps)
    assert up % fmt.LOT == 0 and up - quantity <= steps * fmt.LOT
    assert up > quantity or up == quantity == MAX_QUANTITY
    assert up <= MAX_QUANTITY
    assert 1 <= down < quantity or down == quantity == 1
    assert down == 1 or down % fmt.LOT == 0


def test_quantity_steps_as_documented():
    assert [fmt.step_quantity(q, 1) for q in (1, 9, 10, 15)] == [10, 10, 20, 20]
    assert [fmt.step_quantity(q, -1) for q in (1, 10, 15, 20)] == [1, 1, 10, 10]


@given(priced(), st.sampled_from(["buy", "sell"]), st.sampled_from(["yes", "no"]))
def test_the_mirror_is_the_same_order_on_the_canonical_book(tp, side, outcome):
    _, price = tp
    m_side, m_outcome, m_price = fmt.mirror(side, outcome, price)
    assert m_price is not None
    assert (m_side, m_outcome) != (side, outcome) and m_outcome != outcome
    assert fmt.on_book(m_side, m_outcome, m_price) == fmt.on_book(side, outcome, price)
    assert fmt.mirror(m_side, m_outcome, m_price) == (side, outcome, price)


def test_the_canonical_book_table_of_the_design():
    p = Decimal("0.40")
    assert fmt.on_book("buy", "yes", p) == ("bid", p)
    assert fmt.on_book("sell", "yes", p) == ("ask", p)
    assert fmt.on_book("buy", "no", p) == ("ask", Decimal("0.60"))
    assert fmt.on_book("sell", "no", p) == ("bid", Decimal("0.60"))


@given(priced(), st.integers(1, 1000), st.integers(0, 1000), st.integers(0, 1000),
       st.sampled_from(["yes", "no"]))
def test_a_hit_is_covered_exactly_when_the_shares_are_free(tp, quantity, held, locked,
                                                           outcome):
    tick, price = tp
    locked = min(locked, held)
    pos = position(**{outcome: held, f"{outcome}_reserved": locked})
    plan = plan_hit(outcome, price, quantity, pos, Decimal(10**6), tick)
    assert (plan.asked.side, plan.asked.outcome, plan.asked.price,
            plan.asked.quantity) == ("sell", outcome, price, quantity)
    assert plan.covered == (held - locked >= quantity)
    if plan.covered:
        return
    assert f"you hold {held - locked:,} {outcome.upper()} free" in plan.reason
    equivalent = plan.choices[0]
    assert equivalent.equivalent and equivalent.key == "e"
    assert (equivalent.side, equivalent.quantity) == ("buy", quantity)
    assert (equivalent.outcome, equivalent.price) == fmt.mirror("sell", outcome, price)[1:]
    assert fmt.on_book("buy", equivalent.outcome, equivalent.price) == \
        fmt.on_book("sell", outcome, price)
    reduced = [c for c in plan.choices if not c.equivalent]
    if held - locked:
        assert [(c.side, c.outcome, c.price, c.quantity) for c in reduced] == [
            ("sell", outcome, price, held - locked)]
    else:
        assert reduced == []


@given(priced(), st.integers(1, 1000), st.integers(0, 1000), st.integers(0, 10**6),
       st.sampled_from(["yes", "no"]))
def test_a_lift_is_covered_exactly_when_the_cash_is_there(tp, quantity, other_held, cents,
                                                          outcome):
    tick, price = tp
    cash = Decimal(cents) / 100
    other = "no" if outcome == "yes" else "yes"
    plan = plan_lift(outcome, price, quantity, position(**{other: other_held}), cash, tick)
    assert plan.covered == (cash >= price * quantity)
    if plan.covered:
        return
    equivalent = [c for c in plan.choices if c.equivalent]
    if other_held:
        (e,) = equivalent
        assert (e.side, e.outcome, e.price, e.quantity) == (
            "sell", other, 1 - price, min(quantity, other_held))
        assert fmt.on_book(e.side, e.outcome, e.price) == fmt.on_book("buy", outcome, price)
    else:
        assert equivalent == [] and f"You hold no {other.upper()}" in plan.reason
    reduced = [c for c in plan.choices if not c.equivalent]
    affordable = int(cash // price)
    assert [c.quantity for c in reduced] == ([affordable] if affordable else [])
    for c in reduced:
        assert c.price * c.quantity <= cash < c.price * (c.quantity + 1)


def test_an_unknown_balance_leaves_the_lift_to_the_server():
    plan = plan_lift("yes", Decimal("0.45"), 70, None, None, Decimal("0.01"))
    assert plan.covered


def test_the_hit_choice_reads_as_the_trader_sees_it():
    plan = plan_hit("yes", Decimal("0.40"), 50, position(yes=20, yes_reserved=5),
                    Decimal("10"), Decimal("0.01"))
    assert plan.reason == ("Hitting the bid sells 50 YES @ 0.40, but you hold 15 YES free "
                           "to sell (5 more are locked by your open orders).")
    e, a = plan.choices
    assert e.label(Decimal("0.01")) == "Buy 50 NO @ 0.60"
    assert e.detail == ("the same ask at 0.40 on the YES book; costs 30.00 — more than the "
                        "10.00 you have available")
    assert a.label(Decimal("0.01")) == "Sell 15 YES @ 0.40"
    assert a.detail == "the 15 YES you hold free; proceeds 6.00"


@st.composite
def fills(draw):
    """An order (side, price, quantity, fee rate) and fills it could get: a
    partition of its quantity, each part at a price on the grid it accepts (a buy at
    its price or lower, a sell at its price or higher)."""
    tick, price = draw(priced())
    side = draw(st.sampled_from(["buy", "sell"]))
    quantity = draw(st.integers(1, 300))
    rate = draw(st.integers(0, 2500)) * Decimal("0.0001")
    steps = int(1 / tick)
    limit = int(price / tick)
    grid = st.integers(1, limit) if side == "buy" else st.integers(limit, steps - 1)
    parts, left = [], quantity
    while left:
        q = draw(st.integers(1, left))
        parts.append((q, draw(grid) * tick))
        left -= q
    return side, price, quantity, rate, parts


def _charged(rate: Decimal, parts: list[tuple[int, Decimal]]) -> Decimal:
    """What the engine charges a taker for these fills (``units.taker_fee`` per fill)."""
    r = units.to_units(rate, "fee_rate")
    total = sum(units.taker_fee(r, q, units.to_units(p, "price"), units.to_units(p, "price"))
                for q, p in parts)
    return Decimal(total) / units.SCALE


@given(fills())
def test_the_tickets_fee_bound_holds_for_any_fills_and_is_reached(order):
    """No way of filling an order charges more than the ticket says, a buy's bound is
    what the engine holds with its cash, and one share per fill at the price where
    p x (1 - p) peaks (a price the order accepts) charges exactly the bound."""
    side, price, quantity, rate, parts = order
    bound = fmt.fee_bound(side, price, quantity, rate)
    assert _charged(rate, parts) <= bound
    half = Decimal("0.5")
    worst = min(price, half) if side == "buy" else max(price, half)
    assert _charged(rate, [(1, worst)] * quantity) == bound
    if side == "buy":
        held = units.worst_taker_fee(units.to_units(rate, "fee_rate"), quantity,
                                     units.to_units(price, "price"))
        assert bound == Decimal(held) / units.SCALE
