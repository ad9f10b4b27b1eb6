"""Snapshots of the main screens at 80x24, on the deterministic fake server.

What made them flaky under CPU load, and what keeps them still:

* the text cursor blinks on a 0.5 s timer, so a screenshot drew it or not depending on
  when the timer last fired: the app runs with ``cursor_blink=False`` (which every
  ``TextField`` honours; the former per-test hook listened for an event Textual never
  sends, so it turned nothing off);
* a click leaves the mouse over a widget, whose hover style then depends on when the
  next screen is laid out: the flows use the keyboard only;
* a fixed pause raced the screens' own fetches (the health check, the market's tape,
  chart, account and summary): each flow waits for the state it shows instead, then
  for pending messages and animations — never for a length of time.

Toasts, which expire on timers, are not drawn (``QuietApp.notify``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from textual.widgets import DataTable, Input

from pmarket.tui import TradingApp
from pmarket.tui.screens.dialogs import ChoiceDialog
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.portfolio import PortfolioScreen
from pmarket.tui.screens.ticket import OrderTicket
from tests.tui.fake_exchange import FakeExchange
from tests.tui.test_screens import wait_for

pytest.importorskip("pytest_textual_snapshot")

SIZE = (80, 24)


class QuietApp(TradingApp):
    """The terminal without toasts (they expire on timers) and with a steady cursor."""

    def __init__(self, fake: FakeExchange) -> None:
        super().__init__("http://fake", api=fake.client(), cursor_blink=False)
        self.fake = fake

    def notify(self, *args, **kwargs) -> None:  # type: ignore[override]
        return None


def app() -> QuietApp:
    return QuietApp(FakeExchange())


async def settle(pilot, ready) -> None:
    """Wait until ``ready()`` holds, then until every message and animation it set off
    has been handled."""
    await wait_for(pilot, ready)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()


async def enter(pilot) -> None:
    """Sign Ann up with the keyboard and wait for the events table."""
    a = pilot.app
    await wait_for(pilot, lambda: isinstance(a.screen, LoginScreen) and a.screen.checked)
    for field, value in (("#email", "ann@x.io"), ("#password", "a-long-password"),
                         ("#name", "Ann")):
        a.screen.query_one(field, Input).value = value
    await pilot.press("ctrl+u")
    await wait_for(pilot, lambda: isinstance(a.screen, EventsScreen)
                   and a.screen.query_one(DataTable).row_count == 4)


def market_ready(a) -> bool:
    s = a.screen
    return (isinstance(s, MarketScreen) and s.loaded and not s._refreshing_market
            and not s._dirty)


async def open_market(pilot) -> None:
    await enter(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: market_ready(pilot.app))


def test_login_screen(snap_compare):
    async def ready(pilot):
        a = pilot.app
        await settle(pilot, lambda: isinstance(a.screen, LoginScreen) and a.screen.checked
                     and a.focused is a.screen.query_one("#email"))

    assert snap_compare(app(), terminal_size=SIZE, run_before=ready)


def test_events_screen(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await settle(pilot, lambda: "4 markets" in str(
            pilot.app.screen.query_one("#count").render()))

    assert snap_compare(app(), terminal_size=SIZE, run_before=ready)


def test_market_screen(snap_compare):
    """The ladder with the best bid picked into the order form (↓), two lots."""
    async def ready(pilot):
        await open_market(pilot)
        await pilot.press("down", "plus")
        await settle(pilot, lambda: market_ready(pilot.app)
                     and pilot.app.screen.form_quantity == 20)

    assert snap_compare(app(), terminal_size=SIZE, run_before=ready)


def test_order_ticket(snap_compare):
    async def ready(pilot):
        await open_market(pilot)
        await pilot.press("b")
        await settle(pilot, lambda: isinstance(pilot.app.screen, OrderTicket)
                     and pilot.app.focused is pilot.app.screen.query_one("#quantity"))

    assert snap_compare(app(), terminal_size=SIZE, run_before=ready)


def test_hit_without_shares_offers_the_equivalent(snap_compare):
    async def ready(pilot):
        await open_market(pilot)
        pilot.app.fake.cash["ann@x.io"] = Decimal(100)
        await pilot.press("h")
        await settle(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog)
                     and pilot.app.focused is pilot.app.screen.query_one("#choice-0"))

    assert snap_compare(app(), terminal_size=SIZE, run_before=ready)


def test_portfolio_after_resolutions(snap_compare):
    """Rain resolved YES, the final to the Lions: settled positions and their payouts."""
    a = app()
    a.fake.hold("ann@x.io", 1, yes=10)
    a.fake.hold("ann@x.io", 3, yes=2, no=4)
    a.fake.resolve(1, 1)
    a.fake.resolve(2, 2)

    async def ready(pilot):
        await enter(pilot)
        await pilot.press("f4")
        await settle(pilot, lambda: isinstance(pilot.app.screen, PortfolioScreen)
                     and pilot.app.screen.query_one("#payouts-table", DataTable).row_count
                     == 2)

    assert snap_compare(a, terminal_size=SIZE, run_before=ready)
