"""The help screen: every key of every screen, read from their bindings.

Invariant: the list is generated from the ``BINDINGS`` of the app and of each screen
class, so it can never disagree with what the keys actually do.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Label, Static


def key_name(key: str) -> str:
    """A key as a person types it: "right_square_bracket" → "]", "ctrl+s" stays."""
    *modifiers, last = key.strip().split("+")
    return "+".join([*modifiers, format_key(last) if last else "+"])


def key_rows(bindings: list[BindingType]) -> list[tuple[str, str]]:
    """``(keys, what they do)`` of each binding, alternatives joined with " / "."""
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            keys = " / ".join(key_name(k) for k in b.key.split(","))
            rows.append((keys, b.description or b.action))
        elif isinstance(b, tuple):
            rows.append((b[0], b[2] if len(b) > 2 else b[1]))
    return rows


def key_table(sections: list[tuple[str, list[BindingType]]]) -> Table:
    """A two-column table of keys and what they do, one section per screen."""
    table = Table(show_header=False, box=None, padding=(0, 2), expand=False)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    for title, bindings in sections:
        table.add_row(Text(title, style="bold underline"), "")
        for key, does in key_rows(bindings):
            table.add_row(key, does)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen):
    """Every key binding of the terminal."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]
    DEFAULT_CLASSES = "dialog"

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="box wide"):
            yield Label("Keys", classes="heading")
            yield Static(key_table(self.sections), id="keys")
