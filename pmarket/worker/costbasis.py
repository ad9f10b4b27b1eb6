"""Cost basis and realised P&L of positions, maintained from fills and ledger events.

Each side (YES, NO) of a position keeps the quantity held, the total *cost* of those
shares (units; average cost = cost / quantity, kept as a total so no rounding
accumulates) and the *realised P&L* of the shares that left it. The rules:

* **Buy** ``q`` at price ``p`` (owner's terms: YES pays the YES price ``P``, NO pays
  ``1 - P``): quantity += q, cost += p * q.
* **Sell / dispose of** ``q`` of ``Q`` held with total cost ``C`` for ``proceeds``: the
  cost removed is ``C * q // Q`` (all of ``C`` when the side empties, so nothing is left
  behind); realised += proceeds - removed.
* **Fees**: a taker's fee is part of the cost of what it buys, and comes off the
  proceeds of what it sells (makers pay none).
* **Mint** (buy YES against buy NO): each side is a buy at its own price.
  **Merge trade** (sell NO against sell YES): each side is a sale at its own price.
* **Split** of ``q`` pairs costs ``q * $1``, divided between YES and NO by the market's
  last YES price ``L`` (YES gets ``L``, NO ``1 - L``; half each before the first trade),
  so a split followed by selling the unwanted side at the market realises ~nothing.
  **Merge** of pairs is a sale of both sides for ``$1`` divided the same way.
* **Event split / merge** (one YES of every outcome for ``$1``): the dollar is divided
  across the outcomes in proportion to their last YES prices (equally if any outcome
  never traded).
* **Convert** (NO of ``k`` outcomes -> YES of the others + ``$(k-1)``): an exchange of
  equivalent holdings, not a sale. The NO cost removed, ``C``, less the cash released,
  ``R``, becomes the cost of the new YES shares; if ``R > C`` (or no YES is received)
  the difference ``R - C`` is realised on the converted NO sides instead.
* **Payout** at resolution disposes of every share for what it pays (winner YES / loser
  NO $1; void ``1/N`` per YES and the rest of the position's payout per NO).

Integer splits are exact: ``allocate`` gives the remainder of a division to the first
shares, so the parts always sum to the whole and money is never created by rounding.
Quantities in ``position`` events are authoritative: they overwrite what the rules
above computed, and a side that reaches zero has zero cost.
"""

from __future__ import annotations

from collections.abc import Sequence

from pmarket.engine.units import SCALE

