"""Request bodies whose JSON numbers keep every digit they were sent with.

The contract takes money and prices as a decimal string or a JSON number and refuses a
value off the grid instead of rounding it. A JSON number parsed as a float has already
been rounded to 53 bits: ``0.30000000000000001`` arrives as ``0.3`` and would pass, and
``12345678901234567.5`` would lose its cents. The routes therefore parse bodies with
fractional numbers as ``Decimal`` (``units.to_units`` checks a Decimal's size before
any arithmetic); integers stay ints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class _ExactRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
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
