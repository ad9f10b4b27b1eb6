"""The order-book ladder: asks above, bids below, depth bars, spread, own orders marked.

Invariant: the ladder only draws what it was last given (a ``Book`` already in the
chosen view's terms and the user's own resting quantity per level); it never fetches
or computes market state itself, so what it shows is exactly the local book.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.widgets import Static

from pmarket.client import Book, Order
from pmarket.tui import format as fmt

BAR = "█"
HALF = "▌"


def own_levels(orders: list[Order], view: str) -> dict[tuple[str, Decimal], int]:
    """The user's resting quantity per (side, price) of the book in ``view``'s terms.

    An order is normalised onto the YES book (buy NO at p is an ask at 1 - p) and then
    shown in the view (the NO view mirrors the YES book).
    """
    out: dict[tuple[str, Decimal], int] = {}
    for o in orders:
        if not o.is_open or o.price is None:
            continue
        yes_side = "bid" if (o.side == "buy") == (o.outcome == "yes") else "ask"
        yes_price = o.price if o.outcome == "yes" else fmt.ONE - o.price
        if view == "no":
            side = "ask" if yes_side == "bid" else "bid"
            price = fmt.ONE - yes_price
        else:
            side, price = yes_side, yes_price
        out[(side, price)] = out.get((side, price), 0) + o.remaining_quantity
    return out


class Ladder(Static):
    """A vertical price ladder of one market.

    Best ask sits just above the spread line and best bid just below; each level shows
    the user's own resting quantity (``●``), the price, the size and a depth bar scaled
    to the largest level shown.
    """

    DEFAULT_CSS = """
    Ladder { height: 1fr; }
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", *args, **kwargs)
        self.book: Book | None = None
        self.own: dict[tuple[str, Decimal], int] = {}
        self.tick = Decimal("0.01")

    def show(self, book: Book | None, own: dict[tuple[str, Decimal], int],
             tick: Decimal) -> None:
        """Draw ``book`` (in its view's terms) with the user's own levels."""
        self.book, self.own, self.tick = book, own, tick
        self.update(self.render_ladder())

    def on_resize(self) -> None:
        if self.book is not None:
            self.update(self.render_ladder())

    def render_ladder(self) -> Text:
        """The ladder as rich text sized to the widget."""
        book = self.book
        if book is None:
            return Text("waiting for the book…", style="dim")
        height = max(self.size.height, 7)
        width = max(self.size.width, 24)
        rows = max(1, (height - 2) // 2)
        asks = book.asks[:rows]
        bids = book.bids[:rows]
        biggest = max([lv.quantity for lv in asks + bids] or [1])
        bar_room = max(4, width - 27)  # 6 own + 8 price + 8 size + gaps
        text = Text(no_wrap=True, overflow="crop")
        text.append(f"{'own':>6} {'price':>7} {'size':>8}  depth\n", style="bold dim")
        for _ in range(rows - len(asks)):
            text.append("\n")
        for lv in reversed(asks):
            self._row(text, "ask", lv.price, lv.quantity, biggest, bar_room)
        text.append(self._spread_line(book, width) + "\n", style="bold")
        for lv in bids:
            self._row(text, "bid", lv.price, lv.quantity, biggest, bar_room)
        for _ in range(rows - len(bids)):
            text.append("\n")
        text.rstrip()
        return text

    def _row(self, text: Text, side: str, price: Decimal, quantity: int, biggest: int,
             bar_room: int) -> None:
        own = self.own.get((side, price), 0)
        colour = "red" if side == "ask" else "green"
        text.append(f"{'● ' + str(own) if own else '':>6} ", style="bold yellow")
        text.append(f"{fmt.price(price, self.tick):>7} ", style=f"bold {colour}")
        text.append(f"{quantity:>8,}  ")
        cells = quantity * bar_room / biggest
        full = int(cells)
        text.append(BAR * full + (HALF if cells - full >= 0.5 else ""), style=colour)
        text.append("\n")

    def _spread_line(self, book: Book, width: int) -> str:
        parts = [f"spread {fmt.price(book.spread, self.tick)}"]
        if book.mid is not None:
            parts.append(f"mid {fmt.price(book.mid, self.tick / 2)}")
        parts.append(f"last {fmt.price(book.last_price, self.tick)}")
        line = " · ".join(parts)
        if len(line) > width - 4:
            line = " · ".join(p for p in parts if not p.startswith("mid"))
        return f"{'─' * 2} {line} ".ljust(width, "─")[:width]
