"""Snapshots: the engine's whole state as plain data, and back.

``restore(snapshot())`` yields an engine that behaves exactly like the original: the
same events for the same following commands. Open orders are stored in the order they
rested, which is also their time priority within each price level, so resting them
again rebuilds every queue. ``digest()`` hashes the snapshot: two engines fed the same
command log have the same digest.
"""

from __future__ import annotations

import hashlib
import heapq

import orjson

from .book import Order
from .ledger import Account, Event, Market, Position
from .units import SCALE

SNAPSHOT_VERSION = 2
_ID_KINDS = ("order", "trade", "event", "market")

_ORDER_FIELDS = ("id", "user", "action", "price", "quantity", "remaining", "filled", "status",
                 "created_ms", "updated_ms", "reason", "order_type", "tif", "post_only",
                 "expires_at_ms", "client_order_id", "stp")


def _order_data(o: Order) -> dict:
    data = {f: getattr(o, f) for f in _ORDER_FIELDS}
    data["market"] = o.market.id
    return data


class SnapshotMixin:
    """``snapshot``, ``restore`` and ``digest`` of ``Engine``."""

    def snapshot(self) -> dict:
        """The complete state as JSON-ready plain data."""
        t = self.treasury
        return {
            "version": SNAPSHOT_VERSION,
            "ids": {"offset": self.id_offset, "stride": self.id_stride,
                    **{k: getattr(self, f"last_{k}_id") for k in _ID_KINDS}},
            "now_ms": self.now_ms,
            "last_seq": self.last_seq,
            "treasury": [t.deposits, t.withdrawals, t.fees, t.rounding],
            "events": [self._event_data(e) for e in self.events.values()],
            "accounts": [
                [a.user, a.available, a.reserved,
                 [[p.market_id, p.yes, p.no, p.yes_reserved, p.no_reserved]
                  for p in a.positions.values()]]
                for a in self.accounts.values()
            ],
            "orders": [_order_data(o) for o in self.orders.values()],
            "client_orders": [
                [user, coid, o.id if o.id in self.orders and self.orders[o.id] is o
                 else _order_data(o)]
                for (user, coid), o in self.client_orders.items()
            ],
        }

    @staticmethod
    def _event_data(e: Event) -> dict:
        return {
            "id": e.id, "title": e.title, "tick": e.tick, "created_ms": e.created_ms,
            "description": e.description, "category": e.category, "slug": e.slug,
            "close_time_ms": e.close_time_ms, "status": e.status, "collateral": e.collateral,
            "winning_outcome_id": e.winning_outcome_id, "void": e.void,
            "markets": [[m.id, m.name, m.status, m.last_price, m.volume, list(m.holders)]
                        for m in e.markets],
        }

    def digest(self) -> str:
        """SHA-256 of the snapshot: equal digests mean equal state."""
        return hashlib.sha256(orjson.dumps(self.snapshot())).hexdigest()

    @classmethod
    def restore(cls, data: dict):
        """A new engine in exactly the state ``data`` (from ``snapshot``) describes."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {data.get('version')!r}")
        ids = data["ids"]
        eng = cls(id_offset=ids["offset"], id_stride=ids["stride"])
        for kind in _ID_KINDS:
            setattr(eng, f"last_{kind}_id", ids[kind])
        eng.now_ms = data["now_ms"]
        eng.last_seq = data["last_seq"]
        t = eng.treasury
        t.deposits, t.withdrawals, t.fees, t.rounding = data["treasury"]
        holder_order: dict[int, list[int]] = {}
        for ed in data["events"]:
            e = Event(ed["id"], ed["title"], ed["tick"], ed["created_ms"])
            for f in ("description", "category", "slug", "close_time_ms", "status",
                      "collateral", "winning_outcome_id", "void"):
                setattr(e, f, ed[f])
            for mid, name, status, last, volume, holders in ed["markets"]:
                m = Market(mid, e, name, e.tick, SCALE)
                m.status, m.last_price, m.volume = status, last, volume
                holder_order[mid] = holders
                e.markets.append(m)
                eng.markets[mid] = m
            eng.events[e.id] = e
        for user, available, reserved, positions in data["accounts"]:
            a = eng.accounts[user] = Account(user)
            a.available, a.reserved = available, reserved
            for mid, yes, no, yes_res, no_res in positions:
                p = a.positions[mid] = Position(user, mid)
                p.yes, p.no, p.yes_reserved, p.no_reserved = yes, no, yes_res, no_res
        # Holders in their original order: resolution pays out in that order.
        for mid, holders in holder_order.items():
            eng.markets[mid].holders = {u: eng.accounts[u].positions[mid] for u in holders}
        for od in data["orders"]:
            o = eng._order_from(od)
            o.account = eng.accounts[o.user]
            o.position = o.account.positions[o.market.id]
            o.market.book.rest(o)
            eng.orders[o.id] = o
            o.account.orders[o.id] = o
            if o.expires_at_ms is not None:
                heapq.heappush(eng._expiry, (o.expires_at_ms, o.id))
        for user, coid, ref in data["client_orders"]:
            eng.client_orders[(user, coid)] = (
                eng.orders[ref] if isinstance(ref, int) else eng._order_from(ref))
        for m in eng.markets.values():
            m.book.dirty.clear()
        return eng

    def _order_from(self, od: dict) -> Order:
        market = self.markets[od["market"]]
        yes = od["action"] in (0, 2)
        slot = (od["price"] if yes else SCALE - od["price"]) // market.tick
        o = Order(od["id"], od["user"], market, od["action"], od["price"], slot,
                  od["quantity"], od["created_ms"])
        for f in _ORDER_FIELDS[4:]:
            setattr(o, f, od[f])
        return o
