"""What hitting the bid or lifting the offer asks of an account, and what can stand in.

On the canonical book (one YES book per market) sell YES at p and buy NO at 1 - p are the
same ask, and buy YES at p and sell NO at 1 - p the same bid. So a trader without the
YES to sell can still hit a bid by buying NO, and one without the cash to buy YES can
lift an offer by selling the NO they hold (and likewise in the NO view, mirrored).

Invariant: ``plan_hit`` and ``plan_lift`` never change what the trader asked for without
saying so. When the account covers the order the plan is ``covered`` and the ticket
opens with exactly the level's side, price and size; otherwise the plan says why not and
lists the alternatives, each with its exact side, outcome, price and quantity, for the
trader to choose from (or none, with the reason, when nothing can stand in).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pmarket.client import Position
from pmarket.tui import format as fmt


@dataclass(frozen=True, slots=True)
class Proposal:
    """One order the trader may choose.

    Attributes:
        side: "buy" or "sell".
        outcome: "yes" or "no".
        price: Limit price in the outcome's own terms.
        quantity: Shares.
        key: The key that chooses it in the dialog.
        detail: What it costs or pays and why it is offered.
        equivalent: Whether it is the canonical equivalent of the order asked for.
    """

    side: str
    outcome: str
    price: Decimal
    quantity: int
    key: str
    detail: str
    equivalent: bool = False

    def label(self, tick: Decimal) -> str:
        """"Buy 50 NO @ 0.60"."""
        return (f"{self.side.capitalize()} {self.quantity:,} {self.outcome.upper()} @ "
                f"{fmt.price(self.price, tick)}")


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer to a hit or a lift.

    Attributes:
        asked: The order the key asked for (the whole best level, in the view's terms).
        covered: The account holds what ``asked`` needs (or it is not known): the ticket
            opens with ``asked`` as it is.
        reason: Why it is not covered (empty when it is).
        choices: What can stand in, the canonical equivalent first.
    """

    asked: Proposal
    covered: bool
    reason: str = ""
    choices: tuple[Proposal, ...] = ()


def free_shares(position: Position | None, outcome: str) -> tuple[int, int]:
    """``(free, locked)`` shares of ``outcome``: free ones can be sold now."""
    if position is None:
        return 0, 0
    held, locked = ((position.yes_quantity, position.yes_reserved) if outcome == "yes"
                    else (position.no_quantity, position.no_reserved))
    return max(0, held - locked), locked


def _book_words(side: str, outcome: str, price: Decimal, tick: Decimal) -> str:
    where, yes_price = fmt.on_book(side, outcome, price)
    return f"the same {where} at {fmt.price(yes_price, tick)} on the YES book"


def plan_hit(outcome: str, price: Decimal, quantity: int, position: Position | None,
             cash: Decimal | None, tick: Decimal) -> Plan:
    """Selling ``quantity`` ``outcome`` into the best bid at ``price``.

    Not covered when fewer than ``quantity`` shares are free; then the choices are the
    equivalent buy of the other outcome at ``1 - price`` for the same quantity, and
    selling the free shares there are (if any).
    """
    asked = Proposal("sell", outcome, price, quantity, "a", "")
    free, locked = free_shares(position, outcome)
    if free >= quantity:
        return Plan(asked, True)
    name = outcome.upper()
    reason = (f"Hitting the bid sells {quantity:,} {name} @ {fmt.price(price, tick)}, "
              f"but you hold {free:,} {name} free to sell"
              + (f" ({locked:,} more are locked by your open orders)." if locked else "."))
    side, other, other_price = fmt.mirror("sell", outcome, price)
    assert other_price is not None
    cost = other_price * quantity
    short = (f" — more than the {fmt.money(cash)} you have available"
             if cash is not None and cash < cost else "")
    choices = [Proposal(side, other, other_price, quantity, "e",
                        f"{_book_words('sell', outcome, price, tick)}; costs "
                        f"{fmt.money(cost)}{short}", equivalent=True)]
    if free > 0:
        choices.append(Proposal("sell", outcome, price, free, "a",
                                f"the {free:,} {name} you hold free; proceeds "
                                f"{fmt.money(price * free)}"))
    return Plan(asked, False, reason, tuple(choices))


def plan_lift(outcome: str, price: Decimal, quantity: int, position: Position | None,
              cash: Decimal | None, tick: Decimal) -> Plan:
    """Buying ``quantity`` ``outcome`` from the best offer at ``price``.

    Not covered when the available cash is less than the cost; then the choices are the
    equivalent sale of the other outcome at ``1 - price`` (as many of the quantity as
    are held free), and buying what the cash pays for (if at least one share).
    """
    asked = Proposal("buy", outcome, price, quantity, "a", "")
    cost = price * quantity
    if cash is None or cash >= cost:
        return Plan(asked, True)
    name = outcome.upper()
    side, other, other_price = fmt.mirror("buy", outcome, price)
    assert other_price is not None
    free, _ = free_shares(position, other)
    reason = (f"Lifting the offer buys {quantity:,} {name} @ {fmt.price(price, tick)} for "
              f"{fmt.money(cost)}, but you have {fmt.money(cash)} available.")
    choices = []
    if free > 0:
        n = min(quantity, free)
        part = (f" (you hold {free:,} {other.upper()} free: the equivalent of {n:,} of the "
                f"{quantity:,})" if n < quantity else "")
        choices.append(Proposal(side, other, other_price, n, "e",
                                f"{_book_words('buy', outcome, price, tick)}; proceeds "
                                f"{fmt.money(other_price * n)}{part}", equivalent=True))
    else:
        reason += f" You hold no {other.upper()} to sell instead."
    affordable = int(cash // price) if cash > 0 else 0
    if affordable >= 1:
        choices.append(Proposal("buy", outcome, price, min(affordable, quantity), "a",
                                f"what your {fmt.money(cash)} pays for; costs "
                                f"{fmt.money(price * min(affordable, quantity))}"))
    return Plan(asked, False, reason, tuple(choices))
