"""The hot trading routes, served without FastAPI's routing and dependency machinery.

``POST /orders`` and ``DELETE /orders/{order_id}`` are most of an exchange's traffic.
Through FastAPI each costs several times the engine's own work (route matching over every
route, building the request, solving the dependency tree, the exception middleware), so
``FastPath`` (an ASGI middleware inside ``app.RequestContext``, which still gives the
request id, body limit, metrics and access log) answers their *ordinary* case itself
and calls the very same endpoint functions with the same arguments FastAPI would pass.

Anything out of the ordinary — no, bad or revoked credential (``deps.asgi_user``, the
same check as FastAPI's dependencies), an admin token, a body that is not
exactly JSON for ``OrderCreate``, an order id out of range, another content type — goes
to FastAPI untouched (the body already read is replayed), so every error keeps FastAPI's
exact status and shape. The rate limit is charged only once the request is known to be
served here, so a request is never charged twice.

An outage (database or bus, ``errors.outage_error``) answers the same 503 with
``Retry-After`` as through FastAPI.

Invariant: a request served here gets the same response as through FastAPI.
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError

from pmarket.api import OrderCreate

from .deps import _charge, asgi_user
from .errors import ApiError, error_response, log_outage, outage_error
from .exactjson import has_float, may_repeat_names
from .routes import orders

_ORDER_PATH = re.compile(r"/orders/([1-9][0-9]{0,18})")
_MAX_ORDER_ID = 2**62


class FastPath:
    """ASGI middleware serving the ordinary order placements and cancellations.

    ``enabled`` (class attribute) turns it off, so tests can compare with FastAPI.
    """

    enabled = True

    def __init__(self, app, runtime_of):
        self.app = app
        self.runtime_of = runtime_of
        # The APIRoute objects, so metrics and logs label requests by route template.
        routes = orders.router.routes
        self._route_place = next(r for r in routes if getattr(r, "path", None) == "/orders"
                                 and "POST" in getattr(r, "methods", ()))
        self._route_cancel = next(r for r in routes
                                  if getattr(r, "path", None) == "/orders/{order_id}"
                                  and "DELETE" in getattr(r, "methods", ()))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.enabled:
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/orders":
                return await self._place(scope, receive, send)
            if method == "DELETE" and path.startswith("/orders/"):
                return await self._cancel(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _place(self, scope, receive, send):
        runtime = self.runtime_of()
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay(chunks, message, receive), send)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        user = await asgi_user(scope, runtime)
        order = None
        if user is not None and _json_content(scope):
            try:
                data = orjson.loads(body)
                # floats (exactly) and names that may repeat (refused) are the route's
                if isinstance(data, dict) and not has_float(data) \
                        and not may_repeat_names(body, data):
                    order = OrderCreate.model_validate(data)
            except (orjson.JSONDecodeError, ValidationError, ValueError, TypeError):
                order = None
        if order is None:
            return await self.app(scope, _replay([body], None, receive), send)
        scope["route"] = self._route_place
        try:
            _charge(runtime, ("user", user.id))
            response = await orders.place_order(order, user, runtime)
        except Exception as exc:
            response = _error(exc, "POST /orders")
        await response(scope, receive, send)

    async def _cancel(self, scope, receive, send):
        runtime = self.runtime_of()
        match = _ORDER_PATH.fullmatch(scope["path"])
        user = await asgi_user(scope, runtime) if match is not None else None
        order_id = int(match.group(1)) if user is not None else 0
        if not 1 <= order_id <= _MAX_ORDER_ID:
            return await self.app(scope, receive, send)
        scope["route"] = self._route_cancel
        scope.setdefault("path_params", {})["order_id"] = match.group(1)
        try:
            _charge(runtime, ("user", user.id))
            response = await orders.cancel_order(order_id, user, runtime)
        except Exception as exc:
            response = _error(exc, f"DELETE {scope['path']}")
        await response(scope, receive, send)


def _error(exc: Exception, what: str):
    """The error response FastAPI's handlers would give (re-raises anything else)."""
    if isinstance(exc, ApiError):
        error = exc
    else:
        error = outage_error(exc)
        if error is None:
            raise exc
        log_outage(error.code, what, exc)
    return error_response(error.status, error.code, error.message, error.headers)


def _json_content(scope) -> bool:
    """True for ``Content-Type: application/json`` (any parameters), as FastAPI parses."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _replay(chunks: list[bytes], last: dict | None, receive):
    """A ``receive`` that hands out the body already read, then the real one."""
    pending: list[dict] = []
    if chunks:
        pending.append({"type": "http.request", "body": b"".join(chunks),
                        "more_body": False})
    if last is not None:
        pending.append(last)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
