"""Sign up, sign in, or sign in as admin; says plainly when no server answers.

Invariants: the session's token is set only by a successful answer from the server; a
failed attempt leaves the previous session (if any) as it was and shows why. A password
is kept only while it is being typed: a successful sign-in (or sign-up) clears it from
the form, so switching account (F10) never finds the previous account's password filled
in, and nothing of it is ever written to disk. The form's keys (ctrl+u, ctrl+a) are
priority bindings, so they work while a text field has focus, whose own bindings would
otherwise take them (Input binds ctrl+u to "delete to the left" and ctrl+a to "home").
"""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, Static

from pmarket.client import ClientError, Health
from pmarket.tui.screens.base import ApiScreen, describe
from pmarket.tui.widgets.fields import TextField


class LoginScreen(ApiScreen):
    """The first screen: who is trading."""

    BINDINGS = [Binding("ctrl+u", "submit('signup')", "Sign up", priority=True),
                Binding("ctrl+a", "submit('admin')", "Admin sign in", priority=True)]

    def __init__(self) -> None:
        super().__init__()
        self.health: Health | None = None
        """The server's answer to the health check (None until it answers)."""
        self.checked = False
        """Whether the health check has finished (answered or not)."""

    def compose(self) -> ComposeResult:
        with Center(), Vertical(classes="box login"):
            yield Label("pmarket", classes="brand")
            yield Static(f"server {self.trading_app.url}", id="server", classes="hint")
            yield TextField(placeholder="email", id="email")
            yield TextField(placeholder="password", password=True, id="password")
            yield TextField(placeholder="name (to sign up)", id="name")
            yield Static("", id="problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Sign in (enter)", id="signin", variant="primary")
                yield Button("Sign up (^u)", id="signup", variant="success")
                yield Button("Admin (^a)", id="admin", variant="warning")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#email", Input).focus()
        self.check_server()

    @work(exit_on_error=False)
    async def check_server(self) -> None:
        """Say at once when no server answers (and how to start one)."""
        try:
            health = await self.api.health()
        except ClientError as exc:
            self.query_one("#problem", Static).update(
                f"{describe(exc)}\nStart one with `pmarket serve`, or run "
                "`pmarket tui --embedded` to start one inside the terminal.")
            return
        finally:
            self.checked = True
        self.health = health
        self.query_one("#server", Static).update(
            f"server {self.trading_app.url} · {health.status}")

    def signed_out(self, email: str | None) -> None:
        """Back after a sign-out: the previous email stays (selected, so typing replaces
        it), the password and name are empty."""
        for name in ("password", "name"):
            self.query_one(f"#{name}", Input).value = ""
        email_field = self.query_one("#email", Input)
        if email:
            email_field.value = email
        self.query_one("#problem", Static).update("")
        email_field.focus()
        email_field.select_all()  # it may have had the focus already: no Focus event

    @on(Input.Submitted)
    def enter(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "email":
            self.query_one("#password", Input).focus()
        else:
            self.action_submit("signup" if event.input.id == "name" else "signin")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.action_submit(event.button.id or "signin")

    def action_submit(self, how: str) -> None:
        """Sign in (``signin``), sign up (``signup``) or sign in as admin (``admin``)."""
        self.sign(how)

    @work(exclusive=True, group="sign", exit_on_error=False)
    async def sign(self, how: str) -> None:
        """Send the credentials and enter the terminal on success."""
        email = self.query_one("#email", Input).value.strip()
        password_field = self.query_one("#password", Input)
        password = password_field.value
        name = self.query_one("#name", Input).value.strip()
        problem = self.query_one("#problem", Static)
        if not email or not password:
            problem.update("Enter an email and a password.")
            return
        if how == "signup" and not name:
            problem.update("Enter a name to sign up.")
            self.query_one("#name", Input).focus()
            return
        try:
            if how == "signup":
                auth = await self.api.signup(email, name, password)
            elif how == "admin":
                auth = await self.api.admin_signin(email, password)
            else:
                auth = await self.api.signin(email, password)
        except ClientError as exc:
            problem.update(describe(exc))
            return
        problem.update("")
        password_field.value = ""  # used: not kept for whoever signs in next
        self.trading_app.signed_in(auth)
