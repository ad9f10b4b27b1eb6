"""Small modal dialogs: confirm, enter a number, modify an order, convert, choose an
equivalent order, read a report.

Invariant: a dialog validates what is typed as it is typed and only dismisses with a
value that passed validation (or with None when cancelled); the server remains the
judge of everything else, and its refusal is shown by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from pmarket.client import Event, Order
from pmarket.tui import format as fmt
from pmarket.tui.trading import Plan, Proposal
from pmarket.tui.widgets.fields import TextField


class Dialog(ModalScreen):
    """Base of the dialogs: escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CLASSES = "dialog"

    def action_cancel(self) -> None:
        """Close without a value."""
        self.dismiss(None)


class ConfirmDialog(Dialog):
    """Ask a yes/no question; dismisses with True or False.

    Args:
        question: What is about to happen, in full.
        action: The confirming button's label.
    """

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]

    def __init__(self, question: str, action: str = "Confirm") -> None:
        super().__init__()
        self.question = question
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.action_label} (y)", id="yes", variant="warning")
                yield Button("Cancel (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        """Close with ``answer``."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class NumberDialog(Dialog):
    """Ask for a quantity (whole shares) or an amount of money.

    Dismisses with an ``int`` (kind "quantity") or a ``Decimal`` (kind "amount").

    Args:
        title: The dialog's heading.
        kind: "quantity" or "amount".
        hint: A line under the heading (what is available, etc.).
    """

    def __init__(self, title: str, kind: str = "quantity", hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.kind = kind
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(self.title_text, classes="heading")
            if self.hint:
                yield Static(self.hint, classes="hint")
            yield TextField(placeholder="shares" if self.kind == "quantity"
                            else "amount, e.g. 100", id="value")
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("OK (enter)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _value(self) -> tuple[int | Decimal | None, str]:
        text = self.query_one("#value", Input).value
        if self.kind == "quantity":
            q = fmt.parse_quantity(text)
            return q, "" if q is not None else "a whole number of shares, at least 1"
        d = fmt.parse_decimal(text)
        if d is None or d <= 0:
            return None, "a positive amount"
        if d != d.quantize(Decimal("0.0001")):
            return None, "at most 4 decimal places"
        return d, ""

    @on(Input.Changed)
    def changed(self) -> None:
        _, problem = self._value()
        text = self.query_one("#value", Input).value
        self.query_one("#problem", Static).update(problem if text.strip() else "")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        value, problem = self._value()
        if value is None:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)


class ModifyDialog(Dialog):
    """Change an open order's price and/or total quantity.

    Dismisses with ``(price or None, quantity or None)``; at least one changed.

    Args:
        order: The order to modify.
        tick: Its market's tick size.
    """

    def __init__(self, order: Order, tick: Decimal) -> None:
        super().__init__()
        self.order = order
        self.tick = tick

    def compose(self) -> ComposeResult:
        o = self.order
        with Vertical(classes="box"):
            yield Label(f"Modify order #{o.id}", classes="heading")
            yield Static(f"{o.side} {o.outcome.upper()} {o.quantity} @ "
                         f"{fmt.price(o.price, self.tick)} · filled {o.filled_quantity}",
                         classes="hint")
            yield Label("Price")
            yield TextField(value=fmt.price(o.price, self.tick) if o.price else "",
                            id="price")
            yield Label("Total quantity (filled part included)")
            yield TextField(value=str(o.quantity), id="quantity")
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Modify (enter)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _values(self) -> tuple[Decimal | None, int | None, str]:
        o = self.order
        price = fmt.parse_decimal(self.query_one("#price", Input).value)
        problem = fmt.price_error(price, self.tick)
        if problem:
            return None, None, problem
        quantity = fmt.parse_quantity(self.query_one("#quantity", Input).value)
        if quantity is None:
            return None, None, "quantity must be a whole number of shares"
        if quantity <= o.filled_quantity:
            return None, None, f"quantity must exceed the {o.filled_quantity} already filled"
        new_price = price if price != o.price else None
        new_quantity = quantity if quantity != o.quantity else None
        if new_price is None and new_quantity is None:
            return None, None, "nothing changed"
        return new_price, new_quantity, ""

    @on(Input.Changed)
    def changed(self) -> None:
        self.query_one("#problem", Static).update(self._values()[2])

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        price, quantity, problem = self._values()
        if problem:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss((price, quantity))

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)


class ConvertDialog(Dialog):
    """Convert NO of some outcomes of an event into YES of every other outcome.

    Dismisses with ``(outcome_ids, quantity)``: at least one ticked outcome (in the
    event's order) and a whole number of shares.

    Args:
        event: The event (two or more outcomes).
        chosen: The outcome ids ticked at first (the row the cursor was on).
    """

    def __init__(self, event: Event, chosen: Iterable[int] = ()) -> None:
        super().__init__()
        self.event = event
        self.chosen = set(chosen)

    def compose(self) -> ComposeResult:
        with Vertical(classes="box"):
            yield Label(f"Convert NO · {self.event.title}", classes="heading")
            yield Static("NO of each ticked outcome becomes YES of every other outcome; "
                         "k ticked outcomes release $(k - 1) per share.", classes="hint")
            yield SelectionList[int](*(Selection(o.name, o.id, o.id in self.chosen)
                                       for o in self.event.outcomes), id="outcomes")
            yield TextField(placeholder="shares", id="quantity")
            yield Static("", id="problem", classes="problem")
            yield Static("", id="summary", classes="summary")
            with Horizontal(classes="buttons"):
                yield Button("Convert (enter)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#quantity", Input).focus()
        self.changed()

    def _values(self) -> tuple[list[int], int | None, str]:
        ticked = set(self.query_one("#outcomes", SelectionList).selected)
        ids = [o.id for o in self.event.outcomes if o.id in ticked]
        if not ids:
            return ids, None, "tick at least one outcome whose NO to convert"
        quantity = fmt.parse_quantity(self.query_one("#quantity", Input).value)
        if quantity is None:
            return ids, None, "a whole number of shares, at least 1"
        return ids, quantity, ""

    def _summary(self, ids: list[int], quantity: int) -> str:
        names = {o.id: o.name for o in self.event.outcomes}
        others = [o.name for o in self.event.outcomes if o.id not in ids]
        gets = f"{quantity:,} YES of {', '.join(others)}" if others else "no YES"
        return (f"{quantity:,} NO of {', '.join(names[i] for i in ids)} → {gets}, "
                f"+{fmt.money(Decimal((len(ids) - 1) * quantity))} cash")

    @on(Input.Changed)
    @on(SelectionList.SelectedChanged)
    def changed(self) -> None:
        ids, quantity, problem = self._values()
        typed = self.query_one("#quantity", Input).value.strip()
        self.query_one("#problem", Static).update(problem if typed or not ids else "")
        self.query_one("#summary", Static).update(
            self._summary(ids, quantity) if quantity is not None else "")

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        ids, quantity, problem = self._values()
        if quantity is None:
            self.query_one("#problem", Static).update(problem)
            return
        self.dismiss((ids, quantity))

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)


