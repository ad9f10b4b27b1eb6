"""Every error the API returns has one shape: ``{"error": {"code", "message"}}``.

``ApiError`` is raised by handlers, dependencies and the gateway; ``install`` registers
handlers that turn it, FastAPI's request validation errors (422), Starlette's HTTP
errors (404 for unknown paths, 405...) and any unexpected exception (500, logged with
the request id) into that shape.

Outages are not bugs: ``outage_error`` maps a lost database (SQLAlchemy's
``OperationalError``, ``InterfaceError``, an invalidated connection, a pool timeout) to
503 ``database_unavailable`` and a lost bus (``BusUnavailable``) to 503 ``unavailable``,
both with ``Retry-After``. The handlers here, the fast path (``fastpath``) and the
WebSocket (``websocket``) all use it, so an outage answers 503 on every route.

Invariant: no response body leaks a traceback or an internal value; bad input is always a
4xx; an outage is always a 503 with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from pmarket.bus import BusUnavailable

log = logging.getLogger("pmarket.server")

_STATUS_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "invalid_field", 429: "rate_limited",
    500: "internal_error", 503: "unavailable", 504: "engine_timeout",
}


class JSON(JSONResponse):
    """A JSON response rendered by orjson (non-ASCII kept, no floats in our bodies)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class EncodedJSON(Response):
    """A JSON response whose body is already encoded (a cached page)."""

    media_type = "application/json"


class ApiError(Exception):
    """An error answer: HTTP status, snake_case code and a human sentence.

    Args:
        status: HTTP status code.
        code: machine-readable snake_case code.
        message: a sentence for humans.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict:
    """The JSON body of an error."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSON:
    """An error response in the API's shape."""
    return JSON(error_body(code, message), status_code=status, headers=headers)


def not_found(what: str) -> ApiError:
    """404 for ``what`` (also used for things that exist but are not the caller's)."""
    return ApiError(404, "not_found", f"{what} not found")


DATABASE_RETRY_AFTER_S = 2
BUS_RETRY_AFTER_S = 1


def outage_error(exc: BaseException) -> ApiError | None:
    """The 503 for an exception that says a backing service is down, else None.

    Looks at ``exc`` and the exceptions it was raised from (a few levels), so a driver
    error wrapped by another layer is still recognised.
    """
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
                isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return ApiError(503, "database_unavailable",
                            "the database is unreachable; retry in a moment",
                            {"Retry-After": str(DATABASE_RETRY_AFTER_S)})
        if isinstance(exc, BusUnavailable):
            return ApiError(503, "unavailable",
                            "the exchange's message bus is unreachable; retry in a moment",
                            {"Retry-After": str(BUS_RETRY_AFTER_S)})
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


_JSON_TYPES = {
    "model_type": "must be a JSON object", "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object", "list_type": "must be a JSON array",
    "string_type": "must be a JSON string",
    "int_type": "must be a JSON integer (not a string, boolean or decimal)",
    "int_parsing": "must be a JSON integer (not a string, boolean or decimal)",
    "int_from_float": "must be a JSON integer (not a string, boolean or decimal)",
    "bool_type": "must be JSON true or false", "bool_parsing": "must be JSON true or false",
    "missing": "is required", "extra_forbidden": "is not a field of this request",
}


def _phrase(err: dict) -> str:
    """What is wrong with one value, in the API's terms (JSON types, not Python's or
    pydantic's: no "instance of OrderCreate", no "valid dictionary")."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    loc = err.get("loc") or ()
    if kind in ("int_type", "int_parsing", "int_from_float") and loc and \
            loc[0] in ("query", "path"):
        return "must be a whole number written in ASCII digits 0-9"
    if kind in _JSON_TYPES:
        return _JSON_TYPES[kind]
    if kind in ("literal_error", "enum"):
        return f"must be {ctx.get('expected', 'one of the documented values')}"
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
              "greater_than": ("greater than", "gt"), "less_than": ("less than", "lt")}
    if kind in bounds and bounds[kind][1] in ctx:
        return f"must be {bounds[kind][0]} {ctx[bounds[kind][1]]}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    if kind.startswith(("datetime_", "date_", "timezone_")):
        return "must be an ISO 8601 date-time string with a time zone " \
               "(e.g. 2030-01-01T00:00:00Z)"
    message = str(err.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def validation_message(errors: Sequence[Any], root: str = "body") -> str:
    """One sentence from pydantic's error list: ``field: what is wrong; ...`` (``root``
    names a value with no field: the body, or a batch's item)."""
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())
                         if p not in ("body", "query", "path")) or root
        parts.append(f"{where}: {_phrase(err)}")
    return "; ".join(parts) or "invalid request"


def json_content_type(content_type: str | None) -> bool:
    """Whether FastAPI reads a body of this ``Content-Type`` as JSON (none given, or
    ``application/json`` or ``application/*+json``, any parameters)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


NOT_JSON = "the request body must be JSON, sent with Content-Type: application/json"


def install(app: FastAPI) -> None:
    """Register the error handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSON:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSON:
        errors = exc.errors()
        invalid = [e for e in errors if e.get("type") == "json_invalid"]
        if invalid:
            reason = (invalid[0].get("ctx") or {}).get("error")  # what and where
            detail = f": {reason} (at character {invalid[0]['loc'][-1]})" if reason else ""
            return error_response(400, "malformed_json",
                                  f"request body is not valid JSON{detail}")
        content_type = _request.headers.get("content-type")
        if not json_content_type(content_type) and any(
                (e.get("loc") or ("",))[0] == "body" for e in errors):
            # FastAPI does not parse it at all: say so, not what the bytes are missing.
            return error_response(422, "invalid_field",
                                  f"{NOT_JSON} (not {content_type[:100]!r})")
        return error_response(422, "invalid_field", validation_message(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSON:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    async def _outage(request: Request, exc: Exception) -> JSON:
        error = outage_error(exc)
        if error is None:
            return _internal(request, exc)
        log_outage(error.code, f"{request.method} {request.url.path}", exc)
        return error_response(error.status, error.code, error.message, error.headers)

    # Registered per class, so they run inside the app (a 500 goes through Starlette's
    # ServerErrorMiddleware, which re-raises to the server after answering).
    for outage_class in (DBAPIError, PoolTimeout, BusUnavailable):
        app.add_exception_handler(outage_class, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSON:
        error = outage_error(exc)
        if error is not None:  # wrapped in something else: still an outage
            return await _outage(request, exc)
        return _internal(request, exc)


OUTAGE_LOG_EVERY_S = 5.0
_outage_logged: dict[str, tuple[float, int]] = {}  # code -> (last logged, answers since)


def log_outage(code: str, what: str, exc: BaseException) -> None:
    """One WARNING per outage code every ``OUTAGE_LOG_EVERY_S``, counting the rest: an
    outage under load answers thousands of 503s and must not flood the log."""
    now = time.monotonic()
    last, since = _outage_logged.get(code, (-OUTAGE_LOG_EVERY_S, 0))
    if now - last < OUTAGE_LOG_EVERY_S:
        _outage_logged[code] = (last, since + 1)
        return
    _outage_logged[code] = (now, 0)
    reason = str(exc).splitlines()[0][:200] if str(exc) else ""
    log.warning("%s: 503 %s (%s: %s)%s", what, code, type(exc).__name__, reason,
                f"; {since} more answered so since the last line" if since else "")


def _internal(request: Request, exc: Exception) -> JSON:
    log.error("unhandled error", exc_info=exc, extra={"request_id": request.headers.get(
        "x-request-id", ""), "path": request.url.path})
    return error_response(500, "internal_error", "internal server error")
