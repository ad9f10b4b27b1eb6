"""Errors raised by the pmarket client.

Every failure a caller can act on is one of these types, never an ``httpx`` or
``websockets`` exception: ``ApiError`` carries the server's ``{"error": {code, message}}``
body and the HTTP status, ``ServerUnavailable`` says no server answered at all.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base class of every error the client raises."""


class ApiError(ClientError):
    """The server answered with an error status.

    Attributes:
        status: The HTTP status code (400, 401, 403, 404, 409, 422, 429, 5xx).
        code: The server's snake_case error code (``insufficient_balance``...); for a
            body that is not the API's error shape, ``http_<status>``.
        message: The server's human sentence, fit to show to a user as it is.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


class ServerUnavailable(ClientError):
    """No server answered at the client's URL (refused, unreachable, timed out)."""
