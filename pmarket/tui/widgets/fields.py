"""The terminal's text field: an ``Input`` that follows the app's cursor-blink setting.

Every text field of the terminal is a ``TextField`` (a test checks that no screen
builds a bare ``Input``), so one switch — ``TradingApp(cursor_blink=False)`` — turns
blinking off everywhere: for people who find it distracting, and for screenshots, whose
cursor would otherwise be drawn or not depending on when the 0.5 s blink timer last
fired.
"""

from __future__ import annotations

from textual.widgets import Input


class TextField(Input):
    """A text input whose cursor blinks only if the app allows it."""

    def on_mount(self) -> None:
        if not getattr(self.app, "cursor_blink", True):
            # The watcher pauses Input's blink timer and leaves the cursor drawn; with
            # the reactive False, focus and key presses no longer restart the timer.
            self.cursor_blink = False
