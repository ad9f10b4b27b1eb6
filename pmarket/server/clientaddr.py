"""Who the client is: the TCP peer, or — behind a trusted reverse proxy — the address
that proxy says it forwarded.

Every per-address limit (public market data, sign-up and sign-in, the sign-in lockout
of an address, WebSocket connections, subscriptions and frames) is keyed by the client
address, so an address a client can choose is a limit it can bypass. By default the
client is the connection's peer and ``X-Forwarded-For`` is ignored, whoever sends it.
An operator behind a reverse proxy lists the proxies in ``PMARKET_TRUSTED_PROXIES``
(addresses or CIDR networks, comma-separated): when the peer is one of them, the client
is the right-most ``X-Forwarded-For`` address that is not itself a trusted proxy (each
proxy appends the address it received the connection from, so everything to the left
of the first untrusted hop is the client's own, forgeable, text).

``ClientAddress`` (the outermost ASGI middleware of ``app.create_app``) writes that
address into the scope's ``client``, for HTTP and WebSocket alike, so ``request.client``,
``websocket.client`` and the fast paths all read the same one; the peer stays in
``scope["pmarket.peer"]``. uvicorn must not rewrite ``client`` before: every entry point
that runs the app (``pmarket serve``, ``pmarket tui --embedded``, the tests) passes
``UVICORN_OPTIONS`` (``proxy_headers=False``, within ``connections.server_options``),
since uvicorn otherwise believes
``X-Forwarded-For`` from 127.0.0.1 by default.

Invariant: with no trusted proxy configured, no request header changes the address a
request is counted under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

UVICORN_OPTIONS = {"proxy_headers": False, "forwarded_allow_ips": ""}
"""What every ``uvicorn.Config`` of the app must carry: uvicorn leaves the scope's
``client`` the TCP peer (``ClientAddress`` decides about forwarded headers)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(text: str | Iterable[str] | None,
                          name: str = "PMARKET_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """The networks of ``text`` ("10.0.0.1, 10.1.0.0/16, ::1"; empty: none).

    Raises:
        ValueError: an entry is not an IP address or network (says which).
    """
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not an IP address or network "
                             "(e.g. 10.0.0.1 or 10.0.0.0/8)") from None
    return tuple(networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _forwarded_hop(text: str) -> str:
    """One ``X-Forwarded-For`` entry without a port ("1.2.3.4:80", "[::1]:80")."""
    text = text.strip()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    if text.count(":") == 1:  # IPv4 with a port (IPv6 has several colons)
        return text.split(":", 1)[0]
    return text


def client_address(peer: str, forwarded: list[bytes], trusted: tuple[Network, ...]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, then the right-most
    hop of ``forwarded`` (the ``X-Forwarded-For`` header values, in order) not trusted.

    A hop that is not an IP address ends the walk at the proxy that sent it.
    """
    if not trusted or not forwarded:
        return peer

    def is_trusted(address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = ",".join(v.decode("latin-1") for v in forwarded).split(",")
    current = peer
    for raw in reversed(hops):
        hop = _forwarded_hop(raw)
        ip = _ip(hop)
        if ip is None:
            break
        current = str(ip)
        if not is_trusted(current):
            break
    return current


class ClientAddress:
    """ASGI middleware: the scope's ``client`` becomes the client's address (module
    docstring); the TCP peer is kept in ``scope["pmarket.peer"]``."""

    def __init__(self, app, trusted: tuple[Network, ...] = ()):
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope["pmarket.peer"] = client
            if self.trusted and client:
                forwarded = [v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
                address = client_address(client[0], forwarded, self.trusted)
                if address != client[0]:
                    scope["client"] = (address, 0)
        return await self.app(scope, receive, send)


def scope_address(scope) -> str:
    """The client address of a scope (after ``ClientAddress``), "unknown" without one."""
    client = scope.get("client")
    return client[0] if client else "unknown"
