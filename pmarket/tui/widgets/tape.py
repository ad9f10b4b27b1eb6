"""The trade tape: the market's latest public trades, newest first.

Invariant: a trade is shown once, whatever the number of times it arrives (the initial
REST page and the live channel overlap); the tape keeps a bounded number of trades.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.widgets import Static

from pmarket.client import PublicTrade
from pmarket.tui import format as fmt

KEEP = 200


class TradeTape(Static):
    """Public trades of one market, prices in the chosen view's terms."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", *args, **kwargs)
        self.trades: list[PublicTrade] = []
        self._seen: set[int] = set()
        self.view = "yes"
        self.tick = Decimal("0.01")

    def reset(self, trades: list[PublicTrade], tick: Decimal) -> None:
        """Replace the tape with ``trades`` (any order)."""
        self.tick = tick
        self.trades = []
        self._seen = set()
        self.add(trades)

    def add(self, trades: list[PublicTrade]) -> None:
        """Add trades not yet shown, then redraw."""
        new = [t for t in trades if t.id not in self._seen]
        self._seen.update(t.id for t in new)
        self.trades = sorted(self.trades + new, key=lambda t: t.id, reverse=True)[:KEEP]
        self._seen = {t.id for t in self.trades}
        self.update(self.render_tape())

    def set_view(self, view: str) -> None:
        """Show prices in the "yes" or "no" view's terms."""
        self.view = view
        self.update(self.render_tape())

    def render_tape(self) -> Text:
        """The tape as rich text."""
        text = Text(no_wrap=True, overflow="crop")
        text.append(f"{'time':<9}{'price':>7}{'qty':>8}  taker\n", style="bold dim")
        if not self.trades:
            text.append("no trades yet", style="dim")
            return text
        rows = max(self.size.height - 1, 5)
        for t in self.trades[:rows]:
            # The tape is in YES terms; in the NO view a YES buyer is a NO seller.
            price = fmt.to_view(t.price, self.view)
            side = t.taker_side
            if self.view == "no":
                side = {"buy": "sell", "sell": "buy"}.get(side, side)
            colour = "green" if side == "buy" else "red"
            text.append(f"{fmt.when(t.executed_at):<9}")
            text.append(f"{fmt.price(price, self.tick):>7}", style=f"bold {colour}")
            text.append(f"{t.quantity:>8,}  {side}\n", style=colour)
        text.rstrip()
        return text
