"""The order-book ladder: asks above, bids below, depth bars, spread, own orders marked.

Invariant: the ladder only draws what it was last given (a ``Book`` already in the
chosen view's terms, the user's own resting quantity per level and the order form's
price); it never fetches or computes market state itself, so what it shows is exactly
the local book. The form's price is highlighted — on its level, or on an empty row of
its own where the book has no level at that price — and a click on a level row posts
``Ladder.Picked`` with that row's price (the screen decides what picking means).
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual import events
from textual.message import Message
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

    class Picked(Message):
        """A level row was clicked."""

        def __init__(self, price: Decimal) -> None:
            super().__init__()
            self.price = price

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", *args, **kwargs)
        self.book: Book | None = None
        self.own: dict[tuple[str, Decimal], int] = {}
        self.tick = Decimal("0.01")
        self.picked: Decimal | None = None
        self.rows: dict[int, Decimal] = {}
        """Line of the widget → price of the level drawn on it (as last drawn)."""

    def show(self, book: Book | None, own: dict[tuple[str, Decimal], int],
             tick: Decimal, picked: Decimal | None = None) -> None:
        """Draw ``book`` (in its view's terms) with the user's own levels and the order
        form's price ``picked`` highlighted."""
        self.book, self.own, self.tick, self.picked = book, own, tick, picked
        self.update(self.render_ladder())

    def pick(self, price: Decimal | None) -> None:
        """Highlight ``price`` (the order form's) and redraw."""
        self.picked = price
        self.update(self.render_ladder())

    @property
    def prices(self) -> list[Decimal]:
        """The prices of the rows drawn, lowest first."""
        return sorted(set(self.rows.values()))

    def on_resize(self) -> None:
        if self.book is not None:
            self.update(self.render_ladder())

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        price = self.rows.get(offset.y) if offset is not None else None
        if price is not None:
            self.post_message(self.Picked(price))

    def render_ladder(self) -> Text:
        """The ladder as rich text sized to the widget."""
        book = self.book
        self.rows = {}
        if book is None:
            return Text("waiting for the book…", style="dim")
        height = max(self.size.height, 7)
        width = max(self.size.width, 24)
        rows = max(1, (height - 2) // 2)
        asks, bids = self._levels(book, rows)
        biggest = max([q for _, q in asks + bids] or [1])
        bar_room = max(4, width - 27)  # 6 own + 8 price + 8 size + gaps
        text = Text(no_wrap=True, overflow="crop")
        text.append(f"{'own':>6} {'price':>7} {'size':>8}  depth\n", style="bold dim")
        line = 1 + rows - len(asks)
        for _ in range(rows - len(asks)):
            text.append("\n")
        for price, quantity in reversed(asks):
            self.rows[line] = price
            line += 1
            self._row(text, "ask", price, quantity, biggest, bar_room)
        text.append(self._spread_line(book, width) + "\n", style="bold")
        line += 1
        for price, quantity in bids:
            self.rows[line] = price
            line += 1
            self._row(text, "bid", price, quantity, biggest, bar_room)
        for _ in range(rows - len(bids)):
            text.append("\n")
        text.rstrip()
        return text

    def _levels(self, book: Book, rows: int
                ) -> tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]]]:
        """The (price, size) rows of each side, best first, with the picked price added
        as an empty row where the book has no level at it (on the ask side when it is
        above the best bid)."""
        asks = [(lv.price, lv.quantity) for lv in book.asks]
        bids = [(lv.price, lv.quantity) for lv in book.bids]
        p = self.picked
        if p is not None and p not in {price for price, _ in asks + bids}:
            if not bids or p > bids[0][0]:
                asks = sorted([*asks, (p, 0)])
            else:
                bids = sorted([*bids, (p, 0)], reverse=True)
        return asks[:rows], bids[:rows]

    def _row(self, text: Text, side: str, price: Decimal, quantity: int, biggest: int,
             bar_room: int) -> None:
        own = self.own.get((side, price), 0)
        colour = "red" if side == "ask" else "green"
        picked = price == self.picked
        text.append(f"{'● ' + str(own) if own else '':>6} ", style="bold yellow")
        cells = f"{fmt.price(price, self.tick):>7} {f'{quantity:,}' if quantity else '':>8}"
        text.append(cells, style=f"bold {colour} reverse" if picked else f"bold {colour}")
        text.append("◂ " if picked else "  ", style="bold")
        cells_wide = quantity * bar_room / biggest
        full = int(cells_wide)
        text.append(BAR * full + (HALF if cells_wide - full >= 0.5 else ""), style=colour)
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
