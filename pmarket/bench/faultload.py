"""The traders of a fault run and the checks that follow it (see ``faults``).

``Trader`` is a thread with its own user and HTTP connection that places and cancels
orders until told to stop, and remembers every answer: each acknowledged order (201 with
its id and parameters) and each acknowledged cancel (200). A request that gets no answer
(the server was killed under it) or a 5xx is sent again, unchanged, until the server
answers: an order carries a ``client_order_id``, so a resend can never place it twice —
it returns the original order if the first attempt was applied. ``verify`` then reads
every acknowledged order back as its owner and lists what is missing, different or
duplicated.

Invariant: an order counts as acknowledged only if the server answered 201 for it; the
checks never count an order the client could not know about.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

TRANSIENT = frozenset({502, 503, 504})
RESEND_DEADLINE_S = 180.0
"""How long a request is resent while the server is down before the run fails."""


class ServerGone(RuntimeError):
    """A request found no server for ``RESEND_DEADLINE_S``."""


@dataclass
class Acked:
    """An acknowledged order: what the owner sent and the id it got."""

    order_id: int
    client_order_id: str
    market_id: int
    outcome: str
    price: str
    quantity: int


@dataclass
class Account:
    """A trader's user."""

    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class TraderLog:
    """What one trader was told."""

    orders: list[Acked] = field(default_factory=list)
    cancels: set[int] = field(default_factory=set)
    resent: int = 0  # requests sent again after no answer / a 5xx
    rejected: Counter = field(default_factory=Counter)  # 4xx codes of placements


class Trader(threading.Thread):
    """Places and cancels orders over its own connection until ``stop`` is set.

    Args:
        index: the trader's number (prefix of its client order ids).
        base_url: the server.
        account: its user.
        markets: the market ids it trades.
        seed: its random seed.
        stop: set to end the loop (a request in flight is finished first).
    """

    def __init__(self, index: int, base_url: str, account: Account, markets: list[int],
                 seed: int, stop: threading.Event):
        super().__init__(name=f"pmarket-fault-trader-{index}", daemon=True)
        self.index = index
        self.account = account
        self.markets = markets
        self.rng = random.Random(seed)
        self.stop = stop
        self.log = TraderLog()
        self.error: BaseException | None = None
        self.http = httpx.Client(base_url=base_url, headers=account.headers, timeout=15.0)
        self._open: list[int] = []
        self._sent = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self._open and self.rng.random() < 0.3:
                    self._cancel(self._open.pop(self.rng.randrange(len(self._open))))
                else:
                    self._place()
        except BaseException as exc:  # reported by the run, not lost in the thread
            self.error = exc
        finally:
            self.http.close()

    def _send(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        """Send until the server answers something other than a transient failure."""
        deadline = time.monotonic() + RESEND_DEADLINE_S
        while True:
            try:
                response = self.http.request(method, path, json=body)
                if response.status_code not in TRANSIENT:
                    return response
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerGone(f"{method} {path}: no answer for {RESEND_DEADLINE_S:.0f}s")
            self.log.resent += 1
            time.sleep(0.05)

    def _place(self) -> None:
        self._sent += 1
        order = Acked(0, f"f{self.index}-{self._sent}", self.rng.choice(self.markets),
                      self.rng.choice(("yes", "no")), f"0.{self.rng.randint(45, 55)}",
                      self.rng.randint(1, 5))
        response = self._send("POST", "/orders", {
            "market_id": order.market_id, "outcome": order.outcome, "side": "buy",
            "price": order.price, "quantity": order.quantity,
            "client_order_id": order.client_order_id})
        if response.status_code in (200, 201):
            body = response.json()["order"]
            order.order_id = body["id"]
            self.log.orders.append(order)
            if body["status"] in ("open", "partially_filled"):
                self._open.append(order.order_id)
        else:
            self.log.rejected[response.status_code] += 1

    def _cancel(self, order_id: int) -> None:
        response = self._send("DELETE", f"/orders/{order_id}")
        if response.status_code == 200:
            self.log.cancels.add(order_id)


@dataclass
class Findings:
    """What reading everything back found."""

    acknowledged: int = 0
    cancels: int = 0
    missing: int = 0
    mismatched: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(problem)


def verify(http: httpx.Client, traders: list[Trader]) -> Findings:
    """Read every acknowledged order back as its owner; count the missing, the
    different (fields, or not cancelled after an acknowledged cancel) and the duplicated
    (two orders of one client order id, or one id acknowledged twice)."""
    found = Findings()
    for trader in traders:
        headers = trader.account.headers
        log = trader.log
        found.acknowledged += len(log.orders)
        found.cancels += len(log.cancels)
        for order in log.orders:
            r = _get(http, f"/orders/{order.order_id}", headers)
            if r.status_code == 404:
                found.missing += 1
                found.note(f"order {order.order_id} ({order.client_order_id}) is missing")
                continue
            row = r.json()
            same = (row["client_order_id"] == order.client_order_id
                    and row["market_id"] == order.market_id
                    and row["outcome"] == order.outcome and row["side"] == "buy"
                    and Decimal(row["price"]) == Decimal(order.price)
                    and row["quantity"] == order.quantity)
            if order.order_id in log.cancels and row["status"] != "cancelled":
                same = False
            if not same:
                found.mismatched += 1
                found.note(f"order {order.order_id} reads back as {row}, sent {order}")
        # Two stored orders of one client order id: a resend placed twice.
        stored = Counter(row["client_order_id"] for row in _all_orders(http, headers))
        twice = sum(n - 1 for n in stored.values() if n > 1)
        if twice:
            found.duplicated += twice
            found.note(f"trader {trader.index}: {twice} client order ids stored twice")
    # One order id acknowledged twice (to anyone): two engines numbering alike.
    ids = Counter(o.order_id for t in traders for o in t.log.orders)
    twice = sum(n - 1 for n in ids.values() if n > 1)
    if twice:
        found.duplicated += twice
        found.note(f"{twice} order ids acknowledged more than once")
    return found


def _get(http: httpx.Client, path: str, headers: dict, params: dict | None = None
         ) -> httpx.Response:
    r = http.get(path, headers=headers, params=params)
    if r.status_code >= 500 or r.status_code in (401, 403):
        raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:200]}")
    return r


def _all_orders(http: httpx.Client, headers: dict) -> list[dict]:
    rows: list[dict] = []
    while True:
        page = _get(http, "/orders", headers, {"status": "all", "limit": 500,
                                               "offset": len(rows)}).json()
        rows += page["items"]
        if not page["items"] or len(rows) >= page["total"]:
            return rows
