"""Admin: create events, close/reopen, resolve or void (confirmed), delete, audit, fees,
users.

Invariant: nothing irreversible happens without a confirmation naming exactly what will
happen (which event, which winner or void); the server's answer — the payout total or
its refusal — is shown as it is.
"""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from pmarket.client import Event
from pmarket.tui import format as fmt
from pmarket.tui.screens.base import ApiScreen
from pmarket.tui.screens.dialogs import ConfirmDialog, Dialog, ReportDialog
from pmarket.tui.widgets.fields import TextField

REFRESH_SECONDS = 5.0


class CreateEventDialog(Dialog):
    """Fields of a new event; dismisses with the keyword arguments of ``create_event``."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="box ticket"):
            yield Label("New event", classes="heading")
            for name, hint in (("title", "Who wins the final?"),
                               ("outcomes", "comma separated; empty: one yes/no market"),
                               ("category", "e.g. sports"), ("description", ""),
                               ("tick_size", "0.01 (or 0.001, 0.0001)"),
                               ("fee_rate", "takers' fee, 0 to 0.25; empty: the default"),
                               ("slug", "optional")):
                with Horizontal(classes="row"):
                    yield Label(name.replace("_", " ").capitalize(), classes="field")
                    yield TextField(placeholder=hint, id=name)
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Create (enter)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _fields(self) -> tuple[dict | None, str]:
        values = {n: self.query_one(f"#{n}", Input).value.strip()
                  for n in ("title", "outcomes", "category", "description", "tick_size",
                            "fee_rate", "slug")}
        if not values["title"]:
            return None, "a title is required"
        outcomes = [o.strip() for o in values.pop("outcomes").split(",") if o.strip()]
        if len(set(outcomes)) != len(outcomes):
            return None, "outcome names must differ"
        tick = values["tick_size"]
        if tick and (fmt.parse_decimal(tick) is None
                     or not 0 < (fmt.parse_decimal(tick) or 0) < 1):
            return None, "tick size must be a number between 0 and 1"
        rate = values["fee_rate"]
        if rate and not 0 <= (fmt.parse_decimal(rate) or -1) <= Decimal("0.25"):
            return None, "fee rate must be a number from 0 to 0.25"
        fields = {k: v for k, v in values.items() if v}
        fields["outcomes"] = outcomes or None
        return fields, ""

    @on(Input.Changed)
    def changed(self) -> None:
        self.query_one("#problem", Static).update(self._fields()[1])

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        fields, problem = self._fields()
        if fields is None:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss(fields)

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)


class ResolveDialog(Dialog):
    """Pick the winning outcome; dismisses with ``("win", outcome_id or None)``."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        options = [Option(f"{o.name} wins", id=str(o.id)) for o in self.event.outcomes]
        if len(self.event.outcomes) == 1:
            options.append(Option("No (the outcome does not happen)", id="none"))
        with Vertical(classes="box"):
            yield Label(f"Resolve · {self.event.title}", classes="heading")
            yield OptionList(*options, id="winner")
            yield Static("enter: choose · esc: cancel", classes="hint")

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        oid = event.option.id
        self.dismiss(("win", None if oid == "none" else int(oid or 0)))


