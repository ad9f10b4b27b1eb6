"""Open orders (or every order): cancel, cancel all, modify, jump to the market.

Invariant: after any action the table is refetched from the server, so it shows the
server's state of the orders, never a guess; a cancel-all always asks first.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from pmarket.client import Order
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import ApiScreen
from pmarket.tui.screens.dialogs import ConfirmDialog, ModifyDialog
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.ticket import describe_result

REFRESH_SECONDS = 3.0


class OrdersScreen(ApiScreen):
    """The user's orders."""

    BINDINGS = [
        Binding("c", "cancel_order", "Cancel"),
        Binding("C", "cancel_all", "Cancel all"),
        Binding("m", "modify", "Modify"),
        Binding("a", "toggle_all", "Open/all"),
        Binding("enter", "open", "Open market", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Order] = []
        self.show_all = False
        self.ticks: dict[int, Decimal] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable = DataTable(id="orders-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "Market", "Side", "Out", "Type", "Price", "Qty", "Filled",
                          "Left", "TIF", "Status", "Placed")
        yield table
        yield Static("", id="count", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "orders"
        self.set_interval(REFRESH_SECONDS, self.reload)
        self.query_one(DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @work(exclusive=True, group="orders", exit_on_error=False)
    async def reload(self) -> None:
        """Fetch the orders."""
        if self.trading_app.role != "user":
            self.query_one("#count", Static).update("Admin accounts have no orders.")
            return
        page = await self.call(self.api.orders(status="all" if self.show_all else "open",
                                               limit=500))
        if page is None:
            return
        self.orders = sorted(page.items, key=lambda o: o.id, reverse=True)
        self._fill(page.total)

    def _fill(self, total: int) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        titles = self.trading_app.titles
        for o in self.orders:
            colour = "green" if o.side == "buy" else "red"
            table.add_row(
                str(o.id), (titles.get(o.market_id) or f"market {o.market_id}")[:40],
                Text(o.side, style=colour), o.outcome.upper(), o.type,
                fmt.price(o.price, self.ticks.get(o.market_id, Decimal("0.01"))),
                f"{o.quantity:,}", f"{o.filled_quantity:,}", f"{o.remaining_quantity:,}",
                o.time_in_force, o.status.replace("_", " "), fmt.when(o.created_at),
                key=str(o.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        which = "orders" if self.show_all else "open orders"
        self.query_one("#count", Static).update(
            f"{len(self.orders)} of {total} {which} · c cancel · C cancel all · m modify · "
            "a open/all")

    def _selected(self) -> Order | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.trading_app.fail("No order selected.")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((o for o in self.orders if str(o.id) == key), None)

    def action_reload(self) -> None:
        """Refetch now."""
        self.reload()

    def action_toggle_all(self) -> None:
        """Show open orders only, or every order."""
        self.show_all = not self.show_all
        self.reload()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        """Open the selected order's market."""
        order = self._selected()
        if order is not None:
            self.app.push_screen(MarketScreen(order.market_id,
                                              self.trading_app.titles.get(order.market_id, "")))

    @work(group="act", exit_on_error=False)
    async def action_cancel_order(self) -> None:
        """Cancel the selected order."""
        order = self._selected()
        if order is None:
            return
        done = await self.call(self.api.cancel_order(order.id))
        if done is not None:
            self.trading_app.say(f"Cancelled order #{order.id} ({done.status}).")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_cancel_all(self) -> None:
        """Cancel every open order, after confirming."""
        if not await self.app.push_screen_wait(
                ConfirmDialog("Cancel ALL your open orders in every market?", "Cancel all")):
            return
        ids = await self.call(self.api.cancel_all())
        if ids is not None:
            self.trading_app.say(f"Cancelled {len(ids)} order{'s' * (len(ids) != 1)}.")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_modify(self) -> None:
        """Change the selected order's price or quantity."""
        order = self._selected()
        if order is None:
            return
        if not order.is_open:
            self.trading_app.fail(f"Order #{order.id} is {order.status}; only open orders "
                                  "can be modified.")
            return
        tick = self.ticks.get(order.market_id)
        if tick is None:
            market = await self.call(self.api.market(order.market_id))
            tick = market.tick_size if market else Decimal("0.01")
            self.ticks[order.market_id] = tick
        change = await self.app.push_screen_wait(ModifyDialog(order, tick))
        if change is None:
            return
        price, quantity = change
        result = await self.call(self.api.modify_order(order.id, price=price,
                                                       quantity=quantity))
        if result is not None:
            self.trading_app.say("Modified " + describe_result(result, tick))
        self.reload()
