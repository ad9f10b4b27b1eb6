"""What the sync and async clients share: URLs, headers and reading a response.

Invariant: a response either becomes the call's typed result or raises ``ApiError``
with the server's code and message; transport failures become ``ServerUnavailable``.
Nothing from ``httpx`` leaks to callers.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import httpx

from pmarket.client.calls import Call
from pmarket.client.errors import ApiError

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0
API_KEY_ENV = "PMARKET_API_KEY"
URL_ENV = "PMARKET_URL"


def env_api_key() -> str | None:
    """The API key in ``PMARKET_API_KEY`` (``pmk_...``), or None when unset or empty."""
    return os.environ.get(API_KEY_ENV) or None


def env_url() -> str:
    """The server URL in ``PMARKET_URL``, else ``DEFAULT_URL``."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def headers(token: str | None) -> dict[str, str]:
    """Request headers carrying the bearer token, if any."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def ws_url(base_url: str) -> str:
    """The WebSocket URL (``/ws``) of an HTTP base URL."""
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://"):] + "/ws"
    if url.startswith("http://"):
        return "ws://" + url[len("http://"):] + "/ws"
    return url + "/ws"


def request_args(call: Call[Any], token: str | None) -> dict[str, Any]:
    """Keyword arguments of ``httpx.Client.request`` for ``call``."""
    args: dict[str, Any] = {"headers": headers(token)}
    if call.params:
        args["params"] = call.params
    if call.body is not None:
        args["json"] = call.body
    return args


def error_from(response: httpx.Response) -> ApiError:
    """The ``ApiError`` an error response stands for (any body shape)."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return ApiError(status, str(err.get("code", f"http_{status}")),
                        str(err.get("message", response.reason_phrase)))
    if isinstance(body, dict) and "detail" in body:
        # FastAPI's default shape, should a route ever escape the error handlers.
        return ApiError(status, f"http_{status}", _detail_text(body["detail"]))
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiError(status, f"http_{status}", text)


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x != "body")
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return str(detail)


MAX_RETRY_WAIT_S = 30.0
"""The longest ``Retry-After`` a client waits out by itself; a longer one is an error."""


def retry_wait(response: httpx.Response, retries_left: int) -> float | None:
    """Seconds to wait before sending the request again, or None to give up.

    Only a 429 (rate limited: the request was not processed) or a 503 that says
    ``Retry-After`` is retried, only while retries are left, and only when the server's
    ``Retry-After`` is at most ``MAX_RETRY_WAIT_S``.
    """
    if retries_left <= 0 or response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    if not value.isdigit():
        return None
    wait = float(value)
    return wait if wait <= MAX_RETRY_WAIT_S else None


def read(call: Call[T], response: httpx.Response) -> T:
    """The typed result of ``call`` from its response, or raise ``ApiError``."""
    if response.status_code >= 400 and response.status_code not in call.accept:
        raise error_from(response)
    if response.status_code == 204 or not response.content:
        return call.parse(None)
    try:
        data = response.json()
    except ValueError as exc:
        raise ApiError(response.status_code, "bad_response",
                       "the server's answer is not JSON") from exc
    try:
        return call.parse(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ApiError(response.status_code, "bad_response",
                       f"unexpected answer from {call.method} {call.path}: {exc!r}") from exc
