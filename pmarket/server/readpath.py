"""The hot read routes, served without FastAPI's routing and dependency machinery.

Once reads come from memory (``readmodel``), FastAPI's own per-request work — matching
the path against every route, building the request, solving the dependency tree, the
exception middleware — costs several times the read itself (profiled: ~85% of a
``GET /positions``). ``ReadPath`` (an ASGI middleware beside ``fastpath.FastPath``,
inside ``app.RequestContext``, which still gives the request id, metrics and access
log) answers the *ordinary* case of the GETs below itself, calling the very same
endpoint functions with the arguments FastAPI would pass:

``/balance``, ``/positions``, ``/portfolio``, ``/orders``, ``/orders/{id}``,
``/events``, ``/events/{id}``, ``/markets/{id}``, ``/markets/{id}/orderbook``.

Anything out of the ordinary — no, bad, revoked or admin credential on a user route
(``deps.asgi_user``, the same check as FastAPI's dependencies), a query
parameter it does not know or that is repeated, a value that is not plainly valid
(out of range, percent-encoded, empty) — goes to FastAPI untouched, so every error and
every unusual request keeps FastAPI's exact status and body. The rate limit (per user,
or per client address for public market data) is charged only once the request is known
to be served here. An outage (database or bus) answers the same 503 with ``Retry-After``
as through FastAPI (``fastpath._error``).

Invariant: a request served here gets the same response as through FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .clientaddr import scope_address
from .deps import _charge, asgi_user
from .fastpath import _error
from .routes import account, events, markets, orders
from .routes.common import MAX_LIMIT, Paging

_MAX_ID = 2**62
_ID = re.compile(r"[1-9][0-9]{0,18}")
_NUMBER = re.compile(r"0|[1-9][0-9]{0,9}")
_WORD = re.compile(r"[A-Za-z0-9_.~-]{1,100}")  # needs no decoding; FastAPI's max 100


def _id(value: str) -> int | None:
    if _ID.fullmatch(value) is None:
        return None
    n = int(value)
    return n if n <= _MAX_ID else None


def _limit(value: str) -> int | None:
    n = int(value) if _NUMBER.fullmatch(value) else 0
    return n if 1 <= n <= MAX_LIMIT else None


def _offset(value: str) -> int | None:
    n = int(value) if _NUMBER.fullmatch(value) else -1
    return n if 0 <= n <= 10**9 else None


def _depth(value: str) -> int | None:
    n = int(value) if _NUMBER.fullmatch(value) else 0
    return n if 1 <= n <= 1000 else None


def _one_of(*allowed: str) -> Callable[[str], str | None]:
    return lambda value: value if value in allowed else None


def _word(value: str) -> str | None:
    return value if _WORD.fullmatch(value) else None


_PAGING = {"limit": _limit, "offset": _offset}


class _Route:
    """One served route: its FastAPI route (for labels), parameters and call."""

    def __init__(self, router, template: str, public: bool, params: dict[str, Callable],
                 call: Callable[..., Any]):
        self.route = next(r for r in router.routes if getattr(r, "path", None) == template
                          and "GET" in getattr(r, "methods", ()))
        self.public = public
        self.params = params
        self.call = call


def _paging(q: dict[str, Any]) -> Paging:
    return Paging(q.get("limit", 50), q.get("offset", 0))


_FIXED = {
    "/balance": _Route(account.router, "/balance", False, {},
                       lambda rt, user, q: account.get_balance(user, rt)),
    "/positions": _Route(account.router, "/positions", False,
                         {**_PAGING, "market_id": _id, "event_id": _id},
                         lambda rt, user, q: account.positions(
                             user, rt, _paging(q), q.get("market_id"), q.get("event_id"))),
    "/portfolio": _Route(account.router, "/portfolio", False, {},
                         lambda rt, user, q: account.portfolio(user, rt)),
    "/orders": _Route(orders.router, "/orders", False,
                      {**_PAGING, "status": _one_of("open", "all"), "market_id": _id},
                      lambda rt, user, q: orders.list_orders(
                          user, rt, _paging(q), q.get("status", "all"), q.get("market_id"))),
    "/events": _Route(events.router, "/events", True,
                      {**_PAGING, "q": _word, "category": _word,
                       "status": _one_of("active", "closed", "resolved")},
                      lambda rt, user, q: events.list_events(
                          rt, _paging(q), q.get("q"), q.get("category"), q.get("status"))),
}
_ONE_ID = re.compile(r"/(orders|events|markets)/([1-9][0-9]{0,18})(/orderbook)?")
_BY_ID = {
    "orders": _Route(orders.router, "/orders/{order_id}", False, {},
                     lambda rt, user, q, i: orders.get_order(i, user, rt)),
    "events": _Route(events.router, "/events/{event_id}", True, {},
                     lambda rt, user, q, i: events.get_event(i, rt)),
    "markets": _Route(markets.router, "/markets/{market_id}", True, {},
                      lambda rt, user, q, i: markets.get_market(i, rt)),
    "markets/orderbook": _Route(markets.router, "/markets/{market_id}/orderbook", True,
                                {"depth": _depth, "view": _one_of("yes", "no")},
                                lambda rt, user, q, i: markets.market_book(
                                    i, rt, q.get("depth"), q.get("view", "yes"))),
}
_PATH_PARAM = {"orders": "order_id", "events": "event_id", "markets": "market_id",
               "markets/orderbook": "market_id"}


def _query(raw: bytes, spec: dict[str, Callable]) -> dict[str, Any] | None:
    """The parsed query, or None when anything is not plainly valid (FastAPI decides)."""
    out: dict[str, Any] = {}
    if not raw:
        return out
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    for part in text.split("&"):
        name, eq, value = part.partition("=")
        check = spec.get(name)
        if check is None or not eq or name in out:
            return None
        parsed = check(value)
        if parsed is None:
            return None
        out[name] = parsed
    return out


class ReadPath:
    """ASGI middleware serving the ordinary reads (see the module docstring).

    ``enabled`` (class attribute) turns it off, so tests can compare with FastAPI.
    """

    enabled = True

    def __init__(self, app, runtime_of):
        self.app = app
        self.runtime_of = runtime_of

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or not self.enabled:
            return await self.app(scope, receive, send)
        path = scope["path"]
        route, path_id = _FIXED.get(path), None
        if route is None:
            match = _ONE_ID.fullmatch(path)
            if match is None:
                return await self.app(scope, receive, send)
            kind = match.group(1) + ("/orderbook" if match.group(3) else "")
            route, path_id = _BY_ID.get(kind), int(match.group(2))
            if route is None or path_id > _MAX_ID:
                return await self.app(scope, receive, send)
            scope.setdefault("path_params", {})[_PATH_PARAM[kind]] = match.group(2)
        query = _query(scope["query_string"], route.params)
        runtime = self.runtime_of()
        user = None if route.public or query is None else await asgi_user(scope, runtime)
        if query is None or (user is None and not route.public):
            return await self.app(scope, receive, send)
        scope["route"] = route.route
        try:
            if route.public:
                _charge(runtime, scope_address(scope), runtime.public_limiter)
            else:
                _charge(runtime, ("user", user.id))
            if path_id is None:
                response = await route.call(runtime, user, query)
            else:
                response = await route.call(runtime, user, query, path_id)
        except Exception as exc:
            response = _error(exc, f"GET {path}")
        await response(scope, receive, send)

