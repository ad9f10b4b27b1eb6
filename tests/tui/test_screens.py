"""The terminal's screens against an in-memory fake server: keys do what they say."""

from __future__ import annotations

from decimal import Decimal

from textual.widgets import DataTable, Input

from pmarket.tui import TradingApp
from pmarket.tui.screens.admin import AdminScreen
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.help import HelpScreen, key_rows
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.orders import OrdersScreen
from pmarket.tui.screens.ticket import OrderTicket
from pmarket.tui.widgets.ladder import Ladder
from tests.tui.fake_exchange import FakeExchange


async def wait_for(pilot, condition, tries: int = 300) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition never held")


async def sign_up(pilot, email: str = "ann@x.io", name: str = "Ann") -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
    app.screen.query_one("#email", Input).value = email
    app.screen.query_one("#password", Input).value = "a-long-password"
    app.screen.query_one("#name", Input).value = name
    await pilot.click("#signup")
    await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))


async def test_sign_up_lands_on_events_with_outcome_quotes():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        assert app.auth is not None and app.role == "user"
        first = [str(c) for c in table.get_row_at(0)]
        assert first[1] == "Rain" and first[3] == "0.40" and first[4] == "0.45"


async def test_wrong_password_is_shown_not_raised():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
        app.screen.query_one("#email", Input).value = "nobody@x.io"
        app.screen.query_one("#password", Input).value = "nope"
        await pilot.click("#signin")
        problem = app.screen.query_one("#problem")
        await wait_for(pilot, lambda: "Wrong email" in str(problem.render()))
        assert isinstance(app.screen, LoginScreen)


async def test_search_as_you_type_filters_events():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        await pilot.press("slash")
        await pilot.press(*"final")
        await wait_for(pilot, lambda: table.row_count == 3)
        assert [str(table.get_row_at(i)[1]) for i in range(3)] == ["Lions", "Tigers", "Bears"]


async def test_market_ladder_shows_both_sides_and_toggles_to_no_view():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen))
        ladder = app.screen.query_one(Ladder)
        await wait_for(pilot, lambda: ladder.book is not None)
        assert ladder.book.best_bid == Decimal("0.40")
        assert [lv.price for lv in ladder.book.asks] == [Decimal("0.45"), Decimal("0.50")]
        text = str(ladder.render_ladder())
        assert "0.45" in text and "0.38" in text
        await pilot.press("v")
        await wait_for(pilot, lambda: ladder.book is not None and ladder.book.view == "no")
        assert ladder.book.best_ask == Decimal("0.60")


async def test_order_ticket_validates_then_places_and_marks_the_ladder():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        fake.cash["ann@x.io"] = Decimal(100)
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen))
        market = app.screen
        await wait_for(pilot, lambda: market.book.ready and market.market is not None)
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        ticket = app.screen
        ticket.query_one("#price", Input).value = "0.455"
        await pilot.pause()
        assert "multiple of the tick" in str(ticket.query_one("#problem").render())
        ticket.query_one("#price", Input).value = "0.41"
        ticket.query_one("#quantity", Input).value = "10"
        await pilot.pause()
        summary = str(ticket.query_one("#summary").render())
        assert "cost 4.10" in summary and "max payout 10.00" in summary
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market)
        ladder = market.query_one(Ladder)
        await wait_for(pilot, lambda: ("bid", Decimal("0.41")) in ladder.own)
        assert any("Placed" in m for _, m in app.messages)


async def test_refused_order_keeps_the_ticket_open_with_the_servers_message():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 4)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen))
        await wait_for(pilot, lambda: app.screen.market is not None)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        await pilot.press("ctrl+s")
        problem = app.screen.query_one("#problem")
        await wait_for(pilot, lambda: "insufficient_balance" in str(problem.render()))
        assert isinstance(app.screen, OrderTicket)


async def test_orders_screen_cancels_the_selected_order():
    fake = FakeExchange()
    fake.users["ann@x.io"] = {"id": 10, "email": "ann@x.io", "name": "Ann",
                              "password": "a-long-password"}
    fake.resting("ann@x.io", 1, "yes", "buy", "0.30", 5)
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
        app.screen.query_one("#email", Input).value = "ann@x.io"
        app.screen.query_one("#password", Input).value = "a-long-password"
        await pilot.click("#signin")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, OrdersScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("c")
        await wait_for(pilot, lambda: table.row_count == 0)
        assert fake.orders[-1]["status"] == "cancelled"


async def test_admin_resolves_an_event_after_confirming():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
        app.screen.query_one("#email", Input).value = "admin@x.io"
        app.screen.query_one("#password", Input).value = "admin-password"
        await pilot.click("#admin")
        await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("v")          # newest first: the final (3 outcomes)
        await pilot.pause(0.2)
        await pilot.press("down", "enter")   # Tigers
        await pilot.pause(0.2)
        await pilot.press("y")
        await wait_for(pilot, lambda: fake.events[1]["status"] == "resolved")
        assert any("Tigers wins" in m for _, m in app.messages)


async def test_help_lists_every_screens_keys():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_up(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(does for _, bindings in app.screen.sections
                        for _, does in key_rows(bindings))
        for words in ("Hit bid", "Lift offer", "Cancel all", "Resolve", "Deposit",
                      "Convert NO"):
            assert words in text
