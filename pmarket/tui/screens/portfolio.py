"""Portfolio: cash (deposit, withdraw), positions with cost, mark value and P&L, and
what resolutions paid.

A settled position (its event resolved) is marked at what a YES share paid and says so;
the payouts table lists each position a resolution paid, newest first: its YES and NO
shares and the cash.

Invariant: every figure is the server's (``/portfolio`` and ``/payouts``), refetched
after each action; the screen computes nothing it could get wrong.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from pmarket.client import Page, Payout, Portfolio, Position
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import ApiScreen
from pmarket.tui.screens.dialogs import NumberDialog
from pmarket.tui.screens.market import MarketScreen

REFRESH_SECONDS = 3.0
COST = Decimal("0.0001")
PAYOUTS_SHOWN = 100
NAME_WIDTH = 40


def pnl_text(value: Decimal | None) -> Text:
    """P&L coloured by sign."""
    style = "green" if value and value > 0 else "red" if value and value < 0 else ""
    return Text(fmt.signed(value), style=style)


class PortfolioScreen(ApiScreen):
    """Balance and positions."""

    BINDINGS = [
        Binding("d", "deposit", "Deposit"),
        Binding("w", "withdraw", "Withdraw"),
        Binding("x", "split", "Split"),
        Binding("g", "merge", "Merge"),
        Binding("enter", "open", "Open market", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.portfolio: Portfolio | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="balance", classes="summary-panel")
        table: DataTable = DataTable(id="positions-table", cursor_type="row",
                                     zebra_stripes=True)
        table.add_columns("Market", "YES", "avg", "NO", "avg", "Mark", "Value",
                          "Unrealized", "Realized")
        yield table
        yield Static("Payouts: none yet", id="payouts-title", classes="status")
        paid: DataTable = DataTable(id="payouts-table", cursor_type="row", zebra_stripes=True)
        paid.add_columns("Paid at", "Market", "YES", "NO", "Amount")
        yield paid
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "portfolio"
        self.set_interval(REFRESH_SECONDS, self.reload)
        self.query_one("#positions-table", DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @work(exclusive=True, group="portfolio", exit_on_error=False)
    async def reload(self) -> None:
        """Fetch balance and positions."""
        if self.trading_app.role != "user":
            self.query_one("#balance", Static).update("Admin accounts hold no positions.")
            return
        portfolio = await self.call(self.api.portfolio())
        if portfolio is None:
            return
        self.portfolio = portfolio
        self._fill(portfolio)
        payouts = await self.call(self.api.payouts(limit=PAYOUTS_SHOWN))
        if payouts is not None:
            self._fill_payouts(payouts)

    def _fill(self, p: Portfolio) -> None:
        b = p.balance
        self.query_one("#balance", Static).update(
            f"Cash {fmt.money(b.total)}  (available {fmt.money(b.available)}, reserved "
            f"{fmt.money(b.reserved)})   Positions {fmt.money(p.positions_value)}   "
            f"Total {fmt.money(p.total_value)}   P&L {fmt.signed(p.pnl)}")
        table = self.query_one("#positions-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for pos in p.positions:
            if not (pos.yes_quantity or pos.no_quantity or pos.realized_pnl):
                continue
            mark = (Text(f"{fmt.price(pos.mark_price)} paid", style="bold")
                    if pos.settled else fmt.price(pos.mark_price))
            table.add_row(
                self._market_name(pos.market_id, pos.outcome_name),
                f"{pos.yes_quantity:,}", fmt.price(pos.avg_cost_yes, COST),
                f"{pos.no_quantity:,}",
                fmt.price(pos.avg_cost_no, COST), mark, fmt.money(pos.value),
                pnl_text(pos.unrealized_pnl), pnl_text(pos.realized_pnl),
                key=str(pos.market_id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def _market_name(self, market_id: int, outcome_name: str) -> str:
        """A market as the events screen titled it, else its outcome's name (at most
        ``NAME_WIDTH`` characters, an ellipsis saying where it was cut)."""
        name = self.trading_app.titles.get(market_id) or outcome_name or f"market {market_id}"
        return name if len(name) <= NAME_WIDTH else f"{name[:NAME_WIDTH - 1]}…"

    def _fill_payouts(self, page: Page[Payout]) -> None:
        paid = fmt.money(sum((p.amount for p in page.items), Decimal(0)))
        n = len(page.items)
        which = f"the latest {n} of {page.total}" if page.total > n else f"{n}"
        self.query_one("#payouts-title", Static).update(
            f"Payouts from resolved events: {which} paid {paid}" if n
            else "Payouts: none yet")
        table = self.query_one("#payouts-table", DataTable)
        table.clear()
        for i, p in enumerate(page.items):
            table.add_row(fmt.day(p.paid_at),
                          self._market_name(p.market_id, p.outcome_name),
                          f"{p.yes_quantity:,}", f"{p.no_quantity:,}",
                          Text(fmt.money(p.amount), style="bold green" if p.amount else ""),
                          key=str(i))

    def _selected(self) -> Position | None:
        table = self.query_one("#positions-table", DataTable)
        if not table.row_count or self.portfolio is None:
            self.trading_app.fail("No position selected.")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((p for p in self.portfolio.positions if str(p.market_id) == key), None)

    def action_reload(self) -> None:
        """Refetch now."""
        self.reload()

    @on(DataTable.RowSelected, "#positions-table")
    def action_open(self) -> None:
        """Open the selected position's market."""
        pos = self._selected()
        if pos is not None:
            self.app.push_screen(MarketScreen(pos.market_id,
                                              self.trading_app.titles.get(pos.market_id, "")))

    async def _cash(self, withdraw: bool) -> None:
        available = self.portfolio.balance.available if self.portfolio else None
        amount = await self.app.push_screen_wait(NumberDialog(
            "Withdraw" if withdraw else "Deposit", "amount",
            f"available {fmt.money(available)}" if withdraw else "add cash to the account"))
        if amount is None:
            return
        call = self.api.offramp if withdraw else self.api.onramp
        balance = await self.call(call(amount))
        if balance is not None:
            self.trading_app.say(f"{'Withdrew' if withdraw else 'Deposited'} "
                                 f"{fmt.money(amount)}; available {fmt.money(balance.available)}")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_deposit(self) -> None:
        """Add cash."""
        await self._cash(withdraw=False)

    @work(group="act", exit_on_error=False)
    async def action_withdraw(self) -> None:
        """Take cash out (at most what is available)."""
        await self._cash(withdraw=True)

    async def _split_merge(self, merge: bool) -> None:
        pos = self._selected()
        if pos is None:
            return
        verb = "Merge" if merge else "Split"
        quantity = await self.app.push_screen_wait(NumberDialog(
            f"{verb} · {self.trading_app.titles.get(pos.market_id, pos.outcome_name)}",
            "quantity", f"pairs held: {min(pos.yes_quantity, pos.no_quantity):,}"
            if merge else "$1 each into one YES and one NO"))
        if quantity is None:
            return
        call = self.api.merge_market if merge else self.api.split_market
        if await self.attempt(call(pos.market_id, quantity), f"{verb}d {quantity:,}."):
            self.reload()

    @work(group="act", exit_on_error=False)
    async def action_split(self) -> None:
        """Split cash into pairs of the selected position's market."""
        await self._split_merge(merge=False)

    @work(group="act", exit_on_error=False)
    async def action_merge(self) -> None:
        """Merge pairs of the selected position's market back into cash."""
        await self._split_merge(merge=True)
