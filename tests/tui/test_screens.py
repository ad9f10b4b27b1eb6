"""The terminal's screens against an in-memory fake server: keys do what they say."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from textual.widgets import DataTable, Input, Select

from pmarket.tui import TradingApp
from pmarket.tui.screens.admin import AdminScreen, ResolveDialog
from pmarket.tui.screens.dialogs import ConfirmDialog, ReportDialog
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.help import HelpScreen, key_name, key_rows
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.orders import OrdersScreen
from pmarket.tui.screens.ticket import OrderTicket
from pmarket.tui.widgets.ladder import Ladder
from tests.tui.fake_exchange import FakeExchange


async def wait_for(pilot, condition, tries: int = 300) -> None:
    """Poll ``condition`` between pilot pauses (≈ 15 s by default)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition never held")


async def fill_login(pilot, email: str, password: str, name: str = "") -> None:
    """Type the sign-in form's fields (the email field keeps the focus)."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen))
    for field, value in (("#email", email), ("#password", password), ("#name", name)):
        app.screen.query_one(field, Input).value = value
    app.screen.query_one("#email", Input).focus()


async def sign_up(pilot, email: str = "ann@x.io", name: str = "Ann") -> None:
    """Sign up with the keyboard (ctrl+u from the focused email field)."""
    app = pilot.app
    await fill_login(pilot, email, "a-long-password", name)
    await pilot.press("ctrl+u")
    await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))


async def open_market(pilot) -> MarketScreen:
    """From the events screen, open the first market and wait until it has loaded."""
    app = pilot.app
    await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 4)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, MarketScreen) and app.screen.loaded)
    return app.screen


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
        await fill_login(pilot, "nobody@x.io", "nope")
        await pilot.press("tab", "enter")      # from the password field
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
        market = await open_market(pilot)
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
        fake.cash["ann@x.io"] = Decimal(1)
        await open_market(pilot)
        await pilot.press("b")                  # 10 YES @ 0.40 costs 4.00
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
        await fill_login(pilot, "ann@x.io", "a-long-password")
        await pilot.press("tab", "enter")
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
        await fill_login(pilot, "admin@x.io", "admin-password")
        await pilot.press("ctrl+a")             # from the focused email field
        await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("v")          # newest first: the final (3 outcomes)
        await wait_for(pilot, lambda: isinstance(app.screen, ResolveDialog))
        await pilot.press("down", "enter")   # Tigers
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: fake.events[1]["status"] == "resolved")
        assert any("Tigers wins" in m for _, m in app.messages)
        await wait_for(pilot, lambda: str(table.get_row_at(0)[4]) == "resolved: Tigers")


async def test_admin_creates_a_fee_charging_event_and_reads_the_fees():
    fake = FakeExchange()
    fake.fees = {2: Decimal("1.25"), 1: Decimal("0.18")}
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 40)) as pilot:
        await fill_login(pilot, "admin@x.io", "admin-password")
        await pilot.press("ctrl+a")
        await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen))
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen.query("#fee_rate"))
        app.screen.query_one("#title", Input).value = "Snow?"
        app.screen.query_one("#fee_rate", Input).value = "0.3"
        await pilot.pause()
        assert "fee rate" in str(app.screen.query_one("#problem").render())
        app.screen.query_one("#fee_rate", Input).value = "0.07"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(fake.events) == 3)
        assert fake.events[2]["fee_rate"] == "0.07"
        await wait_for(pilot, lambda: table.row_count == 3)
        assert "7%" in [str(cell) for cell in table.get_row_at(0)]
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ReportDialog))
        body = str(app.screen.body)
        assert "1.43" in body and body.index("#2") < body.index("#1")


async def test_help_lists_every_screens_keys():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 40)) as pilot:
        await sign_up(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        rows = dict((does, key) for _, bindings in app.screen.sections
                    for key, does in key_rows(bindings))
        text = " ".join(rows)
        for words in ("Hit bid", "Lift offer", "Cancel all", "Resolve", "Deposit",
                      "Convert NO", "Equivalent order", "Sign out / switch account"):
            assert words in text
        # the order form's keys, with the keys a trader presses
        assert rows["Next level up: its price into the form"] == "↑"
        assert rows["Form price +1 tick"] == "]"
        assert rows["Form quantity +1 lot (10 shares)"] == "+ / ="
        assert rows["Price +1 tick / quantity +1 lot (field)"] == "↑"
        assert rows["Admin sign in"] == "ctrl+a"


async def test_market_figures_wait_for_the_server_to_hold_the_trade_seen(monkeypatch):
    """A trade seen live may not be in the server's database yet (projection lag): the
    volume is refetched until the newest stored trade is at least that one."""
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        market = await open_market(pilot)
        await wait_for(pilot, lambda: not market._refreshing_market)
        assert market.market.volume == 43
        def rounds() -> int:
            return fake.requests.count("GET /markets/1/trades")

        asked = rounds()
        market._trade_seen(5)                  # seen on the stream, not stored yet
        await wait_for(pilot, lambda: rounds() >= asked + 3)
        assert market._refreshing_market and market.market.volume == 43
        fake.trades.append({"id": 5, "market_id": 1, "price": "0.45", "quantity": 7,
                            "taker_side": "buy", "executed_at": "2024-05-01T12:05:00Z"})
        await wait_for(pilot, lambda: not market._refreshing_market)
        assert market.market.volume == 50
        await wait_for(pilot, lambda: not market._dirty)
        assert "vol 50" in str(market.query_one("#status").render())

        # a server that never catches up: after the deadline its figure is shown as it
        # is, and the refresh stops (the next trade asks again)
        monkeypatch.setattr("pmarket.tui.screens.market.CATCH_UP_SECONDS", 0.3)
        market._trade_seen(6)
        await wait_for(pilot, lambda: not market._refreshing_market)
        assert market.market.volume == 50


def test_the_readme_lists_the_keys_of_the_trading_screens():
    """The README's key table names every key of these screens (F1 is generated from the
    same bindings, so the two cannot drift apart unnoticed)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text().lower()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines()
            if line.startswith("| ")}
    for title, cls in (("everywhere", TradingApp), ("sign in", LoginScreen),
                       ("market", MarketScreen), ("order ticket", OrderTicket)):
        row = rows[title]
        for b in cls.BINDINGS:
            for key in b.key.split(","):
                name = key_name(key).lower().replace("⏎", "enter")
                if len(name) == 1 and name.isascii():
                    name = f"`{name}`"          # a bare "b" would be found in any word
                assert name in row, f"README's {title!r} row lacks {name!r}"


