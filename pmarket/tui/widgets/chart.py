"""A candlestick price chart drawn with box characters, scaled to the widget.

Invariant: the chart draws the candles it holds, newest at the right edge, on a price
axis spanning their lows and highs; a live trade extends the current candle (or opens
the next one) exactly as the server's candle of that interval would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from rich.text import Text
from textual.widgets import Static

from pmarket.client import Candle, PublicTrade
from pmarket.tui import format as fmt

INTERVALS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
AXIS = 7


def bucket_start(at: datetime, interval: str) -> datetime:
    """The start of the ``interval`` candle that ``at`` falls in."""
    seconds = INTERVALS[interval]
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def with_trade(candles: list[Candle], trade: PublicTrade, interval: str) -> list[Candle]:
    """``candles`` with ``trade`` folded into its interval's candle."""
    at = trade.executed_at or datetime.now(UTC)
    start = bucket_start(at, interval)
    p, q = trade.price, trade.quantity
    if candles and candles[-1].start is not None and candles[-1].start >= start:
        last = candles[-1]
        return [*candles[:-1], last.model_copy(update={
            "high": max(last.high, p), "low": min(last.low, p), "close": p,
            "volume": last.volume + q})]
    return [*candles, Candle(start=start, open=p, high=p, low=p, close=p, volume=q)]


class CandleChart(Static):
    """OHLC candles of one market, in the chosen view's terms."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", *args, **kwargs)
        self.candles: list[Candle] = []
        self.interval = "1m"
        self.view = "yes"
        self.tick = Decimal("0.01")

    def show(self, candles: list[Candle], interval: str, tick: Decimal) -> None:
        """Replace the candles (oldest first)."""
        self.candles, self.interval, self.tick = list(candles), interval, tick
        self.update(self.render_chart())

    def add_trade(self, trade: PublicTrade) -> None:
        """Fold a live trade into the chart."""
        self.candles = with_trade(self.candles, trade, self.interval)[-500:]
        self.update(self.render_chart())

    def set_view(self, view: str) -> None:
        """Draw in the "yes" or "no" view's terms."""
        self.view = view
        self.update(self.render_chart())

    def on_resize(self) -> None:
        self.update(self.render_chart())

    def _viewed(self) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
        out = []
        for c in self.candles:
            if self.view == "no":
                out.append((fmt.ONE - c.open, fmt.ONE - c.low, fmt.ONE - c.high,
                            fmt.ONE - c.close))
            else:
                out.append((c.open, c.high, c.low, c.close))
        return out

    def render_chart(self) -> Text:
        """The chart as rich text."""
        title = f"{self.view.upper()} price · {self.interval} candles"
        height = max(self.size.height - 1, 3)
        columns = max((self.size.width - AXIS - 1) // 2, 1)
        bars = self._viewed()[-columns:]
        text = Text(no_wrap=True, overflow="crop")
        text.append(title + "\n", style="bold dim")
        if not bars:
            text.append("no trades yet", style="dim")
            return text
        top = max(b[1] for b in bars)
        bottom = min(b[2] for b in bars)
        span = top - bottom or self.tick
        top, bottom = top + span / 20, bottom - span / 20
        span = top - bottom

        def row_of(price: Decimal) -> int:
            row = ((top - price) / span * (height - 1)).to_integral_value()
            return min(height - 1, max(0, int(row)))

        grid = [[(" ", "")] * len(bars) for _ in range(height)]
        for x, (o, h, lo, c) in enumerate(bars):
            colour = "green" if c >= o else "red"
            for y in range(row_of(h), row_of(lo) + 1):
                grid[y][x] = ("│", colour)
            body_top, body_bottom = row_of(max(o, c)), row_of(min(o, c))
            for y in range(body_top, body_bottom + 1):
                grid[y][x] = ("█" if body_top != body_bottom else "━", colour)
        for y in range(height):
            label = ""
            if y in (0, height - 1) or y == height // 2:
                label = fmt.price(top - span * y / (height - 1), self.tick)
            text.append(f"{label:>{AXIS}}┤", style="dim")
            for ch, colour in grid[y]:
                text.append(ch + " ", style=colour)
            if y < height - 1:
                text.append("\n")
        return text
