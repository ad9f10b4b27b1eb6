"""A tiny in-memory stand-in for the pmarket server, spoken to over ``httpx.MockTransport``.

It answers the endpoints the terminal uses with the API's own objects (``pmarket.api``:
every answer is built through its model, so the fake cannot drift from the contract) and
deterministic data (fixed ids and timestamps), so screen tests and snapshots are
reproducible. It does not match orders: resting orders only build the book, and an
ioc/fok order (which could only fill by matching) comes back cancelled. It does check
what the server checks before matching: a buy needs the cash, a sell needs free shares
(``hold``). The end-to-end tests use the real embedded server instead.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx

from pmarket import api
from pmarket.client import AsyncClient

T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-02T18:30:00Z"  # when the fake resolves events
ONE = Decimal(1)


def _err(status: int, code: str, message: str) -> httpx.Response:
    return _ok(api.Error, {"error": {"code": code, "message": message}}, status)


def _ok(model: type[api.Out], body: dict, status: int = 200) -> httpx.Response:
    """An answer of ``model``'s shape (the fake's data checked against it)."""
    return httpx.Response(status, json=model.model_validate(body).to_json())


class FakeExchange:
    """State and routing of the fake server."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.admins = {"admin@x.io": {"id": 1, "email": "admin@x.io", "name": "Admin",
                                      "password": "admin-password"}}
        self.tokens: dict[str, tuple[str, str]] = {}
        self.cash: dict[str, Decimal] = {}
        self.holdings: dict[tuple[str, int], dict[str, int]] = {}
        self.fees: dict[int, Decimal] = {}  # event id -> fees collected (GET /admin/fees)
        self.requests: list[str] = []
        self.orders: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.payouts: list[tuple[str, dict[str, Any]]] = []  # (owner, payout), oldest first
        self.trades = [
            {"id": i, "market_id": 1, "price": p, "quantity": q, "taker_side": s,
             "executed_at": f"2024-05-01T12:0{i}:00Z"}
            for i, (p, q, s) in enumerate([("0.40", 10, "buy"), ("0.42", 5, "buy"),
                                           ("0.41", 8, "sell"), ("0.44", 20, "buy")], 1)]
        self.add_event("Will it rain in Paris tomorrow?", ["Rain"], "weather")
        self.add_event("Who wins the 2028 final?", ["Lions", "Tigers", "Bears"], "sports")
        self.resting("maker@x.io", 1, "yes", "buy", "0.40", 50)
        self.resting("maker@x.io", 1, "yes", "buy", "0.38", 120)
        self.resting("maker@x.io", 1, "yes", "sell", "0.45", 70)
        self.resting("maker@x.io", 1, "no", "buy", "0.50", 30)

    def client(self) -> AsyncClient:
        """An async client whose HTTP goes to this fake (its WebSocket goes nowhere)."""
        return AsyncClient("http://127.0.0.1:9", transport=httpx.MockTransport(self.handle))

    # --- state helpers -------------------------------------------------------------

    def add_event(self, title: str, outcomes: list[str], category: str = "",
                  fee_rate: str = "0.00") -> dict:
        """Add an event with one market per outcome."""
        eid = len(self.events) + 1
        base = sum(len(e["outcomes"]) for e in self.events)
        ev = {"id": eid, "slug": title.lower().replace(" ", "-")[:20], "title": title,
              "description": "", "category": category, "status": "active",
              "close_time": None, "created_at": T0, "resolution": None,
              "fee_rate": fee_rate,
              "outcomes": [{"id": base + i + 1, "name": n, "market_id": base + i + 1,
                            "last_price": None, "best_bid": None, "best_ask": None,
                            "volume": 0, "result": None}
                           for i, n in enumerate(outcomes or ["Yes"])]}
        self.events.append(ev)
        return ev

    def resting(self, email: str, market_id: int, outcome: str, side: str, price: str,
                quantity: int) -> dict:
        """Add a resting order."""
        order = {"id": len(self.orders) + 1, "client_order_id": None, "market_id": market_id,
                 "event_id": self._event_of(market_id)["id"], "outcome": outcome,
                 "side": side, "type": "limit", "price": price, "quantity": quantity,
                 "filled_quantity": 0, "remaining_quantity": quantity,
                 "time_in_force": "gtc", "post_only": False, "expires_at": None,
                 "status": "open", "created_at": T0, "updated_at": T0, "owner": email}
        self.orders.append(order)
        return order

    def hold(self, email: str, market_id: int, yes: int = 0, no: int = 0) -> None:
        """Give ``email`` shares of a market."""
        self.holdings[(email, market_id)] = {"yes": yes, "no": no}

    def resolve(self, event_id: int, winner: int | None, void: bool = False) -> Decimal:
        """Resolve an event as the server does: results, payouts (the shares burned and
        paid, at T1), its orders cancelled; the total paid."""
        ev = self.events[event_id - 1]
        ev["status"] = "resolved"
        ev["resolution"] = {"winning_outcome_id": None if void else winner, "void": void,
                            "resolved_at": T1}
        n = max(len(ev["outcomes"]), 2)
        total = Decimal(0)
        for o in ev["outcomes"]:
            mid = o["market_id"]
            o["result"] = "void" if void else "won" if mid == winner else "lost"
            yes_pays = (ONE / n).quantize(Decimal("0.0001"), "ROUND_DOWN") if void \
                else ONE if mid == winner else Decimal(0)
            for (owner, held_mid), held in sorted(self.holdings.items()):
                if held_mid != mid or not (held["yes"] or held["no"]):
                    continue
                amount = held["yes"] * yes_pays + held["no"] * (ONE - yes_pays)
                self.payouts.append((owner, {
                    "event_id": ev["id"], "market_id": mid, "outcome_name": o["name"],
                    "yes_quantity": held["yes"], "no_quantity": held["no"],
                    "amount": f"{amount:.4f}", "paid_at": T1}))
                self.cash[owner] = self.cash.get(owner, Decimal(0)) + amount
                held.update(yes=0, no=0, paid=amount)
                total += amount
        for order in self.orders:
            if order["event_id"] == ev["id"] and order["status"] == "open":
                order["status"] = "cancelled"
        return total

    def _settlement(self, market_id: int) -> Decimal | None:
        """What a YES share of a resolved market paid (None while it is open)."""
        ev = self._event_of(market_id)
        outcome = next(o for o in ev["outcomes"] if o["market_id"] == market_id)
        result = outcome["result"]
        if result is None:
            return None
        if result == "void":
            n = max(len(ev["outcomes"]), 2)
            return (ONE / n).quantize(Decimal("0.0001"), "ROUND_DOWN")
        return ONE if result == "won" else Decimal(0)

    def _reserved_shares(self, email: str, market_id: int, outcome: str) -> int:
        return sum(o["remaining_quantity"] for o in self.orders
                   if o["owner"] == email and o["market_id"] == market_id
                   and o["status"] == "open" and o["side"] == "sell"
                   and o["outcome"] == outcome)

    def _positions(self, email: str, market_id: int | None = None) -> list[dict]:
        out = []
        for (owner, mid), held in sorted(self.holdings.items()):
            if owner != email or (market_id is not None and mid != market_id):
                continue
            ev = self._event_of(mid)
            name = next(o["name"] for o in ev["outcomes"] if o["market_id"] == mid)
            settled = self._settlement(mid)
            out.append({"market_id": mid, "event_id": ev["id"], "outcome_id": mid,
                        "outcome_name": name, "yes_quantity": held["yes"],
                        "no_quantity": held["no"],
                        "yes_reserved": self._reserved_shares(email, mid, "yes"),
                        "no_reserved": self._reserved_shares(email, mid, "no"),
                        "avg_cost_yes": None, "avg_cost_no": None,
                        "mark_price": "0.44" if settled is None else f"{settled:.4f}",
                        "value": "0", "unrealized_pnl": "0",
                        "realized_pnl": str(held.get("paid", 0)),  # the fake's cost is 0
                        "settled": settled is not None})
        return out

    def _event_of(self, market_id: int) -> dict:
        return next(e for e in self.events
                    if any(o["market_id"] == market_id for o in e["outcomes"]))

    def book(self, market_id: int, view: str = "yes") -> dict:
        """The YES book of resting orders, in ``view``'s terms."""
        bids: dict[Decimal, int] = {}
        asks: dict[Decimal, int] = {}
        for o in self.orders:
            if o["market_id"] != market_id or o["status"] != "open":
                continue
            p = Decimal(o["price"])
            yes_bid = (o["side"] == "buy") == (o["outcome"] == "yes")
            yes_p = p if o["outcome"] == "yes" else ONE - p
            side = bids if yes_bid else asks
            side[yes_p] = side.get(yes_p, 0) + o["remaining_quantity"]
        if view == "no":
            bids, asks = ({ONE - p: q for p, q in asks.items()},
                          {ONE - p: q for p, q in bids.items()})
        b = [{"price": str(p), "quantity": q} for p, q in sorted(bids.items(), reverse=True)]
        a = [{"price": str(p), "quantity": q} for p, q in sorted(asks.items())]
        bb = Decimal(b[0]["price"]) if b else None
        ba = Decimal(a[0]["price"]) if a else None
        both = bb is not None and ba is not None
        return {"market_id": market_id, "view": view, "bids": b, "asks": a,
                "best_bid": str(bb) if bb is not None else None,
                "best_ask": str(ba) if ba is not None else None,
                "mid": str((bb + ba) / 2) if both else None,  # type: ignore[operator]
                "spread": str(ba - bb) if both else None,  # type: ignore[operator]
                "last_price": "0.44" if market_id == 1 else None, "sequence": 1}

    def volume(self, market_id: int) -> int:
        """Shares traded in a market (its trades as stored)."""
        return sum(t["quantity"] for t in self.trades if t["market_id"] == market_id)

    def _public(self, order: dict) -> dict:
        return {k: v for k, v in order.items() if k != "owner"}

    def _quoted(self, ev: dict) -> dict:
        out = json.loads(json.dumps(ev))
        for o in out["outcomes"]:
            book = self.book(o["market_id"])
            o["best_bid"], o["best_ask"] = book["best_bid"], book["best_ask"]
            o["last_price"] = book["last_price"]
            o["volume"] = self.volume(o["market_id"])
        return out

    # --- routing -------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests.append(f"{request.method} {request.url.path}")
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else {}
        params = dict(request.url.params)
        who = self.tokens.get(request.headers.get("authorization", "")[7:])
        parts = path.strip("/").split("/")
        if path == "/health":
            return _ok(api.Health, {"status": "ok", "components": {
                "engine": "ok", "database": "ok", "bus": "ok"}})
        if path == "/auth/signup":
            if body["email"] in self.users:
                return _err(409, "duplicate_email", "That email is already registered.")
            user = {"id": len(self.users) + 10, "email": body["email"], "name": body["name"],
                    "password": body["password"]}
            self.users[body["email"]] = user
            self.cash.setdefault(body["email"], Decimal(0))  # paid before signing up
            return self._token(201, "user", user)
        if path in ("/auth/signin", "/auth/admin/signin"):
            table = self.admins if "admin" in path else self.users
            user = table.get(body["email"])
            if user is None or user["password"] != body["password"]:
                return _err(401, "bad_credentials", "Wrong email or password.")
            return self._token(200, "admin" if "admin" in path else "user", user)
        if path == "/events" and method == "GET":
            q = params.get("q", "").lower()
            items = [self._quoted(e) for e in self.events
                     if q in e["title"].lower()
                     and params.get("category", e["category"]) == e["category"]
                     and params.get("status", e["status"]) == e["status"]]
            return _ok(api.Page[api.Event], {"items": items, "total": len(items)})
        if parts[0] == "events" and len(parts) == 2:
            return _ok(api.Event, self._quoted(self.events[int(parts[1]) - 1]))
        if parts[0] == "markets":
            return self._market(int(parts[1]), parts[2] if len(parts) > 2 else "", params)
        if who is None:
            return _err(401, "unauthenticated", "Sign in first.")
        role, email = who
        if parts[0] == "admin":
            if role != "admin":
                return _err(403, "forbidden", "Admins only.")
            return self._admin(method, parts, body)
        if role != "user":
            return _err(403, "forbidden", "Admin accounts cannot trade.")
        return self._account(method, parts, body, params, email)

    def _token(self, status: int, role: str, user: dict) -> httpx.Response:
        token = f"tok-{role}-{user['id']}"
        self.tokens[token] = (role, user["email"])
        key = "admin" if role == "admin" else "user"
        return _ok(api.AdminAuth if role == "admin" else api.Auth, {"token": token, key: {
            "id": user["id"], "email": user["email"], "name": user["name"]}}, status)

    def _market(self, market_id: int, what: str, params: dict) -> httpx.Response:
        ev = self._event_of(market_id)
        if what == "orderbook":
            return _ok(api.Book, self.book(market_id, params.get("view", "yes")))
        if what == "trades":
            items = [t for t in self.trades if t["market_id"] == market_id]
            return _ok(api.Page[api.PublicTrade], {"items": items[::-1], "total": len(items)})
        if what == "candles":
            items = [{"start": t["executed_at"], "open": t["price"], "high": t["price"],
                      "low": t["price"], "close": t["price"], "volume": t["quantity"]}
                     for t in self.trades if t["market_id"] == market_id]
            return _ok(api.Page[api.Candle], {"items": items, "total": len(items)})
        outcome = next(o for o in ev["outcomes"] if o["market_id"] == market_id)
        book = self.book(market_id)
        return _ok(api.Market, {
            "id": market_id, "event_id": ev["id"], "outcome_id": outcome["id"],
            "outcome_name": outcome["name"], "status": ev["status"], "tick_size": "0.01",
            "last_price": book["last_price"], "best_bid": book["best_bid"],
            "best_ask": book["best_ask"], "volume": self.volume(market_id),
            "open_interest": 20,
            "result": {"won": "yes", "lost": "no", "void": "void"}.get(outcome["result"])})

    def _balance(self, email: str) -> dict:
        reserved = sum((Decimal(o["price"]) * o["remaining_quantity"] for o in self.orders
                        if o["owner"] == email and o["status"] == "open"
                        and o["side"] == "buy"), Decimal(0))
        cash = self.cash.get(email, Decimal(0))
        return {"available": str(cash - reserved), "reserved": str(reserved),
                "total": str(cash)}

    def _account(self, method: str, parts: list[str], body: dict, params: dict,
                 email: str) -> httpx.Response:
        if parts == ["balance"]:
            return _ok(api.Balance, self._balance(email))
        if parts in (["onramp"], ["offramp"]):
            amount = Decimal(str(body["amount"]))
            if parts == ["offramp"]:
                if amount > Decimal(self._balance(email)["available"]):
                    return _err(409, "insufficient_balance", "Not enough available cash.")
                amount = -amount
            self.cash[email] = self.cash.get(email, Decimal(0)) + amount
            return _ok(api.Balance, self._balance(email))
        if parts == ["positions"]:
            mid = params.get("market_id")
            items = self._positions(email, int(mid) if mid else None)
            return _ok(api.Page[api.Position], {"items": items, "total": len(items)})
        if parts == ["portfolio"]:
            bal = self._balance(email)
            return _ok(api.Portfolio, {"balance": bal,
                                             "positions": self._positions(email),
                                             "positions_value": "0", "total_value":
                                             bal["total"], "pnl": "0"})
        if parts == ["payouts"]:
            eid = params.get("event_id")
            mine = [p for owner, p in reversed(self.payouts) if owner == email
                    and (eid is None or p["event_id"] == int(eid))]
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 50))
            return _ok(api.Page[api.Payout], {"items": mine[offset:offset + limit],
                                              "total": len(mine)})
        if parts == ["orders"] and method == "GET":
            mine = [self._public(o) for o in self.orders if o["owner"] == email
                    and (params.get("status") == "all" or o["status"] == "open")
                    and str(o["market_id"]) == params.get("market_id", str(o["market_id"]))]
            return _ok(api.Page[api.Order], {"items": mine, "total": len(mine)})
        if parts == ["orders"] and method == "POST":
            return self._place(body, email)
        if parts == ["orders"] and method == "DELETE":
            ids = []
            for o in self.orders:
                if o["owner"] == email and o["status"] == "open":
                    o["status"] = "cancelled"
                    ids.append(o["id"])
            return _ok(api.Cancelled, {"cancelled": ids})
        if parts[0] == "orders":
            order = next((o for o in self.orders if o["id"] == int(parts[1])
                          and o["owner"] == email), None)
            if order is None:
                return _err(404, "not_found", "No such order.")
            if method == "DELETE":
                order["status"] = "cancelled"
            elif method == "PATCH":
                order["price"] = str(body.get("price", order["price"]))
                order["quantity"] = body.get("quantity", order["quantity"])
                order["remaining_quantity"] = order["quantity"] - order["filled_quantity"]
                return _ok(api.OrderResult, {"order": self._public(order), "trades": []})
            return _ok(api.Order, self._public(order))
        return _err(404, "not_found", "No such route.")

    def _place(self, body: dict, email: str) -> httpx.Response:
        cost = Decimal(str(body.get("price") or 1)) * body["quantity"]
        if body["side"] == "buy" and cost > Decimal(self._balance(email)["available"]):
            return _err(409, "insufficient_balance",
                        f"This order needs {cost:.2f} and only "
                        f"{Decimal(self._balance(email)['available']):.2f} is available.")
        if body["side"] == "sell":
            mid, outcome = body["market_id"], body["outcome"]
            held = self.holdings.get((email, mid), {}).get(outcome, 0)
            free = held - self._reserved_shares(email, mid, outcome)
            if body["quantity"] > free:
                return _err(409, "insufficient_shares",
                            f"You hold {free} {outcome.upper()} free to sell.")
        order = self.resting(email, body["market_id"], body["outcome"], body["side"],
                             str(body.get("price")), body["quantity"])
        order["time_in_force"] = body.get("time_in_force", "gtc")
        if order["time_in_force"] in ("ioc", "fok"):
            order["status"] = "cancelled"  # the fake never matches
        return _ok(api.OrderResult, {"order": self._public(order), "trades": []}, 201)

    def _admin(self, method: str, parts: list[str], body: dict) -> httpx.Response:
        if parts == ["admin", "events"]:
            ev = self.add_event(body["title"], body.get("outcomes") or [],
                                body.get("category", ""), body.get("fee_rate", "0.00"))
            return _ok(api.Event, self._quoted(ev), 201)
        if parts == ["admin", "fees"]:
            return _ok(api.Fees, {
                "total": str(sum(self.fees.values(), Decimal(0))),
                "by_event": [{"event_id": eid, "amount": str(amount)}
                             for eid, amount in sorted(self.fees.items())]})
        if parts == ["admin", "audit"]:
            return _ok(api.Audit, {
                "ok": True, "deposits": "100.00", "withdrawals": "0", "user_cash": "100.00",
                "collateral": "0", "fees": "0", "rounding": "0", "difference": "0",
                "markets": []})
        if parts == ["admin", "users"]:
            items = [{k: v for k, v in u.items() if k != "password"}
                     | {"created_at": T0, "disabled": False, "disabled_at": None}
                     for u in self.users.values()]
            return _ok(api.Page[api.AdminUser], {"items": items, "total": len(items)})
        ev = self.events[int(parts[2]) - 1]
        if len(parts) == 4 and parts[3] == "resolve":
            if ev["status"] == "resolved":
                return _err(409, "already_resolved", "The event is already resolved.")
            paid = self.resolve(ev["id"], body.get("winning_outcome_id"),
                                bool(body.get("void")))
            return _ok(api.Resolution, {"event": self._quoted(ev),
                                        "payouts_total": f"{paid:.4f}"})
        if method == "PATCH":
            ev.update({k: v for k, v in body.items() if v is not None})
            return _ok(api.Event, self._quoted(ev))
        return _err(404, "not_found", "No such route.")
