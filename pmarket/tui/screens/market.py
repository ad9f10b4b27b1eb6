"""The market screen: live ladder, order form, candle chart, trade tape, position, keys.

Invariants: the ladder always shows ``self.book`` — a ``LocalBook`` that is either the
stream's (snapshot + gap-free deltas) or, when no WebSocket is available, the latest
REST snapshot polled every couple of seconds; redraws are batched on a short timer so
a burst of deltas paints once, without flicker. The market's figures (volume, open
interest) are the server's, refetched after every trade seen until the server has that
trade (``refresh_market``), never counted locally. The order form (price picked from
the ladder or stepped by ticks, quantity stepped by lots) only ever holds a price on the
market's grid strictly inside (0, 1) and a quantity ≥ 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Static

from pmarket.client import (
    BalanceMessage,
    Book,
    BookMessage,
    ClientError,
    ConnectionMessage,
    ErrorMessage,
    FillMessage,
    LocalBook,
    Market,
    Order,
    OrderMessage,
    OrderResult,
    Position,
    TradeMessage,
)
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import ApiScreen
from pmarket.tui.screens.dialogs import ChoiceDialog, ConfirmDialog, NumberDialog
from pmarket.tui.screens.ticket import OrderTicket, TicketPreset, describe_result
from pmarket.tui.trading import plan_hit, plan_lift
from pmarket.tui.widgets.chart import INTERVALS, CandleChart
from pmarket.tui.widgets.ladder import Ladder, own_levels
from pmarket.tui.widgets.tape import TradeTape

POLL_SECONDS = 2.0
REDRAW_SECONDS = 0.1
CATCH_UP_SECONDS = 5.0
"""How long ``refresh_market`` waits for the server's database to hold a trade seen live
(the projection lag) before it shows what the server has."""
CATCH_UP_POLL_SECONDS = 0.1

LEVEL = Binding.Group("Level", compact=True)
TICK = Binding.Group("Tick", compact=True)
LOT = Binding.Group(f"Lot ({fmt.LOT})", compact=True)


class MarketScreen(ApiScreen):
    """One market, live.

    Args:
        market_id: The market.
        title: "Event · Outcome", shown in the header.
    """

    BINDINGS = [
        Binding("b", "ticket('buy')", "Buy"),
        Binding("s", "ticket('sell')", "Sell"),
        Binding("h", "hit_bid", "Hit bid"),
        Binding("l", "lift_offer", "Lift offer"),
        Binding("up", "level(1)", "Next level up: its price into the form",
                key_display="↑", group=LEVEL),
        Binding("down", "level(-1)", "Next level down: its price into the form",
                key_display="↓", group=LEVEL),
        Binding("right_square_bracket", "tick(1)", "Form price +1 tick", key_display="]",
                group=TICK),
        Binding("left_square_bracket", "tick(-1)", "Form price -1 tick", key_display="[",
                group=TICK),
        Binding("plus,equals_sign", "lot(1)", f"Form quantity +1 lot ({fmt.LOT} shares)",
                key_display="+", group=LOT),
        Binding("minus", "lot(-1)", f"Form quantity -1 lot ({fmt.LOT} shares)",
                key_display="-", group=LOT),
        Binding("v", "toggle_view", "YES/NO"),
        Binding("escape", "app.pop_screen", "Back"),
        Binding("i", "next_interval", "Interval"),
        Binding("c", "cancel_market", "Cancel all here"),
        Binding("x", "split", "Split"),
        Binding("g", "merge", "Merge"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, market_id: int, title: str = "") -> None:
        super().__init__()
        self.market_id = market_id
        self.title_text = title or f"market {market_id}"
        self.market: Market | None = None
        self.fee_rate = Decimal(0)
        """The event's taker fee rate, for the order ticket (fetched with the market)."""
        self.book = LocalBook(market_id)
        self.view = "yes"
        self.interval = "1m"
        self.own: dict[int, Order] = {}
        self.position: Position | None = None
        self.cash: Decimal | None = None
        self.live = False
        self.loaded = False
        """Everything fetched once (market, book, tape, chart, account)."""
        self.form_price: Decimal | None = None
        """The order form's price, in the view's terms (None until one is picked)."""
        self.form_quantity = fmt.LOT
        self._dirty = False
        self._newest_trade = 0
        """Id of the newest trade seen (tape, stream or poll)."""
        self._refreshing_market = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="market-body"):
            with Vertical(id="ladder-pane", classes="pane"):
                yield Static("", id="ladder-title", classes="pane-title")
                yield Ladder(id="ladder")
                yield Static("", id="order-form", classes="order-form")
            with Vertical(id="right-pane"):
                yield CandleChart(id="chart", classes="pane")
                yield TradeTape(id="tape", classes="pane")
        yield Static("", id="status", classes="status")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def tick(self) -> Decimal:
        """The market's tick size."""
        return self.market.tick_size if self.market else Decimal("0.01")

    @property
    def is_user(self) -> bool:
        """Whether the session can trade (admins cannot)."""
        return self.trading_app.role == "user"

    def on_mount(self) -> None:
        self.sub_title = self.title_text
        self.set_interval(REDRAW_SECONDS, self._flush)
        self.load()

    @work(exclusive=True, group="load", exit_on_error=False)
    async def load(self) -> None:
        """Fetch everything once, then follow the market live."""
        market = await self.call(self.api.market(self.market_id))
        if market is None:
            return
        self.market = market
        await self._fetch_all()
        self.loaded = True
        if self._newest_trade:
            self._market_changed()  # trades may have landed between the two reads
        self.follow()

    async def _fetch_all(self) -> None:
        if self.market is not None:
            event = await self.call(self.api.event(self.market.event_id))
            if event is not None:
                self.fee_rate = event.fee_rate
        book = await self.call(self.api.orderbook(self.market_id, view="yes"))
        if book is not None:
            self.book.apply_snapshot(book, book.sequence)
        trades = await self.call(self.api.market_trades(self.market_id, limit=100))
        if trades is not None:
            self.query_one(TradeTape).reset(trades.items, self.tick)
            self._newest_trade = max([self._newest_trade, *(t.id for t in trades.items)])
        await self._fetch_candles()
        await self._fetch_account()
        self._dirty = True

    async def _fetch_candles(self) -> None:
        candles = await self.call(self.api.candles(self.market_id, self.interval, limit=500))
        if candles is not None:
            ordered = sorted(candles.items, key=lambda c: (c.start is None, c.start))
            self.query_one(CandleChart).show(ordered, self.interval, self.tick)

    async def _fetch_account(self) -> None:
        if not self.is_user:
            return
        orders = await self.call(self.api.orders(status="open", market_id=self.market_id,
                                                 limit=500))
        if orders is not None:
            self.own = {o.id: o for o in orders.items if o.is_open}
        positions = await self.call(self.api.positions(market_id=self.market_id))
        if positions is not None:
            self.position = next((p for p in positions.items
                                  if p.market_id == self.market_id), None)
        balance = await self.call(self.api.balance())
        if balance is not None:
            self.cash = balance.available
        self._dirty = True

    @work(exclusive=True, group="live", exit_on_error=False)
    async def follow(self) -> None:
        """Stream the market; fall back to polling when there is no WebSocket."""
        channels = [f"book:{self.market_id}", f"trades:{self.market_id}"]
        if self.is_user:
            channels.append("user")
        try:
            async with self.api.stream() as stream:
                await stream.subscribe(*channels)
                self.live = True
                self._dirty = True
                async for msg in stream:
                    await self._on_stream(msg, stream.books.get(self.market_id))
        except (ClientError, OSError) as exc:
            self.live = False
            self.trading_app.say(f"Live data unavailable ({exc}); refreshing every "
                                 f"{POLL_SECONDS:.0f}s")
        self.live = False
        self._dirty = True
        await self._poll()

    async def _poll(self) -> None:
        while self.is_attached:
            await asyncio.sleep(POLL_SECONDS)
            with contextlib.suppress(ClientError):
                book = await self.api.orderbook(self.market_id, view="yes")
                self.book.apply_snapshot(book, book.sequence)
                trades = await self.api.market_trades(self.market_id, limit=50)
                tape = self.query_one(TradeTape)
                fresh = [t for t in trades.items if t.id not in {x.id for x in tape.trades}]
                if fresh:
                    tape.add(fresh)
                    for t in sorted(fresh, key=lambda t: t.id):
                        self.query_one(CandleChart).add_trade(t)
                    self._trade_seen(max(t.id for t in fresh))
                    await self._fetch_account()
                self._dirty = True

    async def _on_stream(self, msg: object, book: LocalBook | None) -> None:
        if isinstance(msg, BookMessage):
            if book is not None:
                self.book = book
            self._dirty = True
        elif isinstance(msg, TradeMessage) and msg.trade.market_id == self.market_id:
            self.query_one(TradeTape).add([msg.trade])
            self.query_one(CandleChart).add_trade(msg.trade)
            self._trade_seen(msg.trade.id)
            self._dirty = True
        elif isinstance(msg, OrderMessage) and msg.order.market_id == self.market_id:
            if msg.order.is_open:
                self.own[msg.order.id] = msg.order
            else:
                self.own.pop(msg.order.id, None)
            self._dirty = True
        elif isinstance(msg, FillMessage) and msg.trade.market_id == self.market_id:
            t = msg.trade
            fee = f", fee ${fmt.money(t.fee)}" if t.fee else ""
            self.trading_app.say(f"Filled: {t.side} {t.quantity} {t.outcome.upper()} @ "
                                 f"{fmt.price(t.price, self.tick)} ({t.role}{fee})")
            await self._fetch_account()
        elif isinstance(msg, BalanceMessage):
            self.cash = msg.balance.available
            self._dirty = True
        elif isinstance(msg, ErrorMessage):
            self.trading_app.fail(f"Live data: {msg.message or msg.code}")
        elif isinstance(msg, ConnectionMessage):
            self.live = msg.connected
            self._dirty = True

    def _trade_seen(self, trade_id: int) -> None:
        """A trade arrived (stream or poll): the market's figures must follow."""
        if trade_id > self._newest_trade:
            self._newest_trade = trade_id
            self._market_changed()

    def _market_changed(self) -> None:
        if not self._refreshing_market:
            self._refreshing_market = True
            self.refresh_market()

    @work(group="market", exit_on_error=False)
    async def refresh_market(self) -> None:
        """Refetch the market's summary (volume, open interest, status) until it includes
        the newest trade seen.

        A trade reaches the stream before the worker has written it to the database,
        where the volume is counted: the newest stored trade is read first and the
        market after it, so once that trade is the newest seen (or newer) the volume
        read includes it. A trade seen meanwhile keeps the loop going; after
        ``CATCH_UP_SECONDS`` without the server catching up, its figure is shown as it
        is (the next trade asks again).
        """
        try:
            deadline = time.monotonic() + CATCH_UP_SECONDS
            while self.is_attached:
                wanted = self._newest_trade
                trades = await self.call(self.api.market_trades(self.market_id, limit=1))
                market = await self.call(self.api.market(self.market_id))
                if trades is None or market is None:
                    return
                stored = max((t.id for t in trades.items), default=0)
                caught_up = stored >= wanted
                if caught_up or time.monotonic() > deadline:
                    self.market = market
                    self._dirty = True
                    if not caught_up or stored >= self._newest_trade:
                        return
                    deadline = time.monotonic() + CATCH_UP_SECONDS  # a newer one came
                await asyncio.sleep(CATCH_UP_POLL_SECONDS)
        finally:
            self._refreshing_market = False

    def _flush(self) -> None:
        if not self._dirty or not self.is_attached:
            return
        self._dirty = False
        book = self.book.to_book(self.view) if self.book.ready else None
        own = own_levels(list(self.own.values()), self.view)
        self.query_one(Ladder).show(book, own, self.tick, self.form_price)
        state = "live" if self.live else "polling"
        self.query_one("#ladder-title", Static).update(
            f"{self.view.upper()} book · {state} · tick {self.tick}")
        self._show_form()
        self.query_one("#status", Static).update(self._status_line())

    def _show_form(self) -> None:
        price = fmt.price(self.form_price, self.tick)
        self.query_one("#order-form", Static).update(
            f"form: {self.form_quantity:,} {self.view.upper()} @ {price}  (b/s)")

    def _status_line(self) -> str:
        m = self.market
        status = m.status if m is None or m.result is None else \
            f"{m.status}: {fmt.market_result(m.result)}"
        head = (f"{m.outcome_name or self.title_text} · {status} · vol {m.volume:,}"
                if m else self.title_text)
        if not self.is_user:
            return f"{head} · admin view (trading needs a user account)"
        p = self.position
        pos = "no position"
        if p is not None and p.settled:
            pos = (f"settled: a YES share paid {fmt.money(p.mark_price)} · realized P&L "
                   f"{fmt.signed(p.realized_pnl)} (F4: payouts)")
        elif p is not None and (p.yes_quantity or p.no_quantity):
            pos = (f"YES {p.yes_quantity:,} @ {fmt.price(p.avg_cost_yes, self.tick / 100)} · "
                   f"NO {p.no_quantity:,} @ {fmt.price(p.avg_cost_no, self.tick / 100)} · "
                   f"value {fmt.money(p.value)} · P&L {fmt.signed(p.unrealized_pnl)}")
        orders = f"{len(self.own)} open order{'s' * (len(self.own) != 1)}"
        return f"{head}\n{pos} · {orders} · cash {fmt.money(self.cash)}"

    # --- actions -------------------------------------------------------------------

    def _books(self) -> dict[str, object]:
        if not self.book.ready:
            return {"yes": None, "no": None}
        return {"yes": self.book.to_book("yes"), "no": self.book.to_book("no")}

    def _open_ticket(self, preset: TicketPreset) -> None:
        if self.market is None:
            self.trading_app.fail("The market has not loaded yet.")
            return
        if not self.is_user:
            self.trading_app.fail("Trading needs a user account (admins cannot trade).")
            return
        ticket = OrderTicket(self.market, self.title_text, self._books(),  # type: ignore[arg-type]
                             preset, self.fee_rate)
        self.app.push_screen(ticket, self._placed)

    def _placed(self, result: OrderResult | None) -> None:
        if result is None:
            return
        self.trading_app.say("Placed " + describe_result(result, self.tick))
        if result.order.is_open:
            self.own[result.order.id] = result.order
        self._dirty = True
        self.refresh_account()

    @work(group="account", exit_on_error=False)
    async def refresh_account(self) -> None:
        """Refetch open orders, position and cash."""
        await self._fetch_account()

    def _view_book(self) -> Book | None:
        return self.book.to_book(self.view) if self.book.ready else None

    def action_ticket(self, side: str) -> None:
        """Open the ticket for ``side`` with the order form's price and quantity (with no
        price picked: the best price on its own side, to join the queue)."""
        price = self.form_price
        book = self._view_book()
        if price is None and book is not None:
            price = book.best_bid if side == "buy" else book.best_ask
        self._open_ticket(TicketPreset(side=side, outcome=self.view, price=price,
                                       quantity=self.form_quantity))

    @work(group="aggress", exclusive=True, exit_on_error=False)
    async def _aggress(self, side: str) -> None:
        """Hit (``sell``) or lift (``buy``) the best level of the view, whole size, IOC;
        when the account cannot cover it, let the trader choose what stands in."""
        book = self._view_book()
        levels = (book.bids if side == "sell" else book.asks) if book else []
        if not levels:
            self.trading_app.fail(f"No {'bid' if side == 'sell' else 'offer'} to "
                                  f"{'hit' if side == 'sell' else 'lift'}.")
            return
        if self.market is None or not self.is_user:
            self._open_ticket(TicketPreset())  # says why not
            return
        await self._fetch_account()  # judge by the holdings of now, not of the last fill
        best = levels[0]
        plan = (plan_hit if side == "sell" else plan_lift)(
            self.view, best.price, best.quantity, self.position, self.cash, self.tick)
        if plan.covered:
            self._open_ticket(TicketPreset(side=side, outcome=self.view, price=best.price,
                                           quantity=best.quantity, time_in_force="ioc"))
            return
        if not plan.choices:
            self.trading_app.fail(plan.reason)
            return
        verb = "Hit the bid" if side == "sell" else "Lift the offer"
        choice = await self.app.push_screen_wait(
            ChoiceDialog(f"{verb} · {self.title_text}", plan, self.tick))
        if choice is None:
            return
        how = "Equivalent of" if choice.equivalent else "Reduced from"
        self._open_ticket(TicketPreset(
            side=choice.side, outcome=choice.outcome, price=choice.price,
            quantity=choice.quantity, time_in_force="ioc",
            note=f"{how} {plan.asked.label(self.tick).lower()}: {choice.detail}"))

    def action_hit_bid(self) -> None:
        """Sell into the best bid of the current view (IOC ticket, size prefilled; without
        the shares, the choice of the equivalent buy of the other outcome)."""
        self._aggress("sell")

    def action_lift_offer(self) -> None:
        """Buy the best offer of the current view (IOC ticket, size prefilled; without
        the cash, the choice of the equivalent sale of the other outcome held)."""
        self._aggress("buy")

    # --- the order form --------------------------------------------------------------

    def _pick(self, price: Decimal | None) -> None:
        self.form_price = price
        self.query_one(Ladder).pick(price)
        self._show_form()

    def on_ladder_picked(self, message: Ladder.Picked) -> None:
        """A click on a ladder level picks its price into the form."""
        self._pick(message.price)

    def action_level(self, direction: int) -> None:
        """Move the form's price to the next level drawn above (1) or below (-1) it."""
        book = self._view_book()
        if book is None:
            return
        current = self.form_price
        if current is None:
            firsts = ([book.best_ask, book.best_bid] if direction > 0
                      else [book.best_bid, book.best_ask])
            target = next((p for p in firsts if p is not None), None)
        else:
            prices = self.query_one(Ladder).prices
            beyond = [p for p in prices if (p > current if direction > 0 else p < current)]
            target = (min(beyond) if direction > 0 else max(beyond)) if beyond else current
        if target is not None:
            self._pick(target)

    def action_tick(self, steps: int) -> None:
        """Step the form's price by ``steps`` ticks (from the best bid, the best ask, the
        last price or 0.5 when none is picked yet)."""
        if self.form_price is None:
            book = self._view_book()
            start = next((p for p in ((book.best_bid, book.best_ask, book.last_price)
                                      if book else ()) if p is not None), fmt.ONE / 2)
            self._pick(fmt.step_price(start, self.tick, 0))
        else:
            self._pick(fmt.step_price(self.form_price, self.tick, steps))

    def action_lot(self, steps: int) -> None:
        """Step the form's quantity by ``steps`` lots."""
        self.form_quantity = fmt.step_quantity(self.form_quantity, steps)
        self._show_form()

    def action_toggle_view(self) -> None:
        """Switch the ladder, chart and tape between YES and NO terms (the form's price
        follows: 0.40 YES is 0.60 NO)."""
        self.view = "no" if self.view == "yes" else "yes"
        if self.form_price is not None:
            self.form_price = fmt.ONE - self.form_price
        self.query_one(CandleChart).set_view(self.view)
        self.query_one(TradeTape).set_view(self.view)
        self._dirty = True

    @work(group="candles", exit_on_error=False)
    async def action_next_interval(self) -> None:
        """Cycle the chart's candle interval (1m, 5m, 1h, 1d)."""
        names = list(INTERVALS)
        self.interval = names[(names.index(self.interval) + 1) % len(names)]
        await self._fetch_candles()

    @work(group="reload", exit_on_error=False)
    async def action_reload(self) -> None:
        """Refetch everything."""
        market = await self.call(self.api.market(self.market_id))
        if market is not None:
            self.market = market
        await self._fetch_all()

    @work(group="cancel", exit_on_error=False)
    async def action_cancel_market(self) -> None:
        """Cancel every own open order in this market, after confirming."""
        if not await self.app.push_screen_wait(ConfirmDialog(
                f"Cancel all {len(self.own)} of your open orders in {self.title_text}?",
                "Cancel orders")):
            return
        ids = await self.call(self.api.cancel_all(market_id=self.market_id))
        if ids is not None:
            self.trading_app.say(f"Cancelled {len(ids)} order{'s' * (len(ids) != 1)}.")
            for i in ids:
                self.own.pop(i, None)
            self._dirty = True

    async def _split_merge(self, merge: bool) -> None:
        verb = "Merge" if merge else "Split"
        hint = ("YES + NO pairs back into $1 each" if merge
                else "$1 each into one YES and one NO")
        quantity = await self.app.push_screen_wait(NumberDialog(f"{verb} · {self.title_text}",
                                                                "quantity", hint))
        if quantity is None:
            return
        call = self.api.merge_market if merge else self.api.split_market
        result = await self.call(call(self.market_id, quantity))
        if result is not None:
            cash = fmt.money(result.balance.available)
            self.trading_app.say(f"{verb}d {quantity:,}: cash {cash}")
            self.position = result.position
            self.cash = result.balance.available
            self._dirty = True

    @work(group="split", exit_on_error=False)
    async def action_split(self) -> None:
        """Turn cash into YES + NO pairs of this market."""
        await self._split_merge(merge=False)

    @work(group="split", exit_on_error=False)
    async def action_merge(self) -> None:
        """Turn YES + NO pairs of this market back into cash."""
        await self._split_merge(merge=True)
