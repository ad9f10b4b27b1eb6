"""Snapshots of the main screens at 80x24, on the deterministic fake server."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from pmarket.tui import TradingApp
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.ticket import OrderTicket
from tests.tui.fake_exchange import FakeExchange
from tests.tui.test_screens import wait_for

pytest.importorskip("pytest_textual_snapshot")


class QuietApp(TradingApp):
    """The terminal without toasts or blinking cursors, so snapshots do not depend on
    timing."""

    def notify(self, *args, **kwargs) -> None:  # type: ignore[override]
        return None

    def on_descendant_mount(self, event) -> None:
        if isinstance(event.widget, Input):
            event.widget.cursor_blink = False


def app() -> QuietApp:
    return QuietApp("http://fake", api=FakeExchange().client())


async def enter(pilot) -> None:
    a = pilot.app
    await wait_for(pilot, lambda: isinstance(a.screen, LoginScreen))
    a.screen.query_one("#email", Input).value = "ann@x.io"
    a.screen.query_one("#password", Input).value = "a-long-password"
    a.screen.query_one("#name", Input).value = "Ann"
    await pilot.click("#signup")
    await wait_for(pilot, lambda: isinstance(a.screen, EventsScreen)
                   and a.screen.query_one(DataTable).row_count == 4)


async def settle(pilot) -> None:
    """Let animations and pending refreshes finish (the market screen's live feed is a
    worker that never completes, so workers are not waited for)."""
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


def test_login_screen(snap_compare):
    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LoginScreen)
                       and pilot.app.focused is not None)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_events_screen(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_market_screen(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MarketScreen)
                       and pilot.app.screen.book.ready and pilot.app.screen.market)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_order_ticket(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MarketScreen)
                       and pilot.app.screen.book.ready and pilot.app.screen.market)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OrderTicket)
                       and pilot.app.focused is not None)
        await settle(pilot)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)
