"""The market screen's order form and the ticket, through the pilot, on the fake server.

The fake's market 1 (YES terms): bids 0.40 x 50 and 0.38 x 120, asks 0.45 x 70 and
0.50 x 30 (that one a NO bid at 0.50), last 0.44.
"""

from __future__ import annotations

from decimal import Decimal

from textual.widgets import Input, RadioSet

from pmarket.tui import TradingApp
from pmarket.tui.screens.dialogs import ChoiceDialog
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.ticket import OrderTicket
from pmarket.tui.widgets.ladder import Ladder
from tests.tui.fake_exchange import FakeExchange
from tests.tui.test_screens import open_market, sign_up, wait_for

D = Decimal


async def trader(pilot, fake: FakeExchange, cash: str = "100", **held: int) -> MarketScreen:
    """Ann, signed up with ``cash`` and ``held`` shares of market 1, on its screen."""
    await sign_up(pilot)
    fake.cash["ann@x.io"] = D(cash)
    if held:
        fake.hold("ann@x.io", 1, **held)
    return await open_market(pilot)


def form(market: MarketScreen) -> tuple[Decimal | None, int]:
    return market.form_price, market.form_quantity


def ticket_fields(app) -> dict[str, str]:
    t = app.screen
    assert isinstance(t, OrderTicket)
    return {"side": t._choice("side"), "outcome": t._choice("outcome"),
            "price": t.query_one("#price", Input).value,
            "quantity": t.query_one("#quantity", Input).value, "tif": t._choice("tif")}


async def test_keys_walk_the_ladder_levels_and_step_ticks_and_lots():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake)
        ladder = market.query_one(Ladder)
        assert form(market) == (None, 10)
        await pilot.press("up")                      # nothing picked: the best ask
        assert form(market) == (D("0.45"), 10) and ladder.picked == D("0.45")
        await pilot.press("up", "up")                # the top level, and it stays there
        assert market.form_price == D("0.50")
        await pilot.press("down", "down", "down")    # across the spread to the bids
        assert market.form_price == D("0.38")
        await pilot.press("right_square_bracket")    # a price between levels
        assert market.form_price == D("0.39")
        assert D("0.39") in ladder.rows.values()     # drawn as an empty row of its own
        assert "0.39" in str(ladder.render_ladder())
        await pilot.press("down")                    # the next level below it
        assert market.form_price == D("0.38")
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert market.form_price == D("0.36")
        await pilot.press("plus", "plus")
        assert market.form_quantity == 30
        await pilot.press("minus", "minus", "minus", "minus")
        assert market.form_quantity == 1             # never below one share
        assert "form: 1 YES @ 0.36" in str(market.query_one("#order-form").render())

        await pilot.press("b")                       # the ticket takes the form's order
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app) == {"side": "buy", "outcome": "yes", "price": "0.36",
                                      "quantity": "1", "tif": "gtc"}


async def test_a_click_on_a_level_picks_its_price_and_the_view_mirrors_it():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake)
        ladder = market.query_one(Ladder)
        await wait_for(pilot, lambda: D("0.45") in ladder.rows.values())
        line = next(y for y, p in ladder.rows.items() if p == D("0.45"))
        await pilot.click(Ladder, offset=(10, line))
        await wait_for(pilot, lambda: market.form_price == D("0.45"))
        line = next(y for y, p in ladder.rows.items() if p == D("0.38"))
        await pilot.click(Ladder, offset=(3, line))
        await wait_for(pilot, lambda: market.form_price == D("0.38"))
        await pilot.press("v")                       # 0.38 YES is 0.62 NO
        assert market.form_price == D("0.62")
        await wait_for(pilot, lambda: ladder.book is not None and ladder.book.view == "no")
        assert ladder.picked == D("0.62") and D("0.62") in ladder.rows.values()
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app)["outcome"] == "no"
        assert ticket_fields(app)["price"] == "0.62"


async def test_the_ticket_steps_its_focused_field_and_switches_to_the_equivalent():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await trader(pilot, fake)
        await pilot.press("b")                       # the best bid, one lot
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        ticket = app.screen
        assert app.focused is ticket.query_one("#quantity")
        await pilot.press("up", "up")
        assert ticket_fields(app)["quantity"] == "30"
        await pilot.press("down")
        assert ticket_fields(app)["quantity"] == "20"
        await pilot.press("shift+tab")
        assert app.focused is ticket.query_one("#price")
        await pilot.press("up")
        assert ticket_fields(app)["price"] == "0.41"
        await pilot.press("down", "down")
        assert ticket_fields(app)["price"] == "0.39"
        summary = str(ticket.query_one("#summary").render())
        assert "Buy 20 YES @ 0.39" in summary
        assert "YES book: bid 0.39 · same as sell 20 NO @ 0.61 (ctrl+o)" in summary

        await pilot.press("ctrl+o")
        assert ticket_fields(app) == {"side": "sell", "outcome": "no", "price": "0.61",
                                      "quantity": "20", "tif": "gtc"}
        summary = str(ticket.query_one("#summary").render())
        assert "Sell 20 NO @ 0.61" in summary
        assert "YES book: bid 0.39 · same as buy 20 YES @ 0.39" in summary

        ticket.query_one("#price", Input).value = ""     # an empty price starts at the
        ticket.query_one("#price", Input).focus()        # best price of its own side
        await pilot.press("up")
        assert ticket_fields(app)["price"] == "0.60"     # the best NO ask (1 - 0.40)


