"""What every screen of the terminal shares: the API handle and guarded calls.

Invariant: a screen never lets a client error escape. Every API call goes through
``call``/``attempt``, which turn an ``ApiError`` into the server's own message and a
missing server into a plain sentence, shown to the user as a notification.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar, cast

from textual.screen import Screen

from pmarket.client import ApiError, AsyncClient, Auth, ClientError, ServerUnavailable

T = TypeVar("T")


class Host(Protocol):
    """What a screen uses of the app that runs it (``app.TradingApp``)."""

    url: str
    api: AsyncClient
    titles: dict[int, str]
    """Event titles by id, as far as the screens have seen them."""

    @property
    def role(self) -> str | None:
        """"user", "admin", or None before signing in."""

    def say(self, message: str) -> None:
        """Show a notice."""

    def fail(self, message: str) -> None:
        """Show an error."""

    def signed_in(self, auth: Auth) -> None:
        """Enter the exchange as ``auth``'s user."""


def describe(error: ClientError) -> str:
    """A one-line, user-facing account of a client error."""
    if isinstance(error, ApiError):
        if error.status == 401:
            return f"{error.message} (sign in again with F10)"
        return error.message or error.code
    if isinstance(error, ServerUnavailable):
        return f"The server is not answering: {error}"
    return str(error)


class ApiScreen(Screen[Any]):
    """A screen that talks to the exchange through ``app.api``."""

    @property
    def trading_app(self) -> Host:
        """The running ``TradingApp``."""
        return cast(Host, self.app)

    @property
    def api(self) -> AsyncClient:
        """The signed-in client."""
        return self.trading_app.api

    async def call(self, awaitable: Awaitable[T], ok: str | None = None) -> T | None:
        """Await an API call; on failure show why and return None.

        Args:
            awaitable: The client coroutine.
            ok: A message to show when it succeeds.
        """
        try:
            result = await awaitable
        except ClientError as exc:
            self.trading_app.fail(describe(exc))
            return None
        if ok:
            self.trading_app.say(ok)
        return result

    async def attempt(self, awaitable: Awaitable[Any], ok: str | None = None) -> bool:
        """Like ``call`` for calls whose result is not needed: whether it succeeded."""
        try:
            await awaitable
        except ClientError as exc:
            self.trading_app.fail(describe(exc))
            return False
        if ok:
            self.trading_app.say(ok)
        return True
