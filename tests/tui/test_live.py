"""The terminal against a real embedded server: the trader's and the admin's day."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

from textual.widgets import DataTable, Input, SelectionList

from pmarket.client import Client
from pmarket.tui import TradingApp
from pmarket.tui.screens.admin import AdminScreen
from pmarket.tui.screens.dialogs import ChoiceDialog, ConvertDialog
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.orders import OrdersScreen
from pmarket.tui.screens.ticket import OrderTicket
from pmarket.tui.widgets.ladder import Ladder
from pmarket.tui.widgets.tape import TradeTape
from tests.tui.conftest import ADMIN
from tests.tui.test_screens import wait_for


async def sign_in(pilot, email: str, password: str, button: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
    app.screen.query_one("#email", Input).value = email
    app.screen.query_one("#password", Input).value = password
    await pilot.click(f"#{button}")


async def test_trader_places_sees_cancels_and_watches_a_trade_arrive(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Live TUI market?", [], category="tests")
    mid = event.outcomes[0].market_id
    ann = Client(server.url)
    ann.signup("tui-ann@example.com", "Ann", "a-long-password")
    ann.onramp("100")
    bob = Client(server.url)
    bob.signup("tui-bob@example.com", "Bob", "a-long-password")
    bob.onramp("100")

    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        await sign_in(pilot, "tui-ann@example.com", "a-long-password", "signin")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), 100)
        app.push_screen(MarketScreen(mid, "Live TUI market?"))
        await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen))
        market = app.screen
        await wait_for(pilot, lambda: market.market is not None and market.live, 100)
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        app.screen.query_one("#price", Input).value = "0.40"
        app.screen.query_one("#quantity", Input).value = "10"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market, 100)
        ladder = market.query_one(Ladder)
        await wait_for(pilot, lambda: ladder.book is not None and ladder.book.bids
                       and ladder.own.get(("bid", Decimal("0.40"))) == 10, 100)

        # another user trades against it: the tape, the ladder and the fill arrive live
        await asyncio.to_thread(bob.place_order, mid, "no", "buy", 4, "0.60")
        tape = market.query_one(TradeTape)
        await wait_for(pilot, lambda: len(tape.trades) == 1, 100)
        assert tape.trades[0].price == Decimal("0.40")
        await wait_for(pilot, lambda: ladder.own.get(("bid", Decimal("0.40"))) == 6, 100)

        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, 100)
        assert str(table.get_row_at(0)[8]) == "6"
        await pilot.press("c")
        await wait_for(pilot, lambda: table.row_count == 0, 100)
        assert ann.orders(status="open").total == 0


def newcomer(server, email: str, cash: str = "100") -> Client:
    client = Client(server.url)
    client.signup(email, email.split("@")[0], "a-long-password")
    client.onramp(cash)
    return client


async def watch_market(pilot, server, email: str, market_id: int) -> MarketScreen:
    """Sign ``email`` in and open the market, live."""
    app = pilot.app
    await sign_in(pilot, email, "a-long-password", "signin")
    await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), 100)
    app.push_screen(MarketScreen(market_id, "live market"))
    await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen))
    market = app.screen
    await wait_for(pilot, lambda: market.loaded and market.live, 100)
    return market


def volume_shown(market: MarketScreen) -> int | None:
    """The volume the status line shows."""
    found = re.search(r"· vol ([\d,]+)", str(market.query_one("#status").render()))
    return int(found.group(1).replace(",", "")) if found else None


async def test_market_volume_follows_trades_by_anyone(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Does the TUI volume move?", [], category="tests")
    mid = event.outcomes[0].market_id
    newcomer(server, "tui-vol-watcher@example.com")
    maker = newcomer(server, "tui-vol-maker@example.com")
    taker = newcomer(server, "tui-vol-taker@example.com")

    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        market = await watch_market(pilot, server, "tui-vol-watcher@example.com", mid)
        await wait_for(pilot, lambda: volume_shown(market) == 0, 100)

        # two other accounts trade (a mint, then a transfer): the watcher's figure moves
        await asyncio.to_thread(maker.place_order, mid, "yes", "buy", 10, "0.40")
        await asyncio.to_thread(taker.place_order, mid, "no", "buy", 4, "0.60")
        await wait_for(pilot, lambda: market.market.volume == 4, 100)
        await wait_for(pilot, lambda: volume_shown(market) == 4, 100)
        await asyncio.to_thread(taker.place_order, mid, "no", "buy", 6, "0.60")
        await wait_for(pilot, lambda: market.market.volume == 10, 100)
        assert market.market.open_interest == 10
        await wait_for(pilot, lambda: volume_shown(market) == 10, 100)

        # and the events table shows the server's figure when the trader goes back
        await pilot.press("escape")
        events = app.screen
        assert isinstance(events, EventsScreen)
        table = events.query_one(DataTable)
        key = f"{event.id}:{mid}"
        await wait_for(pilot, lambda: key in table.rows
                       and str(table.get_row(key)[5]) == "10", 100)
    assert Client(server.url).market(mid).volume == 10


async def test_hit_without_yes_buys_no_and_lift_without_cash_sells_no(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Which way does the TUI equivalent go?", [],
                               category="tests")
    mid = event.outcomes[0].market_id
    bidder = newcomer(server, "tui-eq-bidder@example.com")
    hitter = newcomer(server, "tui-eq-hitter@example.com")
    bidder.place_order(mid, "yes", "buy", 10, "0.40")        # YES bid 0.40 x 10

    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        market = await watch_market(pilot, server, "tui-eq-hitter@example.com", mid)
        await pilot.press("h")                               # no YES to sell
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), 100)
        assert str(app.screen.query_one("#choice-0").label) == "Buy 10 NO @ 0.60 (e)"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket), 100)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market, 100)
        await wait_for(pilot, lambda: market.position is not None
                       and market.position.no_quantity == 10, 100)
    held = {u: (p.yes_quantity, p.no_quantity) for u, c in
            (("hitter", hitter), ("bidder", bidder))
            for p in c.positions(market_id=mid).items}
    assert held == {"hitter": (0, 10), "bidder": (10, 0)}     # minted at 0.40 / 0.60
    assert hitter.balance().available == Decimal("94")

    # the lift: all cash in pairs, a NO bid 0.45 (YES ask 0.55) to lift
    lifter = newcomer(server, "tui-eq-lifter@example.com", cash="10")
    lifter.split_market(mid, 10)                              # 10 YES + 10 NO, cash 0
    bidder.place_order(mid, "no", "buy", 5, "0.45")
    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        market = await watch_market(pilot, server, "tui-eq-lifter@example.com", mid)
        await wait_for(pilot, lambda: market._view_book() is not None
                       and market._view_book().best_ask == Decimal("0.55"), 100)
        await pilot.press("l")                               # no cash to buy YES
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog), 100)
        assert str(app.screen.query_one("#choice-0").label) == "Sell 5 NO @ 0.45 (e)"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket), 100)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market, 100)
        await wait_for(pilot, lambda: market.cash == Decimal("2.25"), 100)
    assert [(p.yes_quantity, p.no_quantity) for p in
            lifter.positions(market_id=mid).items] == [(10, 5)]


async def test_admin_creates_and_resolves_an_event(server):
    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        await sign_in(pilot, *ADMIN, "admin")
        await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen), 100)
        await pilot.press("n")
        await pilot.pause(0.2)
        app.screen.query_one("#title", Input).value = "Who wins the TUI cup?"
        app.screen.query_one("#outcomes", Input).value = "Red, Blue"
        await pilot.press("enter")
        admin_screen = app.screen
        await wait_for(pilot, lambda: any(e.title == "Who wins the TUI cup?"
                                          for e in admin_screen.events), 100)
        table = admin_screen.query_one(DataTable)
        table.move_cursor(row=0)
        await pilot.press("v")
        await pilot.pause(0.2)
        await pilot.press("down", "enter")     # Blue
        await pilot.pause(0.2)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("Blue wins" in m for _, m in app.messages), 100)
        cup = next(e for e in Client(server.url).events(q="TUI cup").items)
        assert cup.status == "resolved"


async def test_trader_converts_no_into_yes_of_the_other_outcomes(server):
    admin = Client(server.url)
    admin.admin_signin(*ADMIN)
    event = admin.create_event("Which TUI colour converts?", ["Red", "Green", "Blue"],
                               category="tests")
    red, green, blue = event.outcomes
    cat = Client(server.url)
    cat.signup("tui-cat@example.com", "Cat", "a-long-password")
    cat.onramp("100")
    cat.split_market(red.market_id, 10)      # 10 YES + 10 NO of Red, cash 90
    cat.split_market(green.market_id, 10)    # and of Green, cash 80

    app = TradingApp(server.url)
    async with app.run_test(size=(110, 32)) as pilot:
        await sign_in(pilot, "tui-cat@example.com", "a-long-password", "signin")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), 100)
        events = app.screen
        table = events.query_one(DataTable)
        await wait_for(pilot, lambda: f"{event.id}:{red.market_id}" in table.rows, 100)

        async def open_convert(outcome) -> ConvertDialog:
            table.move_cursor(row=table.get_row_index(f"{event.id}:{outcome.market_id}"))
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ConvertDialog))
            return app.screen

        async def answer(seen: int) -> tuple[str, str]:
            await wait_for(pilot, lambda: app.screen is events, 100)
            await wait_for(pilot, lambda: len(app.messages) > seen, 100)
            return app.messages[-1]

        # the cursor's outcome comes ticked; the quantity is checked as it is typed
        dialog = await open_convert(red)
        assert dialog.query_one(SelectionList).selected == [red.id]
        await pilot.press("0")
        problem = dialog.query_one("#problem")
        assert "whole number" in str(problem.render())
        await pilot.press("enter")
        assert app.screen is dialog                     # refused input keeps it open
        await pilot.press("backspace", "4")
        summary = str(dialog.query_one("#summary").render())
        assert "4 NO of Red → 4 YES of Green, Blue, +0.00 cash" in summary
        seen = len(app.messages)
        await pilot.press("enter")
        assert await answer(seen) == (
            "info", "Converted 4 NO of Red (Which TUI colour converts?): cash 80.00")

        # two ticked outcomes release $1 per share
        dialog = await open_convert(green)
        await pilot.press("shift+tab", "home", "space", "tab")     # tick Red too
        assert dialog.query_one(SelectionList).selected == [green.id, red.id]
        await pilot.press("3")
        assert "+3.00 cash" in str(dialog.query_one("#summary").render())
        seen = len(app.messages)
        await pilot.press("enter")
        assert await answer(seen) == (
            "info", "Converted 3 NO of Red, Green (Which TUI colour converts?): cash 83.00")

        # more NO than is held: the server refuses, the terminal says why
        await open_convert(red)
        await pilot.press("5")
        seen = len(app.messages)
        await pilot.press("enter")
        severity, message = await answer(seen)
        assert severity == "error" and "NO" in message, message

        # a yes/no event has nothing to convert into
        yes_no = admin.create_event("A lone TUI question?", [], category="tests")
        key = f"{yes_no.id}:{yes_no.outcomes[0].market_id}"
        await pilot.press("r")
        await wait_for(pilot, lambda: key in table.rows, 100)
        table.move_cursor(row=table.get_row_index(key))
        seen = len(app.messages)
        await pilot.press("o")
        await wait_for(pilot, lambda: len(app.messages) > seen, 100)
        assert app.messages[-1] == (
            "error", "Convert exists only for events with two or more outcomes.")
        assert app.screen is events

    held = {p.outcome_id: (p.yes_quantity, p.no_quantity)
            for p in cat.positions(event_id=event.id).items}
    assert held == {red.id: (10, 3), green.id: (14, 7), blue.id: (7, 0)}
    assert cat.balance().available == Decimal("83")


async def test_an_api_key_opens_the_terminal_signed_in_and_a_bad_one_says_so(server):
    ann = Client(server.url)
    ann.signup("tui-key@example.com", "Keyed Ann", "a-long-password")
    key = ann.create_api_key("terminal", ["read"]).key
    app = TradingApp(server.url, api_key=key)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen), 100)
        assert app.auth is not None and app.auth.user.email == "tui-key@example.com"
        assert app.api.token == key
    app = TradingApp(server.url, api_key="pmk_" + "x" * 43)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_for(pilot, lambda: any("API key was refused" in m
                                          for _, m in app.messages), 100)
        assert isinstance(app.screen, LoginScreen) and app.auth is None
