"""The pmarket trading terminal: a Textual app over the public HTTP API and WebSocket.

The app owns one ``AsyncClient`` (the session's token lives there) and one mode per
top-level screen: login, events, orders, portfolio and, for admins, admin. Invariants:
the trading modes exist only for a signed-in session — they are rebuilt from scratch at
every sign-in and removed at sign-out (F10), when the token is dropped too, so no screen
ever shows (or keeps polling for) a previous account's data; every message the user
should see goes through ``say``/``fail`` (and is kept in ``messages``).

With an API key (``pmarket tui --api-key``, or ``PMARKET_API_KEY``) the terminal opens
already signed in as the key's user (``GET /me``), without a password; a "read" key
sees everything and is refused (403, shown) on every order. Signing out drops the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from pmarket.client import DEFAULT_URL, AdminAuth, AsyncClient, Auth, ClientError
from pmarket.tui.screens.admin import AdminScreen
from pmarket.tui.screens.dialogs import ChoiceDialog
from pmarket.tui.screens.events import EventsScreen
from pmarket.tui.screens.help import HelpScreen
from pmarket.tui.screens.login import LoginScreen
from pmarket.tui.screens.market import MarketScreen
from pmarket.tui.screens.orders import OrdersScreen
from pmarket.tui.screens.portfolio import PortfolioScreen
from pmarket.tui.screens.ticket import OrderTicket

USER_MODES: dict[str, type] = {"events": EventsScreen, "orders": OrdersScreen,
                               "portfolio": PortfolioScreen}
ADMIN_MODES: dict[str, type] = {"events": EventsScreen, "admin": AdminScreen}
SESSION_MODES = ("events", "orders", "portfolio", "admin")


class TradingApp(App[None]):
    """The trading terminal.

    Args:
        url: The server's base URL.
        api: A client to use (tests pass one over a fake transport); by default one
            is made for ``url``.
        cursor_blink: Whether text fields' cursors blink (off for screenshots).
        api_key: An API key (``pmk_...``) to act with instead of signing in.
    """

    CSS_PATH = Path(__file__).with_name("theme.tcss")
    TITLE = "pmarket"
    MODES: ClassVar[dict[str, type]] = {"login": LoginScreen}  # type: ignore[assignment]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("f2", "goto('events')", "Events"),
        Binding("f3", "goto('orders')", "Orders"),
        Binding("f4", "goto('portfolio')", "Portfolio"),
        Binding("f5", "goto('admin')", "Admin"),
        Binding("f10", "sign_out", "Sign out / switch account"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, url: str = DEFAULT_URL, api: AsyncClient | None = None, *,
                 cursor_blink: bool = True, api_key: str | None = None) -> None:
        super().__init__()
        self.url = url
        self.api_key = api_key
        self.cursor_blink = cursor_blink
        self.api = api or AsyncClient(url)
        self.auth: Auth | AdminAuth | None = None
        self.titles: dict[int, str] = {}
        self.messages: list[tuple[str, str]] = []

    @property
    def role(self) -> str | None:
        """"user", "admin", or None before signing in."""
        return self.auth.role if self.auth else None

    def on_mount(self) -> None:
        self.switch_mode("login")
        if self.api_key:
            self.run_worker(self._with_key(self.api_key), exclusive=True, group="session",
                            exit_on_error=False)

    async def _with_key(self, key: str) -> None:
        """Act as the API key's user (the key is the bearer credential)."""
        self.api.token = key
        try:
            user = await self.api.me()
        except ClientError as exc:
            self.api.token = None
            self.fail(f"The API key was refused: {exc}. Sign in instead.")
            return
        self.signed_in(AdminAuth(token=key, admin=user) if user.role == "admin"
                       else Auth(token=key, user=user))

    async def on_unmount(self) -> None:
        await self.api.close()

    def say(self, message: str) -> None:
        """Tell the user something went as asked."""
        self.messages.append(("info", message))
        self.notify(message, timeout=4)

    def fail(self, message: str) -> None:
        """Tell the user why something did not happen."""
        self.messages.append(("error", message))
        self.notify(message, severity="error", timeout=8)

    def signed_in(self, auth: Auth | AdminAuth) -> None:
        """Start a fresh session for ``auth``: rebuild the trading modes and enter."""
        self.auth = auth
        self.titles.clear()
        self.run_worker(self._enter(auth), exclusive=True, group="session",
                        exit_on_error=False)

    async def _enter(self, auth: Auth | AdminAuth) -> None:
        for mode in SESSION_MODES:
            if mode in self._modes:
                await self.remove_mode(mode)
        for mode, screen in (ADMIN_MODES if auth.role == "admin" else USER_MODES).items():
            self.add_mode(mode, screen)
        self.sub_title = f"{auth.user.name} ({auth.role})"
        await self.switch_mode("admin" if auth.role == "admin" else "events")
        self.say(f"Signed in as {auth.user.name} ({auth.user.email}).")

    def action_goto(self, mode: str) -> None:
        """Show a top-level screen (events, orders, portfolio, admin)."""
        if self.auth is None:
            self.fail("Sign in first.")
            return
        if mode not in self._modes:
            who = "an admin" if mode == "admin" else "a user"
            self.fail(f"The {mode} screen needs {who} account.")
            return
        self.switch_mode(mode)

    def action_sign_out(self) -> None:
        """Sign out and go back to the sign-in screen (to switch account)."""
        if self.auth is None:
            return
        email = self.auth.user.email
        self.auth = None
        self.api.token = None
        self.api.user = None
        self.titles.clear()
        self.sub_title = ""
        self.run_worker(self._leave(email), exclusive=True, group="session",
                        exit_on_error=False)

    async def _leave(self, email: str) -> None:
        await self.switch_mode("login")
        for mode in SESSION_MODES:
            if mode in self._modes:
                await self.remove_mode(mode)
        login = self.screen
        if isinstance(login, LoginScreen):
            login.signed_out(email)
        self.say(f"Signed out of {email}.")

    def action_help(self) -> None:
        """Show every key."""
        if isinstance(self.screen, HelpScreen):
            return
        sections: list[tuple[str, list[BindingType]]] = [("Everywhere", self.BINDINGS)]
        for title, cls in (("Sign in", LoginScreen), ("Events", EventsScreen),
                           ("Market", MarketScreen), ("Order ticket", OrderTicket),
                           ("Hit/lift the account cannot cover", ChoiceDialog),
                           ("Orders", OrdersScreen), ("Portfolio", PortfolioScreen),
                           ("Admin", AdminScreen)):
            sections.append((title, list(cls.BINDINGS)))
        self.push_screen(HelpScreen(sections))
