"""Prometheus metrics of one server process, in a registry of its own.

Requests (count and latency by route template and status), orders and their outcome,
trades seen on the event stream, engine round trips, WebSocket connections, and the
market-data and projection lag. A registry per app (not the global one) lets tests and
benchmarks build many apps in one process.

Invariant: labels are bounded — route *templates* (``/orders/{order_id}``), never raw
paths, so a scanner cannot blow up the label space.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """The server's metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("pmarket_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("pmarket_http_request_duration_seconds",
                                 "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.orders = Counter("pmarket_orders_total", "Order placements sent to the engine",
                              ["result"], registry=r)
        self.trades = Counter("pmarket_trades_total", "Trades seen on the event stream",
                              registry=r)
        self.engine_latency = Histogram("pmarket_engine_request_duration_seconds",
                                        "Engine command round trips", ["command"],
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.rejections = Counter("pmarket_engine_rejections_total",
                                  "Commands the engine rejected", ["reason"], registry=r)
        self.websockets = Gauge("pmarket_websocket_connections", "Open WebSocket connections",
                                registry=r)
        self.connections_refused = Counter(
            "pmarket_http_connections_refused_total",
            "Connections answered 503 before their request: the server full, or the "
            "address over its limit", ["reason"], registry=r)
        self.connections_timed_out = Counter(
            "pmarket_http_requests_timed_out_total",
            "Connections answered 408: the request was not sent in time", registry=r)
        self.rate_limited = Counter("pmarket_rate_limited_total", "Requests refused with 429",
                                    registry=r)
        self.replica_seq = Gauge("pmarket_marketdata_seq",
                                 "Last engine command seq applied by the market-data replica",
                                 registry=r)

    def observe_command(self, name: str, seconds: float, rejected: str | None) -> None:
        """Record one engine round trip (the gateway's ``observe`` hook)."""
        self.engine_latency.labels(name).observe(seconds)
        if rejected is not None:
            self.rejections.labels(rejected).inc()
        if name in ("PlaceOrder", "PlaceBatch"):
            self.orders.labels("rejected" if rejected else "accepted").inc()

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
