"""The order ticket: buy/sell, YES/NO, limit/market, validated as it is typed.

Invariant: the Place button only sends an order that passed local validation (price on
the market's grid strictly inside (0, 1), whole quantity ≥ 1, an expiry for gtd); the
server's verdict is then shown as it is — the placed order's status and fills, or its
error message, with the ticket left open to correct it. The summary always says where
the order rests on the canonical YES book and which order of the other outcome is the
same (ctrl+o switches to it), so "buy NO at p is an ask at 1 - p" is never a surprise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from pmarket.client import ApiError, Book, ClientError, Market, OrderResult, OrderSpec
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import describe
from pmarket.tui.screens.dialogs import Dialog
from pmarket.tui.widgets.fields import TextField

TIFS = ("gtc", "ioc", "fok", "gtd")


@dataclass(frozen=True, slots=True)
class TicketPreset:
    """What the ticket opens with (a key such as hit-bid fills it in)."""

    side: str = "buy"
    outcome: str = "yes"
    type: str = "limit"
    price: Decimal | None = None
    quantity: int | None = None
    time_in_force: str = "gtc"
    note: str = ""
    """Why the ticket says what it says (e.g. the equivalent chosen for a hit)."""


def describe_result(result: OrderResult, tick: Decimal) -> str:
    """One line saying what the server did with a placed order."""
    o = result.order
    line = (f"#{o.id} {o.side} {o.quantity} {o.outcome.upper()} "
            f"@ {fmt.price(o.price, tick) if o.price is not None else 'market'}: "
            f"{o.status.replace('_', ' ')}")
    if result.trades:
        filled = sum(t.quantity for t in result.trades)
        notional = sum((t.price * t.quantity for t in result.trades), Decimal(0))
        line += f", {filled} filled at avg {fmt.price(notional / filled, tick / 10)}"
    return line


def _radio(name: str, options: tuple[str, ...], chosen: str) -> RadioSet:
    return RadioSet(*(RadioButton(o.upper(), value=o == chosen, name=o) for o in options),
                    id=name, classes="choice")


class OrderTicket(Dialog):
    """A modal order ticket for one market; dismisses with the ``OrderResult``.

    Args:
        market: The market traded.
        title: The event and outcome, shown as the heading.
        books: The market's book in each view ("yes"/"no"), for estimates.
        preset: Initial field values.
        fee_rate: The event's taker fee rate (the summary bounds what a taking order
            pays; 0: no fee line).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"),
                Binding("ctrl+s", "place", "Place", show=True),
                Binding("ctrl+o", "equivalent", "Equivalent order (other outcome)"),
                Binding("up", "step(1)", "Price +1 tick / quantity +1 lot (field)",
                        key_display="↑"),
                Binding("down", "step(-1)", "Price -1 tick / quantity -1 lot (field)",
                        key_display="↓")]

    def __init__(self, market: Market, title: str, books: dict[str, Book | None],
                 preset: TicketPreset, fee_rate: Decimal = Decimal(0)) -> None:
        super().__init__()
        self.market = market
        self.fee_rate = fee_rate
        self.title_text = title
        self.books = books
        self.preset = preset

    def compose(self) -> ComposeResult:
        p = self.preset
        tick = self.market.tick_size
        with Vertical(classes="box ticket"):
            yield Label(f"Order · {self.title_text}", classes="heading")
            if p.note:
                yield Static(p.note, id="note", classes="hint")
            with Horizontal(classes="row"):
                yield Label("Side", classes="field")
                yield _radio("side", ("buy", "sell"), p.side)
            with Horizontal(classes="row"):
                yield Label("Outcome", classes="field")
                yield _radio("outcome", ("yes", "no"), p.outcome)
            with Horizontal(classes="row"):
                yield Label("Type", classes="field")
                yield _radio("type", ("limit", "market"), p.type)
            with Horizontal(classes="row"):
                yield Label("Price", classes="field")
                yield TextField(value=fmt.price(p.price, tick) if p.price is not None else "",
                                placeholder=f"0 < price < 1, tick {tick}", id="price")
            with Horizontal(classes="row"):
                yield Label("Quantity", classes="field")
                yield TextField(value=str(p.quantity or ""), placeholder="shares",
                                id="quantity")
            with Horizontal(classes="row"):
                yield Label("Time in force", classes="field")
                yield _radio("tif", TIFS, p.time_in_force)
            with Horizontal(classes="row"):
                yield Label("Expires (min)", classes="field")
                yield TextField(value="60", id="expires", disabled=p.time_in_force != "gtd")
            with Horizontal(classes="row"):
                yield Label("", classes="field")
                yield Checkbox("post-only", id="post_only")
            yield Static("", id="summary", classes="summary")
            yield Static("", id="problem", classes="problem")
            yield Static(f"↑↓ price ±1 tick · quantity ±1 lot ({fmt.LOT}) · ctrl+o equivalent",
                         classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Place (ctrl+s)", id="place", variant="success")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#quantity" if self.preset.price is not None else "#price",
                       Input).focus()
        self.refresh_summary()

    def _choice(self, name: str) -> str:
        pressed = self.query_one(f"#{name}", RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else ""

    def build(self) -> tuple[OrderSpec | None, str]:
        """The order the ticket describes, or why it cannot be placed yet."""
        tick = self.market.tick_size
        side, outcome, kind = self._choice("side"), self._choice("outcome"), self._choice("type")
        tif = self._choice("tif")
        price_text = self.query_one("#price", Input).value.strip()
        price = fmt.parse_decimal(price_text) if price_text else None
        if kind == "limit" or price_text:
            problem = fmt.price_error(price, tick)
            if problem:
                return None, problem if price_text or kind == "limit" else ""
        quantity = fmt.parse_quantity(self.query_one("#quantity", Input).value)
        if quantity is None:
            return None, "quantity must be a whole number of shares, at least 1"
        expires_at = None
        if tif == "gtd":
            minutes = fmt.parse_quantity(self.query_one("#expires", Input).value)
            if minutes is None:
                return None, "gtd needs an expiry in whole minutes"
            expires_at = datetime.now(UTC) + timedelta(minutes=minutes)
        post_only = self.query_one("#post_only", Checkbox).value
        if post_only and kind == "market":
            return None, "a market order always takes liquidity: post-only is impossible"
        return OrderSpec(self.market.id, outcome, side, quantity, price, kind,
                         None if kind == "market" else tif, expires_at,
                         post_only or None), ""

    def _walk(self, spec: OrderSpec) -> tuple[Decimal, int]:
        """Cost of a market order walking the visible book: (notional, shares reachable)."""
        book = self.books.get(spec.outcome)
        if book is None:
            return Decimal(0), 0
        levels = book.asks if spec.side == "buy" else book.bids
        left, notional = spec.quantity, Decimal(0)
        for lv in levels:
            if spec.price is not None and (
                    lv.price > spec.price if spec.side == "buy" else lv.price < spec.price):
                break
            take = min(left, lv.quantity)
            notional += take * lv.price
            left -= take
            if not left:
                break
        return notional, spec.quantity - left

    def refresh_summary(self) -> None:
        """Redraw the estimate line and the validation message."""
        spec, problem = self.build()
        self.query_one("#expires", Input).disabled = self._choice("tif") != "gtd"
        self.query_one("#problem", Static).update(problem)
        summary = self.query_one("#summary", Static)
        if spec is None:
            summary.update("")
            return
        verb = "Buy" if spec.side == "buy" else "Sell"
        where = ("market" if spec.type == "market" and spec.price is None
                 else f"{fmt.price(Decimal(spec.price), self.market.tick_size)}"
                 if spec.price is not None else "market")
        head = f"{verb} {spec.quantity:,} {spec.outcome.upper()} @ {where}"
        if spec.type == "market":
            notional, reachable = self._walk(spec)
            cap = f" (book has {reachable:,})" if reachable < spec.quantity else ""
            if spec.side == "buy":
                worst = (Decimal(spec.price) * spec.quantity if spec.price is not None
                         else notional)
                line = (f"{head}\nest. cost {fmt.money(notional)} · reserve ≤ "
                        f"{fmt.money(worst)} · max payout {fmt.money(Decimal(reachable))}{cap}")
            else:
                line = f"{head}\nest. proceeds {fmt.money(notional)}{cap}"
        else:
            est = fmt.estimate(spec.side, Decimal(spec.price or 0), spec.quantity)
            if spec.side == "buy":
                line = (f"{head}\ncost {fmt.money(est.cost)} · max payout "
                        f"{fmt.money(est.max_payout)} · profit if it wins "
                        f"{fmt.money(est.max_payout - est.cost)}")
            else:
                line = f"{head}\nproceeds {fmt.money(est.max_payout)}"
        summary.update(f"{line}{self._fee_line(spec)}\n{self._book_line(spec)}")

    def _fee_line(self, spec: OrderSpec) -> str:
        """The most ``spec`` pays in taker fees if it takes, or nothing without a fee.

        A market order without a price is bounded at the worst price on the grid, where
        the engine holds a market buy's fee too."""
        if not self.fee_rate:
            return ""
        tick = self.market.tick_size
        limit = (Decimal(spec.price) if spec.price is not None
                 else fmt.ONE - tick if spec.side == "buy" else tick)
        bound = fmt.fee_bound(spec.side, limit, spec.quantity, self.fee_rate)
        how = ("held with the cash while it takes, the unused part back at once"
               if spec.side == "buy" else "out of the proceeds")
        return (f"\ntaker fee {fmt.rate(self.fee_rate)}: at most {fmt.money(bound)} if it "
                f"takes ({how}); resting pays none")

    def _book_line(self, spec: OrderSpec) -> str:
        """Where ``spec`` rests on the YES book and the same order in the other outcome."""
        tick = self.market.tick_size
        side, outcome, other_price = fmt.mirror(spec.side, spec.outcome,
                                                Decimal(spec.price) if spec.price is not None
                                                else None)
        same = f"{side} {spec.quantity:,} {outcome.upper()}"
        if spec.price is None:
            takes = "asks" if fmt.on_book(spec.side, spec.outcome, fmt.ONE)[0] == "bid" \
                else "bids"
            return f"YES book: takes the {takes} · same as a market {same} (ctrl+o)"
        where, yes_price = fmt.on_book(spec.side, spec.outcome, Decimal(spec.price))
        return (f"YES book: {where} {fmt.price(yes_price, tick)} · same as {same} @ "
                f"{fmt.price(other_price, tick)} (ctrl+o)")

    def action_step(self, steps: int) -> None:
        """Step the focused field: the price by a tick, the quantity by a lot."""
        field = self.focused
        if not isinstance(field, Input) or field.id not in ("price", "quantity"):
            return
        if field.id == "quantity":
            quantity = fmt.parse_quantity(field.value)
            field.value = str(fmt.LOT if quantity is None and steps > 0
                              else fmt.step_quantity(quantity or 1, steps))
            return
        tick = self.market.tick_size
        value = fmt.parse_decimal(field.value)
        if value is None or not 0 < value < 1:
            field.value = fmt.price(self._start_price(), tick)
        else:
            field.value = fmt.price(fmt.step_price(value, tick, steps), tick)

    def _start_price(self) -> Decimal:
        """Where an empty price field starts: the best price on the order's own side."""
        book = self.books.get(self._choice("outcome") or "yes")
        best = None
        if book is not None:
            best = book.best_bid if self._choice("side") == "buy" else book.best_ask
            best = best if best is not None else book.last_price
        return best if best is not None else Decimal("0.5")

    def action_equivalent(self) -> None:
        """Switch to the same order in the other outcome's terms (sell YES at p → buy NO
        at 1 - p), keeping the quantity."""
        side, outcome, _ = fmt.mirror(self._choice("side"), self._choice("outcome"), None)
        price_field = self.query_one("#price", Input)
        value = fmt.parse_decimal(price_field.value)
        if value is not None and 0 < value < 1:
            price_field.value = fmt.price(fmt.ONE - value, self.market.tick_size)
        for name, chosen in (("side", side), ("outcome", outcome)):
            for button in self.query_one(f"#{name}", RadioSet).query(RadioButton):
                if button.name == chosen:
                    button.value = True
        self.refresh_summary()

    @on(Input.Changed)
    @on(RadioSet.Changed)
    @on(Checkbox.Changed)
    def changed(self) -> None:
        self.refresh_summary()

    @on(Input.Submitted)
    @on(Button.Pressed, "#place")
    async def action_place(self) -> None:
        """Send the order; stay open with the server's message if it is refused."""
        spec, problem = self.build()
        if spec is None:
            self.query_one("#problem", Static).update(problem)
            return
        try:
            result = await self.app.api.place(spec)  # type: ignore[attr-defined]
        except ClientError as exc:
            message = describe(exc)
            if isinstance(exc, ApiError):
                message = f"Refused ({exc.code}): {exc.message}"
            self.query_one("#problem", Static).update(message)
            self.app.notify(message, severity="error")
            return
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)