class ChoiceDialog(Dialog):
    """The account cannot cover a hit or a lift: choose what stands in for it, or nothing.

    Each choice is shown with its exact side, outcome, price and quantity and what it
    costs or pays; its key (``e`` for the canonical equivalent, ``a`` for the order as
    asked, cut to what the account covers) or its button picks it. Dismisses with the
    chosen ``Proposal`` or None.

    Args:
        heading: What was asked ("Hit the bid · Rain").
        plan: The plan whose ``reason`` and ``choices`` are shown.
        tick: The market's tick size.
    """

    BINDINGS = [Binding("e", "choose('e')", "Equivalent order"),
                Binding("a", "choose('a')", "As asked, reduced"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, heading: str, plan: Plan, tick: Decimal) -> None:
        super().__init__()
        self.heading = heading
        self.plan = plan
        self.tick = tick

    def compose(self) -> ComposeResult:
        with Vertical(classes="box wide-choice"):
            yield Label(self.heading, classes="heading")
            yield Static(self.plan.reason, id="reason", classes="question")
            for i, choice in enumerate(self.plan.choices):
                yield Button(f"{choice.label(self.tick)} ({choice.key})", id=f"choice-{i}",
                             variant="primary" if choice.equivalent else "default",
                             classes="choice-button")
                yield Static(("≡ " if choice.equivalent else "") + choice.detail,
                             classes="hint choice-detail")
            with Horizontal(classes="buttons"):
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#choice-0" if self.plan.choices else "#cancel", Button).focus()

    def action_choose(self, key: str) -> None:
        """Pick the choice bound to ``key`` (if there is one)."""
        chosen: Proposal | None = next((c for c in self.plan.choices if c.key == key), None)
        if chosen is not None:
            self.dismiss(chosen)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        name = event.button.id or ""
        if name.startswith("choice-"):
            self.dismiss(self.plan.choices[int(name.removeprefix("choice-"))])
        else:
            self.dismiss(None)


class ReportDialog(Dialog):
    """Show a read-only report (the audit, the user list)."""

    BINDINGS = [Binding("escape,enter,q", "cancel", "Close")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="box wide"):
            yield Label(self.title_text, classes="heading")
            with VerticalScroll():
                yield Static(self.body)
            yield Button("Close (esc)", id="close")

    @on(Button.Pressed, "#close")
    def closed(self) -> None:
        self.dismiss(None)
