"""The FastAPI application: ``create_app(settings)`` wires routes, errors and middleware.

The app's lifespan starts a ``runtime.Runtime`` (bus, database, replica and — embedded —
engine and worker) and stops it on shutdown. ``RequestContext`` is a plain ASGI
middleware (cheaper than Starlette's ``BaseHTTPMiddleware``) that gives every request an
id (``X-Request-ID``, echoed or generated), bounds its body (413 past
``max_body_bytes``, counted as it streams in, so a lying ``Content-Length`` does not
help), records its latency and status per route template, and writes one structured
JSON log line per request.

Invariant: every response, errors included, carries ``X-Request-ID`` and the error shape
of ``errors``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, WebSocket
from fastapi_offline import FastAPIOffline

from . import errors, websocket
from .clientaddr import ClientAddress, parse_trusted_proxies, scope_address
from .errors import JSON, error_body
from .fastpath import FastPath
from .readpath import ReadPath
from .routes import ROUTERS
from .runtime import Runtime
from .settings import Settings

access_log = logging.getLogger("pmarket.server.access")

DESCRIPTION = """A prediction-market exchange. Money and prices are decimal strings;
authenticate with `Authorization: Bearer <token>` from `/auth/signin`. The repository's
docs/API.md is the reference, docs/WEBSOCKET.md the live feed at `/ws`."""


DOCS_ASSETS = "/docs-assets"
"""Where the Swagger UI and ReDoc scripts and styles are served from."""


class _BodyTooLarge(Exception):
    pass


class RequestContext:
    """ASGI middleware: request id, body limit, metrics and access log."""

    def __init__(self, app, runtime_of, max_body_bytes: int, log_requests: bool):
        self.app = app
        self.runtime_of = runtime_of
        self.max_body = max_body_bytes
        self.log_requests = log_requests
        # Generated request ids: a random per-process prefix and a counter (uuid4 is a
        # syscall per request, and the GIL may be gone when it returns).
        self._id_prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        # (method, route template, status) -> the metric series (``labels`` is costly);
        # bounded: templates and statuses are.
        self._series: dict[tuple, tuple] = {}

    def _next_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids) & 0xFFFFFFFF:08x}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        request_id = _header(scope, b"x-request-id") or self._next_id()
        rid = request_id.encode()[:64]
        status = 500
        length = _header(scope, b"content-length")
        if length and length.isascii() and length.isdigit() and int(length) > self.max_body:
            await _send_error(send, 413, "payload_too_large",
                              f"request body exceeds {self.max_body} bytes", rid)
            return self._record(scope, 413, start, request_id)
        received = 0
        too_large = False

        async def limited_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large = True
                    raise _BodyTooLarge
            return message

        started = False

        async def send_with_id(message):
            nonlocal status, started
            if too_large:
                # The app turned the aborted body read into some error: answer 413 instead.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    status = 413
                    await _send_error(send, 413, "payload_too_large",
                                      f"request body exceeds {self.max_body} bytes", rid)
                return
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, "payload_too_large",
                                  f"request body exceeds {self.max_body} bytes", rid)
            status = 413
        self._record(scope, status, start, request_id)

    def _record(self, scope, status: int, start: float, request_id: str) -> None:
        elapsed = time.perf_counter() - start
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        runtime = self.runtime_of()
        if runtime is not None:
            key = (scope["method"], template, status)
            children = self._series.get(key)
            if children is None or children[0] is not runtime.metrics:
                metrics = runtime.metrics
                children = self._series[key] = (
                    metrics, metrics.requests.labels(key[0], template, str(status)),
                    metrics.latency.labels(key[0], template))
            children[1].inc()
            children[2].observe(elapsed)
        if self.log_requests and access_log.isEnabledFor(logging.INFO):
            access_log.info(orjson.dumps({
                "request_id": request_id, "method": scope["method"], "path": scope["path"],
                "route": template, "status": status, "ms": round(elapsed * 1000, 3),
                "client": scope_address(scope),  # the address the limits counted
            }).decode())


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_error(send, status: int, code: str, message: str, rid: bytes) -> None:
    body = orjson.dumps(error_body(code, message))
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid)]})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The pmarket API application.

    Args:
        settings: configuration (default: ``Settings.load()`` from the environment).
    """
    settings = settings or Settings.load()
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime
        try:
            await runtime.start()
        except BaseException as exc:  # `pmarket serve` says why (pmarket.cli.failures)
            app.state.startup_error = exc
            raise
        try:
            yield
        finally:
            await runtime.stop()

    # /docs (Swagger UI) and /redoc from assets in the fastapi-offline package, never
    # from a CDN: the documentation works offline, served by the exchange itself.
    app = FastAPIOffline(title="pmarket", version="0.1.0", description=DESCRIPTION,
                         static_url=DOCS_ASSETS, lifespan=lifespan,
                         default_response_class=JSON,
                         # No OpenTelemetry: its per-request "is a provider configured?"
                         # check showed in profiles of the order path.
                         telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.runtime = runtime
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket) -> None:
        runtime.metrics.websockets.inc()
        try:
            await websocket.serve(ws, runtime.hub, runtime.replica, runtime.sessions,
                                  runtime.barrier.for_replica)
        finally:
            runtime.metrics.websockets.dec()

    # Inner (added first): the hot order and read routes without FastAPI's per-request
    # machinery.
    app.add_middleware(ReadPath, runtime_of=lambda: runtime)
    app.add_middleware(FastPath, runtime_of=lambda: runtime)
    app.add_middleware(RequestContext, runtime_of=lambda: runtime,
                       max_body_bytes=settings.max_body_bytes,
                       log_requests=settings.log_requests)
    # Outermost: the client address every limit and log line uses (``clientaddr``).
    app.add_middleware(ClientAddress,
                       trusted=parse_trusted_proxies(settings.trusted_proxies))
    return app
