"""Bounds on what a connection may hold before it is a request: a client cannot stall
the exchange by opening connections and never finishing a request.

uvicorn keeps a connection open, with its file descriptor, for as long as the client
trickles a request's head or body: it has no read deadline, and it arms its keep-alive
timeout only after a first response. An outside probe opened 20,000 half-sent requests
from one address: the process ran out of file descriptors, and the embedded engine
could no longer write its snapshots. ``ConnectionGuard`` closes that, below the app (a
request that never completes never reaches it):

- **a read deadline**: a client has ``request_read_timeout_s`` to send a whole request,
  head and body, counted from the connection's opening or, on a kept-alive connection,
  from the request's first byte. Past it the connection is answered 408 and closed.
  The time the app takes to answer does not count, nor an open WebSocket.
- **connections per address**: at most ``max_per_address`` open HTTP connections from
  one peer address (a trusted reverse proxy, ``PMARKET_TRUSTED_PROXIES``, is exempt: it
  carries many clients). A WebSocket, once upgraded, counts under the WebSocket limits
  (``PMARKET_WS_MAX_CONNECTIONS_PER_IP``) and no longer here.
- **connections in all**: at most ``max_total`` open connections, WebSockets included,
  by default the process's file-descriptor limit less ``FD_RESERVE`` for the database,
  the bus, the journal and the snapshots.

A connection over a limit is answered 503 ``too_many_connections`` (``Retry-After: 1``,
``connection: close``) before its request is read. Every refusal and deadline is
counted (``/metrics``), logged (a line per kind at most every ``LOG_EVERY_S``) and shown
in ``/health`` (``connections``: ``degraded`` while refusals are recent).

``server_options(app)`` is what every entry point that runs the app passes to
``uvicorn.Config``: the guarded protocol and the client-address options.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
import time
from collections.abc import Iterable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .clientaddr import UVICORN_OPTIONS, Network
from .errors import error_body
from .metrics import Metrics

log = logging.getLogger("pmarket.server.connections")

FD_RESERVE = 256
"""File descriptors kept for everything but client connections (database pool, bus,
journal, snapshots, the worker's pipe) when ``max_total`` is derived from the limit."""

LOG_EVERY_S = 10.0
"""The most often one kind of refusal is logged (with the count since the last line)."""

RECENT_S = 60.0
"""``/health`` shows ``connections`` degraded this long after a refusal."""


def default_max_connections() -> int:
    """The file-descriptor limit of this process less ``FD_RESERVE`` (at least 64)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(64, soft - FD_RESERVE)


class ConnectionGuard:
    """Counts open connections by peer address and decides who may open one.

    Args:
        max_total: open connections in all (0: ``default_max_connections()``).
        max_per_address: open HTTP connections per peer address.
        read_timeout_s: the time a client has to send a whole request.
        exempt: networks whose peers are not limited per address (trusted proxies).
        metrics: where refusals and deadlines are counted.
    """

    def __init__(self, max_total: int, max_per_address: int, read_timeout_s: float,
                 exempt: Iterable[Network] = (), metrics: Metrics | None = None) -> None:
        if max_per_address < 1:
            raise ValueError(f"connections per address must be at least 1, got {max_per_address}")
        if not read_timeout_s > 0:
            raise ValueError(f"the request read timeout must be above 0, got {read_timeout_s}")
        self.max_total = max_total or default_max_connections()
        self.max_per_address = max_per_address
        self.read_timeout_s = read_timeout_s
        self.exempt = tuple(exempt)
        self.metrics = metrics
        self.open = 0
        self.by_address: dict[str, int] = {}
        self.refused = {"full": 0, "address": 0}
        self.timed_out = 0
        self._last_problem = 0.0  # monotonic time of the latest refusal or deadline
        self._logged: dict[str, tuple[float, int]] = {}  # kind -> (when, count then)
        self._exempt_cache: dict[str, bool] = {}

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address`` and return None, or return why it is
        refused (nothing counted)."""
        if self.open >= self.max_total:
            return self._refuse("full", address, f"the server holds its most connections "
                                f"({self.max_total}); try again shortly")
        held = self.by_address.get(address, 0)
        if held >= self.max_per_address and not self._is_exempt(address):
            return self._refuse("address", address, f"too many open connections from your "
                                f"address (at most {self.max_per_address})")
        self.open += 1
        self.by_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        """Uncount a connection ``admit`` counted."""
        self.open -= 1
        self.leave_address(address)

    def leave_address(self, address: str) -> None:
        """A connection became a WebSocket: it stays counted in all, no longer under its
        address (the WebSocket limits count it there)."""
        held = self.by_address[address] - 1
        if held:
            self.by_address[address] = held
        else:
            del self.by_address[address]

    def release_upgraded(self) -> None:
        """Uncount an upgraded connection."""
        self.open -= 1

    def note_timeout(self, address: str) -> None:
        """A client did not send its request in time."""
        self.timed_out += 1
        self._last_problem = time.monotonic()
        if self.metrics is not None:
            self.metrics.connections_timed_out.inc()
        self._log("timeout", address, f"a request was not sent within "
                  f"{self.read_timeout_s:g} s: answered 408 and closed")

    def health(self) -> dict[str, Any]:
        """``/health``'s ``connections`` component."""
        recent = self._last_problem and time.monotonic() - self._last_problem < RECENT_S
        detail = (f"{self.open} open of at most {self.max_total}, at most "
                  f"{self.max_per_address} per address; refused {self.refused['full']} "
                  f"(server full), {self.refused['address']} (address over its limit); "
                  f"{self.timed_out} requests not sent within {self.read_timeout_s:g} s")
        return {"status": "degraded" if recent else "ok", "detail": detail,
                "open": self.open, "max": self.max_total,
                "max_per_address": self.max_per_address,
                "refused_full": self.refused["full"],
                "refused_address": self.refused["address"], "timed_out": self.timed_out}

    def _refuse(self, kind: str, address: str, message: str) -> str:
        self.refused[kind] += 1
        self._last_problem = time.monotonic()
        if self.metrics is not None:
            self.metrics.connections_refused.labels(kind).inc()
        self._log(kind, address, f"connection refused: {message}")
        return message

    def _log(self, kind: str, address: str, message: str) -> None:
        """A warning now and then, with how many of its kind happened since the last."""
        count = self.timed_out if kind == "timeout" else self.refused[kind]
        now = time.monotonic()
        when, count_then = self._logged.get(kind, (-LOG_EVERY_S, 0))
        if now - when >= LOG_EVERY_S:
            self._logged[kind] = (now, count)
            log.warning("%s (latest from %s; %d of this kind since the last such line)",
                        message, address, count - count_then)

    def _is_exempt(self, address: str) -> bool:
        known = self._exempt_cache.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in network for network in self.exempt)
            if len(self._exempt_cache) > 10_000:
                self._exempt_cache.clear()
            self._exempt_cache[address] = known
        return known

    def protocol(self) -> type[GuardedHttpProtocol]:
        """uvicorn's HTTP protocol class, bound to this guard."""
        return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": self})