async def test_hitting_the_bid_by_what_is_held():
    """No YES: buy NO at 1 - p instead; some YES: that too, or sell what is held; enough
    YES: straight to the ticket. Escape places nothing."""
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        dialog = app.screen
        assert str(dialog.query_one("#reason").render()) == (
            "Hitting the bid sells 50 YES @ 0.40, but you hold 0 YES free to sell.")
        assert [str(b.label) for b in dialog.query("Button")] == [
            "Buy 50 NO @ 0.60 (e)", "Cancel (esc)"]
        assert app.focused is dialog.query_one("#choice-0")
        assert "≡ the same ask at 0.40 on the YES book; costs 30.00" in " ".join(
            str(s.render()) for s in dialog.query(".choice-detail"))
        orders = len(fake.orders)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is market)
        assert len(fake.orders) == orders

        fake.hold("ann@x.io", 1, yes=20)             # the holdings of now count
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        assert [str(b.label) for b in app.screen.query("Button")] == [
            "Buy 50 NO @ 0.60 (e)", "Sell 20 YES @ 0.40 (a)", "Cancel (esc)"]
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app) == {"side": "sell", "outcome": "yes", "price": "0.40",
                                      "quantity": "20", "tif": "ioc"}
        assert str(app.screen.query_one("#note").render()).startswith(
            "Reduced from sell 50 yes @ 0.40: the 20 YES you hold free")
        await pilot.press("escape")

        fake.hold("ann@x.io", 1, yes=60)
        await wait_for(pilot, lambda: app.screen is market)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app) == {"side": "sell", "outcome": "yes", "price": "0.40",
                                      "quantity": "50", "tif": "ioc"}
        assert not app.screen.query("#note")
        await pilot.press("escape")

        fake.hold("ann@x.io", 1)
        await wait_for(pilot, lambda: app.screen is market)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app) == {"side": "buy", "outcome": "no", "price": "0.60",
                                      "quantity": "50", "tif": "ioc"}
        note = str(app.screen.query_one("#note").render())
        assert note.startswith("Equivalent of sell 50 yes @ 0.40: the same ask at 0.40")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market)
        placed = fake.orders[-1]
        assert len(fake.orders) == orders + 1
        assert (placed["side"], placed["outcome"], placed["price"], placed["quantity"],
                placed["time_in_force"]) == ("buy", "no", "0.60", 50, "ioc")


async def test_lifting_the_offer_by_what_is_held():
    """Short of cash: sell the NO held at 1 - p instead, or buy what the cash pays for;
    with neither, the terminal says why and opens nothing."""
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake, cash="1", no=30)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        dialog = app.screen
        assert str(dialog.query_one("#reason").render()) == (
            "Lifting the offer buys 70 YES @ 0.45 for 31.50, but you have 1.00 available.")
        assert [str(b.label) for b in dialog.query("Button")] == [
            "Sell 30 NO @ 0.55 (e)", "Buy 2 YES @ 0.45 (a)", "Cancel (esc)"]
        details = [str(s.render()) for s in dialog.query(".choice-detail")]
        assert details[0] == ("≡ the same bid at 0.45 on the YES book; proceeds 16.50 (you "
                              "hold 30 NO free: the equivalent of 30 of the 70)")
        await pilot.press("enter")                   # the focused, equivalent choice
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert ticket_fields(app) == {"side": "sell", "outcome": "no", "price": "0.55",
                                      "quantity": "30", "tif": "ioc"}
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is market)
        assert (fake.orders[-1]["side"], fake.orders[-1]["outcome"]) == ("sell", "no")

        fake.cash["ann@x.io"] = D(0)
        fake.hold("ann@x.io", 1)
        seen = len(app.messages)
        await pilot.press("l")
        await wait_for(pilot, lambda: len(app.messages) > seen)
        assert app.messages[-1] == (
            "error", "Lifting the offer buys 70 YES @ 0.45 for 31.50, but you have 0.00 "
                     "available. You hold no NO to sell instead.")
        assert app.screen is market


async def test_in_the_no_view_a_hit_without_no_offers_buying_yes():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake)
        await pilot.press("v")
        await wait_for(pilot, lambda: market.query_one(Ladder).book.view == "no")
        await pilot.press("h")                       # best NO bid: 0.55 x 70
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        assert str(app.screen.query_one("#choice-0").label) == "Buy 70 YES @ 0.45 (e)"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert app.screen.query_one("#outcome", RadioSet).pressed_button.name == "yes"
        assert ticket_fields(app)["price"] == "0.45"


async def test_the_ticket_bounds_the_taker_fee_of_the_markets_event():
    """Market 1's event charges takers 7%: 10 shares at 0.40 pay at most
    ceil_to_cent(0.07 x 0.40 x 0.60) = 0.02 each if they take; without a fee the ticket
    says nothing about fees."""
    fake = FakeExchange()
    fake.events[0]["fee_rate"] = "0.07"
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        market = await trader(pilot, fake)
        await wait_for(pilot, lambda: market.fee_rate == D("0.07"))
        await pilot.press("b")                       # buy 10 YES at the best bid, 0.40
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        summary = str(app.screen.query_one("#summary").render())
        assert ("taker fee 7%: at most 0.20 if it takes (held with the cash while it "
                "takes, the unused part back at once); resting pays none") in summary
        await pilot.press("ctrl+o")                  # sell 10 NO at 0.60: from proceeds
        summary = str(app.screen.query_one("#summary").render())
        assert "taker fee 7%: at most 0.20 if it takes (out of the proceeds)" in summary
        await pilot.press("escape")
        fake.events[0]["fee_rate"] = "0.00"
        await pilot.press("r")                       # reload: the fee is gone
        await wait_for(pilot, lambda: market.fee_rate == 0)
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderTicket))
        assert "fee" not in str(app.screen.query_one("#summary").render())