YES, NO = 0, 1


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` exactly (parts sum to ``total``).

    Non-positive or all-zero weights fall back to equal parts.
    """
    n = len(weights)
    if n == 0:
        return []
    if any(w <= 0 for w in weights):
        weights = [1] * n
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    for i in range(total - sum(parts)):
        parts[i % n] += 1
    return parts


class Holding:
    """Working state of one (user, market) position while a batch is projected."""

    __slots__ = ("cost", "key", "pnl", "qty", "reserved", "seq", "touched", "yes_before")

    def __init__(self, key: tuple[int, int], row: Sequence[int] | None = None):
        self.key = key
        if row is None:
            self.qty = [0, 0]
            self.reserved = [0, 0]
            self.cost = [0, 0]
            self.pnl = [0, 0]
            self.seq = 0
        else:
            yes, no, yes_res, no_res, yes_cost, no_cost, yes_pnl, no_pnl, seq = row
            self.qty = [yes, no]
            self.reserved = [yes_res, no_res]
            self.cost = [yes_cost, no_cost]
            self.pnl = [yes_pnl, no_pnl]
            self.seq = seq
        self.yes_before = self.qty[YES]
        self.touched = False

    def buy(self, side: int, quantity: int, cost: int) -> None:
        """Add ``quantity`` shares bought for ``cost`` units in total."""
        self.qty[side] += quantity
        self.cost[side] += cost
        self.touched = True

    def dispose(self, side: int, quantity: int, proceeds: int) -> None:
        """Remove ``quantity`` shares for ``proceeds``, realising P&L against average cost."""
        held = self.qty[side]
        cost = self.cost[side]
        removed = cost if quantity >= held else cost * quantity // held
        self.cost[side] = cost - removed
        self.qty[side] = max(held - quantity, 0)
        self.pnl[side] += proceeds - removed
        self.touched = True

    def removal_cost(self, side: int, quantity: int) -> int:
        """The cost ``dispose`` would remove for ``quantity`` shares (no change)."""
        held = self.qty[side]
        return self.cost[side] if quantity >= held else self.cost[side] * quantity // held

    def set_state(self, yes: int, no: int, yes_reserved: int, no_reserved: int,
                  seq: int) -> None:
        """Apply a ``position`` event: the engine's quantities are authoritative."""
        self.qty = [yes, no]
        self.reserved = [yes_reserved, no_reserved]
        for side in (YES, NO):
            if not self.qty[side]:
                self.cost[side] = 0
        self.seq = seq
        self.touched = True

    def row(self) -> dict:
        """The ``positions`` row of this holding."""
        user_id, market_id = self.key
        return {
            "user_id": user_id, "market_id": market_id,
            "yes": self.qty[YES], "no": self.qty[NO],
            "yes_reserved": self.reserved[YES], "no_reserved": self.reserved[NO],
            "yes_cost": self.cost[YES], "no_cost": self.cost[NO],
            "yes_realized_pnl": self.pnl[YES], "no_realized_pnl": self.pnl[NO],
            "seq": self.seq,
        }


def apply_fill(bid: Holding, ask: Holding, kind: str, price: int, quantity: int,
               fee: int = 0, taker_bid: bool = True) -> None:
    """Book one trade on the YES-bid owner's and the YES-ask owner's holdings.

    ``price`` is in YES terms: YES changes hands at ``price``, NO at ``SCALE - price``.
    The taker's ``fee`` (``taker_bid``: the taker is the YES bid) is part of what its
    shares cost when it buys, and comes off its proceeds when it sells.
    """
    if kind not in _BUYS:
        raise ValueError(f"unknown fill kind {kind!r}")
    bid_buys, ask_buys = _BUYS[kind]
    yes_value = price * quantity
    no_value = (SCALE - price) * quantity
    bid_fee = fee if taker_bid else 0
    ask_fee = fee - bid_fee
    if bid_buys:
        bid.buy(YES, quantity, yes_value + bid_fee)
    else:
        bid.dispose(NO, quantity, no_value - bid_fee)
    if ask_buys:
        ask.buy(NO, quantity, no_value + ask_fee)
    else:
        ask.dispose(YES, quantity, yes_value - ask_fee)


_BUYS = {  # kind -> (the YES bid buys YES, the YES ask buys NO); otherwise they sell
    "transfer_yes": (True, False),
    "mint": (True, True),
    "merge": (False, False),
    "transfer_no": (False, True),
}


def pair_weights(last_price: int | None) -> tuple[int, int]:
    """How a market's $1 pair divides between YES and NO (by the last YES price)."""
    if last_price is None or not 0 < last_price < SCALE:
        return (1, 1)
    return (last_price, SCALE - last_price)


def split(holding: Holding, quantity: int, last_price: int | None) -> None:
    """A market split: ``quantity`` pairs bought for ``quantity * SCALE``."""
    yes_cost, no_cost = allocate(quantity * SCALE, pair_weights(last_price))
    holding.buy(YES, quantity, yes_cost)
    holding.buy(NO, quantity, no_cost)


def merge(holding: Holding, quantity: int, last_price: int | None) -> None:
    """A market merge: ``quantity`` pairs sold back for ``quantity * SCALE``."""
    yes_value, no_value = allocate(quantity * SCALE, pair_weights(last_price))
    holding.dispose(YES, quantity, yes_value)
    holding.dispose(NO, quantity, no_value)


def split_event(holdings: Sequence[Holding], quantity: int,
                last_prices: Sequence[int | None]) -> None:
    """An event split: one YES of every outcome per ``SCALE`` units."""
    weights = [p or 0 for p in last_prices]
    for holding, cost in zip(holdings, allocate(quantity * SCALE, weights), strict=True):
        holding.buy(YES, quantity, cost)


def merge_event(holdings: Sequence[Holding], quantity: int,
                last_prices: Sequence[int | None]) -> None:
    """An event merge: one YES of every outcome sold back per ``SCALE`` units."""
    weights = [p or 0 for p in last_prices]
    for holding, value in zip(holdings, allocate(quantity * SCALE, weights), strict=True):
        holding.dispose(YES, quantity, value)


def convert(chosen: Sequence[Holding], others: Sequence[Holding], quantity: int,
            released: int) -> None:
    """NO of each ``chosen`` outcome -> YES of each of ``others`` plus ``released`` cash."""
    removed = [h.removal_cost(NO, quantity) for h in chosen]
    basis = sum(removed)
    if others and basis >= released:
        # The cost carries over to the new YES shares: the NOs fetch exactly their cost.
        carried, proceeds = basis - released, removed
    else:
        # Nothing (more) to carry: the cash released is what the NOs fetched.
        weights = removed if basis > 0 else [1] * len(chosen)
        carried, proceeds = 0, allocate(released, weights)
    for holding, value in zip(chosen, proceeds, strict=True):
        holding.dispose(NO, quantity, value)
    for holding, cost in zip(others, allocate(carried, [1] * len(others)), strict=True):
        holding.buy(YES, quantity, cost)


def payout(holding: Holding, amount: int, won: bool, void: bool, outcomes: int) -> None:
    """Resolution pays ``amount`` for the whole position and burns every share."""
    yes = holding.qty[YES]
    if void:
        yes_value = yes * SCALE // outcomes
    else:
        yes_value = yes * SCALE if won else 0
    holding.dispose(YES, yes, yes_value)
    holding.dispose(NO, holding.qty[NO], amount - yes_value)
