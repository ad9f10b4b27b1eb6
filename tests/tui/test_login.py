"""Signing in and out: command chords in text fields, the session ended by F10, blinking.

The class of the Ctrl+A defect: a screen's command chord (ctrl+…) that a focusable
widget on it also binds is taken by that widget whenever it has focus (Input binds
ctrl+a to "home", ctrl+u to "delete to the left", ctrl+e to "end"...). The first test
checks every chord of every screen of the terminal against every focusable widget class
the terminal uses.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    OptionList,
    RadioButton,
    RadioSet,
    Select,
    SelectionList,
)

import pmarket.tui
from pmarket.tui import TradingApp
from pmarket.tui.screens.admin import AdminScreen
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.widgets.fields import TextField
from tests.tui.fake_exchange import FakeExchange
from tests.tui.test_screens import fill_login, sign_up, wait_for

FOCUSABLE = (Input, DataTable, RadioSet, RadioButton, Checkbox, Button, SelectionList,
             OptionList, Select)


def tui_modules():
    for info in pkgutil.walk_packages(pmarket.tui.__path__, "pmarket.tui."):
        yield importlib.import_module(info.name)


def chords(bindings) -> list[tuple[str, Binding]]:
    out = []
    for b in bindings:
        if isinstance(b, Binding):
            for key in b.key.split(","):
                key = key.strip()
                if any(key.startswith(m) for m in ("ctrl+", "alt+", "super+")):
                    out.append((key, b))
    return out


def test_no_command_chord_is_swallowed_by_a_focused_widget():
    taken = {key: cls.__name__ for cls in FOCUSABLE for cls_ in cls.__mro__
             for key, _ in chords(getattr(cls_, "BINDINGS", []))}
    screens = {cls for module in tui_modules() for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, Screen)
               and cls.__module__.startswith("pmarket.tui")}
    assert LoginScreen in screens and len(screens) >= 10
    swallowed = [f"{screen.__name__}: {key} ({taken[key]} takes it)"
                 for screen in [TradingApp, *screens]
                 for key, b in chords(vars(screen).get("BINDINGS", []))
                 if key in taken and not b.priority]
    assert swallowed == []


def test_every_text_field_is_a_textfield():
    """A bare Input would ignore the app's cursor-blink setting."""
    bare = []
    for path in Path(pmarket.tui.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "Input"):
                bare.append(f"{path.name}:{node.lineno}")
    assert bare == []


async def test_ctrl_a_signs_in_as_admin_while_a_text_field_has_focus():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_login(pilot, "admin@x.io", "admin-password")
        app.screen.query_one("#password", Input).focus()
        await pilot.press("ctrl+a")
        await wait_for(pilot, lambda: isinstance(app.screen, AdminScreen))
        assert app.role == "admin"


async def test_ctrl_u_signs_up_while_a_text_field_has_focus():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_login(pilot, "bea@x.io", "a-long-password", "Bea")
        app.screen.query_one("#name", Input).focus()
        await pilot.press("ctrl+u")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        assert app.auth is not None and app.auth.user.email == "bea@x.io"


async def test_switching_account_ends_the_session_and_keeps_no_password():
    fake = FakeExchange()
    fake.users["bob@x.io"] = {"id": 11, "email": "bob@x.io", "name": "Bob",
                              "password": "bobs-long-password"}
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_up(pilot)
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen) and app.auth is None
                       and "events" not in app._modes)
        screen = app.screen
        fields = {f: screen.query_one(f"#{f}", Input).value
                  for f in ("email", "password", "name")}
        assert fields == {"email": "ann@x.io", "password": "", "name": ""}
        assert app.focused is screen.query_one("#email")
        assert app.api.token is None and app.sub_title == ""
        assert app.messages[-1] == ("info", "Signed out of ann@x.io.")
        seen = len(app.messages)
        await pilot.press("f2")                      # nothing of the session is left
        await wait_for(pilot, lambda: len(app.messages) > seen)
        assert app.messages[-1] == ("error", "Sign in first.")

        # the focused email is selected: typing replaces it
        await pilot.press(*"bob@x.io", "enter", *"bobs-long-password", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
        assert app.auth is not None and app.auth.user.email == "bob@x.io"
        assert screen.query_one("#password", Input).value == ""


async def test_a_failed_sign_in_keeps_what_was_typed():
    fake = FakeExchange()
    app = TradingApp("http://fake", api=fake.client())
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_login(pilot, "nobody@x.io", "wrong-password")
        await pilot.press("tab", "enter")
        problem = app.screen.query_one("#problem")
        await wait_for(pilot, lambda: "Wrong email" in str(problem.render()))
        assert app.screen.query_one("#password", Input).value == "wrong-password"


@pytest.mark.parametrize("blink", [True, False])
async def test_cursor_blink_follows_the_app_setting(blink):
    app = TradingApp("http://fake", api=FakeExchange().client(), cursor_blink=blink)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen)
                       and app.focused is app.screen.query_one("#email"))
        email = app.screen.query_one("#email", TextField)
        assert email.cursor_blink is blink
        await pilot.press("a")
        timer = email._blink_timer
        assert timer is not None and timer._active.is_set() is blink
        if not blink:
            # the cursor stays drawn whatever the time: the blink timer is paused
            assert email._cursor_visible