async def test_a_resolved_event_says_who_won_and_the_portfolio_what_was_paid():
    fake = FakeExchange()
    fake.hold("ann@x.io", 1, yes=10)        # Rain: YES wins
    fake.hold("ann@x.io", 3, yes=2, no=4)   # Tigers lose: the NO pays
    fake.resolve(1, 1)
    fake.resolve(2, 2)                      # Lions
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        assert [str(table.get_row_at(r)[6]) for r in range(4)] == [
            "YES won", "won", "lost", "lost"]
        market = await open_market(pilot)   # Rain
        status = market.query_one("#status")
        await wait_for(pilot, lambda: "settled" in str(status.render()))
        assert "resolved: YES won" in str(status.render())
        assert "a YES share paid 1.00" in str(status.render())
        await pilot.press("f4")
        paid = app.screen.query_one("#payouts-table", DataTable)
        await wait_for(pilot, lambda: paid.row_count == 2)
        rows = [[str(c) for c in paid.get_row_at(r)] for r in range(2)]
        assert rows == [  # newest first
            ["2024-05-02 18:30", "Who wins the 2028 final? · Tigers", "2", "4", "4.00"],
            ["2024-05-02 18:30", "Will it rain in Paris tomorrow? · Rain", "10", "0",
             "10.00"]]
        title = str(app.screen.query_one("#payouts-title").render())
        assert title == "Payouts from resolved events: 2 paid 14.00"
        positions = app.screen.query_one("#positions-table", DataTable)
        marks = {str(positions.get_row_at(r)[0]): str(positions.get_row_at(r)[5])
                 for r in range(positions.row_count)}
        assert marks == {"Will it rain in Paris tomorrow? · Rain": "1.00 paid",
                         "Who wins the 2028 final? · Tigers": "0.00 paid"}


async def test_the_status_filter_offers_only_the_apis_statuses():
    fake = FakeExchange()
    fake.resolve(2, None, void=True)
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        assert [str(table.get_row_at(r)[6]) for r in range(1, 4)] == ["void"] * 3
        status = app.screen.query_one("#status", Select)
        status.value = "resolved"
        await wait_for(pilot, lambda: table.row_count == 3)
        assert "GET /events" in fake.requests[-1]


def test_the_walkthrough_shows_every_screenshot_its_script_takes():
    """docs/WALKTHROUGH.md and docs/walkthrough.py agree, and the pictures exist."""
    docs = Path(__file__).parents[2] / "docs"
    shown = re.findall(r"\]\(walkthrough/([\w-]+)\.svg\)", (docs / "WALKTHROUGH.md").read_text())
    taken = re.findall(r'shoot\(app, "([\w-]+)"\)', (docs / "walkthrough.py").read_text())
    assert shown == taken and len(taken) == 8
    assert all((docs / "walkthrough" / f"{name}.svg").is_file() for name in taken)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "(docs/WALKTHROUGH.md)" in readme
