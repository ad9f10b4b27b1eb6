"""The terminal's display widgets: the order-book ladder, the candle chart, the tape."""

from pmarket.tui.widgets.chart import CandleChart
from pmarket.tui.widgets.ladder import Ladder
from pmarket.tui.widgets.tape import TradeTape

__all__ = ["CandleChart", "Ladder", "TradeTape"]