_REFUSED = (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n%sconnection: close\r\n\r\n%s")


def _answer(transport: Any, status: int, reason: bytes, code: str, message: str,
            retry_after_s: int | None = None) -> None:
    """Write an error in the API's shape (``{"error": {...}}``) and close."""
    body = orjson.dumps(error_body(code, message))
    retry = b"" if retry_after_s is None else b"retry-after: %d\r\n" % retry_after_s
    transport.write(_REFUSED % (status, reason, len(body), retry, body))
    transport.close()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``ConnectionGuard``'s limits and read deadline
    (``ConnectionGuard.protocol`` binds a guard to it)."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None  # set while counted under an address
        self._deadline: Any = None  # the read deadline's timer, while a request is due

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "unix"
        refusal = self.guard.admit(address)
        if refusal is not None:
            _answer(transport, 503, b"Service Unavailable", "too_many_connections", refusal,
                    retry_after_s=1)
            return
        self._address = address
        self._arm()  # the first request is due from now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.guard.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm()

    def on_message_complete(self) -> None:
        self._disarm()  # read whole: the app's time to answer does not count
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        address = self._address
        if address is not None:
            self._address = None
            self.guard.leave_address(address)
        super().handle_websocket_upgrade()
        if address is None:
            return
        upgraded = self.transport.get_protocol()
        lost = upgraded.connection_lost
        guard = self.guard

        def connection_lost(exc: Exception | None) -> None:
            guard.release_upgraded()
            lost(exc)

        upgraded.connection_lost = connection_lost  # the WebSocket's end uncounts it

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.guard.read_timeout_s, self._overdue)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _overdue(self) -> None:
        """The request is not in: answer 408 and close, or only close when a response
        is already under way on the connection (a 408 would corrupt it)."""
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.note_timeout(self._address or "?")
        cycle = self.cycle
        if cycle is not None and cycle.response_started:  # the app answers early: stop it
            self.transport.close()
            return
        _answer(self.transport, 408, b"Request Timeout", "request_timeout",
                f"the request was not sent within {self.guard.read_timeout_s:g} s")


def server_options(app: Any) -> dict[str, Any]:
    """What every ``uvicorn.Config`` of ``app`` carries: the guarded HTTP protocol of its
    runtime, the WebSocket implementation, and ``clientaddr.UVICORN_OPTIONS``."""
    return {"http": app.state.runtime.connections.protocol(), "ws": "websockets-sansio",
            **UVICORN_OPTIONS}
