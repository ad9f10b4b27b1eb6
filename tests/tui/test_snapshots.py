"""Snapshots of the main screens at 80x24, on the deterministic fake server."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from pmarket.tui import TradingApp
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from tests.tui.fake_exchange import FakeExchange
from tests.tui.test_screens import wait_for

pytest.importorskip("pytest_textual_snapshot")


class QuietApp(TradingApp):
    """The terminal without toasts, so snapshots do not depend on their timing."""

    def notify(self, *args, **kwargs) -> None:  # type: ignore[override]
        return None


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


def test_login_screen(snap_compare):
    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LoginScreen))
        await pilot.pause(0.3)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_events_screen(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await pilot.pause(0.2)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_market_screen(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MarketScreen)
                       and pilot.app.screen.book.ready and pilot.app.screen.market)
        await pilot.pause(0.5)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)


def test_order_ticket(snap_compare):
    async def ready(pilot):
        await enter(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MarketScreen)
                       and pilot.app.screen.book.ready and pilot.app.screen.market)
        await pilot.press("l")
        await pilot.pause(0.3)

    assert snap_compare(app(), terminal_size=(80, 24), run_before=ready)