class AdminScreen(ApiScreen):
    """Every event, with the admin's actions on the selected one."""

    BINDINGS = [
        Binding("n", "create", "New event"),
        Binding("x", "set_status('closed')", "Close"),
        Binding("o", "set_status('active')", "Reopen"),
        Binding("v", "resolve", "Resolve"),
        Binding("V", "void", "Void"),
        Binding("delete", "delete", "Delete"),
        Binding("a", "audit", "Audit"),
        Binding("f", "fees", "Fees"),
        Binding("u", "users", "Users"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable = DataTable(id="admin-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "Event", "Category", "Outcomes", "Status", "Volume", "Fee",
                          "Closes")
        yield table
        yield Static("", id="count", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "admin"
        self.set_interval(REFRESH_SECONDS, self.reload)
        self.query_one(DataTable).focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @work(exclusive=True, group="admin", exit_on_error=False)
    async def reload(self) -> None:
        """Fetch every event."""
        page = await self.call(self.api.events(limit=500))
        if page is None:
            return
        self.events = sorted(page.items, key=lambda e: e.id, reverse=True)
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for e in self.events:
            style = {"active": "green", "closed": "yellow"}.get(e.status, "dim")
            status = f"{e.status}: {fmt.resolution(e)}" if e.resolution else e.status
            table.add_row(str(e.id), e.title[:40], e.category, ", ".join(
                o.name for o in e.outcomes)[:30], Text(status, style=style),
                f"{sum(o.volume for o in e.outcomes):,}", fmt.rate(e.fee_rate),
                fmt.day(e.close_time), key=str(e.id))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))
        self.query_one("#count", Static).update(
            f"{len(self.events)} of {page.total} events · n new · x close · o reopen · "
            "v resolve · V void · del delete · a audit · f fees · u users")

    def _selected(self) -> Event | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.trading_app.fail("No event selected.")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((e for e in self.events if str(e.id) == key), None)

    def action_reload(self) -> None:
        """Refetch now."""
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_create(self) -> None:
        """Create an event with outcomes."""
        fields = await self.app.push_screen_wait(CreateEventDialog())
        if fields is None:
            return
        title = fields.pop("title")
        outcomes = fields.pop("outcomes")
        event = await self.call(self.api.create_event(title, outcomes, **fields))
        if event is not None:
            self.trading_app.say(f"Created event #{event.id} “{event.title}” with "
                                 f"{len(event.outcomes)} market(s).")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_set_status(self, status: str) -> None:
        """Close (cancels open orders) or reopen the selected event."""
        event = self._selected()
        if event is None:
            return
        if status == "closed" and not await self.app.push_screen_wait(ConfirmDialog(
                f"Close “{event.title}”? Trading stops and every open order in it is "
                "cancelled.", "Close event")):
            return
        verb = "Closed" if status == "closed" else "Reopened"
        await self.attempt(self.api.update_event(event.id, status=status),
                           f"{verb} “{event.title}”.")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_resolve(self) -> None:
        """Resolve the selected event with a winner, after confirming."""
        event = self._selected()
        if event is None:
            return
        choice = await self.app.push_screen_wait(ResolveDialog(event))
        if choice is None:
            return
        winner_id = choice[1]
        winner = next((o.name for o in event.outcomes if o.id == winner_id), "NO")
        if not await self.app.push_screen_wait(ConfirmDialog(
                f"Resolve “{event.title}” with winner: {winner}? Every open order is "
                "cancelled and every winning share pays $1. This cannot be undone.",
                "Resolve")):
            return
        result = await self.call(self.api.resolve_event(event.id, winner_id))
        if result is not None:
            self.trading_app.say(f"Resolved “{event.title}”: {winner} wins; paid out "
                                 f"{fmt.money(result.payouts_total)}.")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_void(self) -> None:
        """Void the selected event, after confirming."""
        event = self._selected()
        if event is None:
            return
        n = max(len(event.outcomes), 2)
        if not await self.app.push_screen_wait(ConfirmDialog(
                f"VOID “{event.title}”? Every YES pays 1/{n} and every NO 1 - 1/{n}. "
                "This cannot be undone.", "Void")):
            return
        result = await self.call(self.api.void_event(event.id))
        if result is not None:
            self.trading_app.say(f"Voided “{event.title}”; paid out "
                                 f"{fmt.money(result.payouts_total)}.")
        self.reload()

    @work(group="act", exit_on_error=False)
    async def action_delete(self) -> None:
        """Delete the selected event (only if nothing traded or is held)."""
        event = self._selected()
        if event is None:
            return
        if not await self.app.push_screen_wait(ConfirmDialog(
                f"Delete “{event.title}” for good?", "Delete")):
            return
        await self.attempt(self.api.delete_event(event.id), f"Deleted “{event.title}”.")
        self.reload()

    @work(group="report", exit_on_error=False)
    async def action_audit(self) -> None:
        """Show the exchange-wide money audit."""
        audit = await self.call(self.api.audit())
        if audit is None:
            return
        text = Text()
        text.append("BALANCED\n\n" if audit.ok else "OUT OF BALANCE\n\n",
                    style="bold green" if audit.ok else "bold red")
        for name in ("deposits", "withdrawals", "user_cash", "collateral", "fees",
                     "difference"):
            text.append(f"{name.replace('_', ' '):<14}{fmt.money(getattr(audit, name)):>18}\n")
        if audit.markets:
            text.append(f"\n{len(audit.markets)} markets checked\n", style="bold")
            for mk in audit.markets[:50]:
                text.append("  " + ", ".join(f"{k}={v}" for k, v in mk.items()) + "\n")
        self.app.push_screen(ReportDialog("Audit", text))

    @work(group="report", exit_on_error=False)
    async def action_fees(self) -> None:
        """Show the taker fees collected, in total and per event."""
        fees = await self.call(self.api.fees())
        if fees is None:
            return
        titles = {e.id: e.title for e in self.events}
        text = Text()
        text.append(f"{'total':<40}{fmt.money(fees.total):>18}\n\n", style="bold")
        for event_id, amount in sorted(fees.amounts().items(), key=lambda kv: -kv[1])[:50]:
            name = f"#{event_id} {titles.get(event_id, '')}"[:38]
            text.append(f"{name:<40}{fmt.money(amount):>18}\n")
        if not fees.by_event:
            text.append("No fees collected yet.\n", style="dim")
        self.app.push_screen(ReportDialog("Fees", text))

    @work(group="report", exit_on_error=False)
    async def action_users(self) -> None:
        """Show the user accounts."""
        page = await self.call(self.api.users(limit=500))
        if page is None:
            return
        text = Text()
        text.append(f"{page.total} users\n\n", style="bold")
        for u in page.items:
            text.append(f"#{u.id:<6}{u.name[:20]:<21}{u.email[:30]:<31}{fmt.day(u.created_at)}\n")
        self.app.push_screen(ReportDialog("Users", text))
