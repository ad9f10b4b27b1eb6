"""The integer path and query parameters of every route, defined once.

A URL carries text, and FastAPI reads an integer parameter with ``int()``-like rules
that accept "+1", " 1" or another script's digits as 1; here every one of them takes
ASCII digits only (``api.fields.plain_digits``), so ``/admin/users/+1/disable`` is a
422 naming the parameter like any other invalid value. The fast read path
(``readpath``) serves only plain digits already and leaves the rest to these.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from pmarket.api.fields import PlainDigits
from pmarket.engine.limits import MAX_ID

MAX_LIMIT = 500
MAX_OFFSET = 10**9
MAX_DEPTH = 1000

PathId = Annotated[int, Path(ge=1, le=MAX_ID), PlainDigits]
"""An id in the path (``/orders/{order_id}``...): 1 .. 2^62 in ASCII digits."""
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID), PlainDigits]
"""An optional id in the query (``?market_id=``)."""
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT), PlainDigits]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET), PlainDigits]
Depth = Annotated[int | None, Query(ge=1, le=MAX_DEPTH), PlainDigits]
"""A book's depth (levels per side)."""
