"""Request bodies whose JSON numbers keep every digit they were sent with.

The contract takes money and prices as a decimal string or a JSON number and refuses a
value off the grid instead of rounding it. A JSON number parsed as a float has already
been rounded to 53 bits: ``0.30000000000000001`` arrives as ``0.3`` and would pass, and
``12345678901234567.5`` would lose its cents. The routes therefore parse bodies with
fractional numbers as ``Decimal`` (``units.to_units`` checks a Decimal's size before
any arithmetic); integers stay ints.

No object may name a member twice (RFC 7493, I-JSON): ``{"price": "0.1", "price": "0.9"}``
means one thing to a client's JSON library and another to ours (Python keeps the last).
Every body and WebSocket frame the server parses is refused with what was repeated
(400 ``malformed_json``): the routes parse with ``_unique_pairs``, and the orjson fast
paths count the names in the raw bytes (``may_repeat_names``) and leave any body whose
count differs to the exact parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

_NAME = re.compile(rb'"\s*:')
"""Every member name's end in raw JSON (and any string value holding a quote and a colon,
so the count is never less than the names)."""


class RepeatedName(ValueError):
    """An object of the JSON names a member twice."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise RepeatedName(f"the name {name!r} appears more than once in one object")
            seen.add(name)
    return obj


def loads_strict(raw: bytes | str, exact: bool = False) -> Any:
    """Parse ``raw`` (fractional numbers as ``Decimal`` when ``exact``), refusing an object
    that names a member twice.

    Raises:
        json.JSONDecodeError: not JSON, a repeated name (the message says which), or
            nesting deeper than Python's recursion limit.
    """
    try:
        return json.loads(raw, parse_float=Decimal if exact else None,
                          object_pairs_hook=_unique_pairs)
    except (RepeatedName, RecursionError) as exc:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        message = str(exc) if isinstance(exc, RepeatedName) else "arrays or objects nest too deeply"
        raise json.JSONDecodeError(message, text, 0) from None


def may_repeat_names(raw: bytes, data: Any) -> bool:
    """False when no object of ``data`` (``raw`` parsed by a last-wins parser such as
    orjson) can have lost a repeated name: the raw bytes hold no more name endings than
    ``data`` has names. True means "parse it with ``loads_strict`` to know"."""
    return len(_NAME.findall(raw)) != _names(data)


def _names(data: Any) -> int:
    """The names of every object in ``data``, however deep (no recursion: orjson takes
    1,024 levels, past Python's recursion limit)."""
    count = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return count


class _ExactRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body(), exact=True)
        return self._json


class ExactJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON body parses fractional numbers as ``Decimal``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactRequest(request.scope, request.receive))

        return exact


def has_float(data: dict) -> bool:
    """True if a top-level value of a parsed body is a float (already rounded)."""
    return any(type(value) is float for value in data.values())
