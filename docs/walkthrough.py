"""Regenerate the screenshots of docs/WALKTHROUGH.md: a first session in the terminal.

Starts a whole exchange in this process (``EmbeddedServer``: server, engine and worker on
a throwaway SQLite file), lets an admin create one event and a market maker quote it
through the client library, then drives the trading terminal with Textual's pilot, as
a newcomer would with the keyboard: start, sign up, deposit, trade, resolve (as the
admin), and see the payout. Each step saves an SVG screenshot into ``docs/walkthrough/``.

    .venv/bin/python docs/walkthrough.py            # writes docs/walkthrough/*.svg

Times and ids in the pictures are those of the run; everything else is the same each
time. A step that does not reach the state it shows fails loudly (exit status 1).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from pmarket.client import Client
from pmarket.tui import TradingApp
from pmarket.tui.embedded import EmbeddedServer
from pmarket.tui.screens.admin import AdminScreen, ResolveDialog
from pmarket.tui.screens.dialogs import ConfirmDialog, NumberDialog
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.portfolio import PortfolioScreen
from pmarket.tui.screens.ticket import OrderTicket

OUT = Path(__file__).resolve().parent / "walkthrough"
SIZE = (100, 30)
ADMIN = ("admin@example.com", "operator walkthrough key")
ANN = ("ann@example.com", "Ann", "rain or shine in Paris")
QUESTION = "Will it rain in Paris tomorrow?"


class QuietApp(TradingApp):
    """The terminal with a steady cursor and without toasts (which come and go)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, cursor_blink=False)

    def notify(self, *args, **kwargs) -> None:  # type: ignore[override]
        return None


async def until(pilot: Pilot, what: str, condition: Callable[[], bool]) -> None:
    """Wait (up to 20 s) for ``condition``, then for the messages it set off."""
    for _ in range(400):
        if condition():
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            return
        await pilot.pause(0.05)
    raise SystemExit(f"walkthrough: never reached {what}")


def shoot(app: TradingApp, name: str) -> None:
    app.save_screenshot(f"{name}.svg", str(OUT))
    print(f"  {OUT.name}/{name}.svg")


def setup(url: str) -> int:
    """The admin's event and a market maker's quotes; the event's market id."""
    admin = Client(url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event(QUESTION, [], category="weather")
    market = event.outcomes[0].market_id
    maker = Client(url)
    maker.signup("maker@example.com", "Maker", "quotes both sides all day")
    maker.onramp("1000")
    maker.split_market(market, 100)          # YES and NO to sell
    maker.place_order(market, "yes", "buy", 50, "0.40")
    maker.place_order(market, "yes", "sell", 40, "0.45")
    maker.place_order(market, "yes", "sell", 60, "0.48")
    return market


async def sign_in(pilot: Pilot, email: str, password: str, key: str) -> None:
    """Fill the sign-in form and press ``key`` in the password field."""
    app = pilot.app
    await until(pilot, "the sign-in form", lambda: isinstance(app.screen, LoginScreen)
                and app.screen.checked)
    app.screen.query_one("#email", Input).value = email
    app.screen.query_one("#password", Input).value = password
    app.screen.query_one("#password", Input).focus()
    await pilot.press(key)


async def session(url: str, market: int) -> None:
    app = QuietApp(url)
    async with app.run_test(size=SIZE) as pilot:
        # 1. start: the sign-in form
        await until(pilot, "the sign-in form", lambda: isinstance(app.screen, LoginScreen)
                    and app.screen.checked)
        email, name, password = ANN
        for field, value in (("#email", email), ("#password", password), ("#name", name)):
            app.screen.query_one(field, Input).value = value
        app.screen.query_one("#email", Input).focus()
        await pilot.pause()
        shoot(app, "1-start")

        # 2. sign up: the events
        await pilot.press("ctrl+u")
        await until(pilot, "the events", lambda: isinstance(app.screen, EventsScreen)
                    and app.screen.query_one(DataTable).row_count == 1)
        shoot(app, "2-signed-up")

        # 3. deposit $100 from the portfolio
        await pilot.press("f4")
        await until(pilot, "the portfolio", lambda: isinstance(app.screen, PortfolioScreen))
        await pilot.press("d")
        await until(pilot, "the deposit dialog", lambda: isinstance(app.screen, NumberDialog))
        app.screen.query_one("#value", Input).value = "100"
        await pilot.pause()
        shoot(app, "3-deposit")
        await pilot.press("enter")
        await until(pilot, "the deposit", lambda: isinstance(app.screen, PortfolioScreen)
                    and "Cash 100.00" in str(app.screen.query_one("#balance").render()))

        # 4. trade: open the market, lift the offer (buy YES at the best ask)
        await pilot.press("f2")
        await until(pilot, "the events", lambda: isinstance(app.screen, EventsScreen))
        await pilot.press("enter")
        await until(pilot, "the market", lambda: isinstance(app.screen, MarketScreen)
                    and app.screen.loaded)
        screen = app.screen
        await pilot.press("l")
        await until(pilot, "the order ticket", lambda: isinstance(app.screen, OrderTicket))
        shoot(app, "4-ticket")
        await pilot.press("ctrl+s")
        await until(pilot, "the fill", lambda: app.screen is screen
                    and screen.position is not None and screen.position.yes_quantity == 40)
        shoot(app, "5-traded")

        # 5. resolve: the admin says it rained
        await pilot.press("f10")
        await sign_in(pilot, ADMIN[0], ADMIN[1], "ctrl+a")
        await until(pilot, "the admin screen", lambda: isinstance(app.screen, AdminScreen)
                    and app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("v")
        await until(pilot, "the resolve dialog", lambda: isinstance(app.screen, ResolveDialog))
        shoot(app, "6-resolve")
        await pilot.press("enter")          # "Yes wins"
        await until(pilot, "the confirmation", lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await until(pilot, "the resolution", lambda: isinstance(app.screen, AdminScreen)
                    and "resolved" in str(app.screen.query_one(DataTable).get_row_at(0)[4]))

        # 6. see the payout: Ann signs in again
        await pilot.press("f10")
        await sign_in(pilot, email, password, "enter")
        await until(pilot, "the resolved event", lambda: isinstance(app.screen, EventsScreen)
                    and app.screen.query_one(DataTable).row_count == 1
                    and str(app.screen.query_one(DataTable).get_row_at(0)[6]) == "YES won")
        shoot(app, "7-who-won")
        await pilot.press("f4")
        await until(pilot, "the payout", lambda: isinstance(app.screen, PortfolioScreen)
                    and app.screen.query_one("#payouts-table", DataTable).row_count == 1)
        shoot(app, "8-paid")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "walkthrough.db", admin_email=ADMIN[0],
                                admin_password=ADMIN[1], bcrypt_rounds=4).start()
        try:
            market = setup(server.url)
            print(f"exchange at {server.url}; screenshots:")
            asyncio.run(session(server.url, market))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
