"""The events browser: search as you type, filter by category and status, open a market.

A resolved event says on each outcome's row what became of it (the Status column:
"won", "lost" or "void"; "YES won" / "NO won" for a yes/no question).

Invariant: the table shows the answer to the latest query only — each keystroke
restarts the (debounced) fetch, and an older answer arriving late is discarded.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from pmarket.client import Event
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import ApiScreen
from pmarket.tui.screens.dialogs import ConvertDialog, NumberDialog, ReportDialog
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.widgets.fields import TextField

STATUSES = ("active", "closed", "resolved")
DEBOUNCE_SECONDS = 0.25
REFRESH_SECONDS = 5.0


def _status(event: Event, result: str | None, row: int) -> Text | str:
    """The Status cell of an outcome's row: the event's status on its first row, or once
    resolved, what became of this outcome."""
    if result is None:
        return event.status if row == 0 else ""
    text, style = fmt.outcome_result(result, len(event.outcomes) == 1)
    return Text(text, style=style)


class EventsScreen(ApiScreen):
    """Every event, one row per outcome, with its quote."""

    BINDINGS = [
        Binding("slash", "search", "Search"),
        Binding("enter", "open", "Open market", show=False),
        Binding("x", "split_event", "Split set"),
        Binding("g", "merge_event", "Merge set"),
        Binding("o", "convert", "Convert NO"),
        Binding("k", "event_book", "Event book"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.total = 0
        self.categories: set[str] = set()
        self._query_id = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="filters"):
            yield TextField(placeholder="search events… (/)", id="search")
            yield Select([], prompt="any category", id="category", allow_blank=True)
            yield Select([(s, s) for s in STATUSES], prompt="any status", id="status",
                         allow_blank=True)
        table: DataTable = DataTable(id="events-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("Event", "Outcome", "Last", "Bid", "Ask", "Volume", "Status")
        yield table
        yield Static("", id="count", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "events"
        self.query_one("#events-table", DataTable).focus()
        self.set_interval(REFRESH_SECONDS, self.reload)
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def _filters(self) -> tuple[str, str | None, str | None]:
        q = self.query_one("#search", Input).value.strip()
        category = self.query_one("#category", Select).value
        status = self.query_one("#status", Select).value
        return (q, category if isinstance(category, str) else None,
                status if isinstance(status, str) else None)

    @on(Input.Changed, "#search")
    @on(Select.Changed)
    def filters_changed(self) -> None:
        self.reload(debounce=True)

    @on(Input.Submitted, "#search")
    def search_done(self) -> None:
        self.query_one("#events-table", DataTable).focus()

    @work(exclusive=True, group="events", exit_on_error=False)
    async def reload(self, debounce: bool = False) -> None:
        """Fetch the events matching the filters (debounced while typing)."""
        self._query_id += 1
        mine = self._query_id
        if debounce:
            await asyncio.sleep(DEBOUNCE_SECONDS)
        q, category, status = self._filters()
        page = await self.call(self.api.events(q=q, category=category, status=status,
                                               limit=500))
        if page is None or mine != self._query_id:
            return
        self.events, self.total = page.items, page.total
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#events-table", DataTable)
        keep = table.cursor_row
        table.clear()
        titles = self.trading_app.titles
        for ev in self.events:
            if ev.category and ev.category not in self.categories:
                self.categories.add(ev.category)
                self.query_one("#category", Select).set_options(
                    (c, c) for c in sorted(self.categories))
            for i, o in enumerate(ev.outcomes):
                titles[o.market_id] = f"{ev.title} · {o.name}"
                table.add_row(
                    ev.title if i == 0 else Text("  ″", style="dim"), o.name,
                    fmt.price(o.last_price), Text(fmt.price(o.best_bid), style="green"),
                    Text(fmt.price(o.best_ask), style="red"), f"{o.volume:,}",
                    _status(ev, o.result, i), key=f"{ev.id}:{o.market_id}")
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        shown = sum(len(e.outcomes) for e in self.events)
        self.query_one("#count", Static).update(
            f"{len(self.events)} of {self.total} events · {shown} markets · "
            "enter: open · /: search · F1: help")

    def _selected(self) -> tuple[Event, int] | None:
        table = self.query_one("#events-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        event_id, market_id = (int(x) for x in str(key).split(":"))
        event = next((e for e in self.events if e.id == event_id), None)
        return (event, market_id) if event else None

    def action_search(self) -> None:
        """Focus the search box."""
        self.query_one("#search", Input).focus()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        """Open the selected outcome's market."""
        chosen = self._selected()
        if chosen is None:
            return
        event, market_id = chosen
        self.app.push_screen(MarketScreen(market_id, self.trading_app.titles.get(
            market_id, event.title)))

    def action_reload(self) -> None:
        """Refetch now."""
        self.reload()

    def _multi_outcome(self, refusal: str) -> tuple[Event, int] | None:
        """The selected row as ``_selected``, if its event has two or more outcomes;
        otherwise None, after showing ``refusal``."""
        chosen = self._selected()
        if chosen is not None and len(chosen[0].outcomes) < 2:
            self.trading_app.fail(refusal)
            return None
        return chosen

    async def _set(self, merge: bool) -> None:
        chosen = self._multi_outcome("Complete sets exist only for events with two or more "
                                     "outcomes; use split/merge on the market (x/g there).")
        if chosen is None:
            return
        event = chosen[0]
        verb = "Merge" if merge else "Split"
        hint = (f"one YES of each of the {len(event.outcomes)} outcomes back into $1"
                if merge else f"$1 into one YES of each of the {len(event.outcomes)} outcomes")
        quantity = await self.app.push_screen_wait(
            NumberDialog(f"{verb} sets · {event.title}", "quantity", hint))
        if quantity is None:
            return
        call = self.api.merge_event if merge else self.api.split_event
        result = await self.call(call(event.id, quantity))
        if result is not None:
            self.trading_app.say(f"{verb}d {quantity:,} sets of {event.title}: cash "
                                 f"{fmt.money(result.balance.available)}")

    @work(group="set", exit_on_error=False)
    async def action_split_event(self) -> None:
        """Turn cash into complete sets of the selected event."""
        await self._set(merge=False)

    @work(group="set", exit_on_error=False)
    async def action_merge_event(self) -> None:
        """Turn complete sets of the selected event back into cash."""
        await self._set(merge=True)

    @work(group="set", exit_on_error=False)
    async def action_convert(self) -> None:
        """Turn NO of ticked outcomes of the selected event into YES of all the others."""
        chosen = self._multi_outcome("Convert exists only for events with two or more "
                                     "outcomes.")
        if chosen is None:
            return
        event, market_id = chosen
        row = [o.id for o in event.outcomes if o.market_id == market_id]
        picked = await self.app.push_screen_wait(ConvertDialog(event, row))
        if picked is None:
            return
        outcome_ids, quantity = picked
        result = await self.call(self.api.convert(event.id, outcome_ids, quantity))
        if result is not None:
            names = ", ".join(o.name for o in event.outcomes if o.id in outcome_ids)
            self.trading_app.say(f"Converted {quantity:,} NO of {names} ({event.title}): "
                                 f"cash {fmt.money(result.balance.available)}")

    @work(group="book", exit_on_error=False)
    async def action_event_book(self) -> None:
        """Show every outcome's top of book and the implied probability sum."""
        chosen = self._selected()
        if chosen is None:
            return
        book = await self.call(self.api.event_orderbook(chosen[0].id, depth=1))
        if book is None:
            return
        text = Text()
        text.append(f"{'outcome':<24}{'bid':>8}{'ask':>8}{'mid':>9}\n", style="bold")
        for o in book.outcomes:
            b = o.book
            text.append(f"{o.name[:23]:<24}{fmt.price(b.best_bid):>8}"
                        f"{fmt.price(b.best_ask):>8}{fmt.price(b.mid, fmt.ONE / 1000):>9}\n")
        text.append(f"\nimplied probability sum: "
                    f"{fmt.price(book.implied_probability_sum, fmt.ONE / 1000)}", style="bold")
        self.app.push_screen(ReportDialog(f"Event book · {chosen[0].title}", text))
