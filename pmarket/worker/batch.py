"""Turning the events of many deliveries into the rows one transaction writes.

Pure: no database access. ``needs`` says what must be read first (positions' previous
state, markets' events and last prices), the projector reads it, and ``Batch.walk``
folds every event, in order, into per-table rows:

* state events (``order``, ``balance``, ``position``, ``event``) collapse to the last
  value per key, so a hot order or balance is written once per batch however often it
  changed;
* facts (``fill``, ``ledger``, ``payout``) become one row each, keyed by their own
  identity (trade id; ``(stream, first_seq, index)``);
* derived values (market volume / last price / open interest, candles, cost basis) are
  accumulated as deltas and merged into the stored values by the writer.

``book``, ``rejected``, ``duplicate``, ``batch_item``, ``clock`` and ``dead_man`` events
change no table (a dead-man switch lives in the engine alone).

Invariant: the rows of a batch equal the rows of projecting its deliveries one at a
time, and every integer destined for a BIGINT column is checked by ``bounded`` here,
before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pmarket.db.types import bounded, from_ms
from pmarket.engine import events as ev
from pmarket.runtime.eventlog import Delivery

from . import costbasis
from .costbasis import Holding

CANDLE_INTERVALS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
"""Candle interval names and lengths in ms; buckets start at multiples of the length."""

_IGNORED = frozenset({ev.BOOK, ev.REJECTED, ev.DUPLICATE, ev.BATCH_ITEM, ev.CLOCK,
                      ev.DEAD_MAN})
_EVENT_LEVEL = frozenset({"split_event", "merge_event", "convert"})
_SHARE_LEDGER = frozenset({"split", "merge", "split_event", "merge_event", "convert",
                           "payout"})
_COMMAND_FACTS = frozenset({ev.LEDGER, ev.FILL, ev.EVENT})  # a command's first events


@dataclass(slots=True)
class MarketInfo:
    """What the walk needs to know about a market: its event and last YES price."""

    event_id: int
    last_price: int | None


@dataclass(slots=True)
class Needs:
    """What the projector must read before ``walk``."""

    market_ids: set[int] = field(default_factory=set)
    event_ids: set[int] = field(default_factory=set)
    position_keys: set[tuple[int, int]] = field(default_factory=set)
    event_users: set[tuple[int, int]] = field(default_factory=set)  # (event, user)


def fill_fee(e: tuple) -> int:
    """The taker's fee of a ``fill`` event; 0 for one written before fees existed (still
    in the stream at an upgrade, or parked), which is what it charged."""
    return e[12] if len(e) > 12 else 0


def needs(deliveries: Iterable[Delivery]) -> Needs:
    """Scan deliveries for the markets, events and positions the walk will touch."""
    out = Needs()
    for delivery in deliveries:
        needs_of(delivery.events, out)
    return out


def needs_of(events: Iterable[tuple], out: Needs | None = None) -> Needs:
    """``needs`` of some events (added to ``out``)."""
    out = Needs() if out is None else out
    keys = out.position_keys
    for e in events:
        kind = e[0]
        if kind == ev.POSITION:
            keys.add((e[1], e[2]))
        elif kind == ev.FILL:
            keys.add((e[8], e[2]))
            keys.add((e[10], e[2]))
            out.market_ids.add(e[2])
        elif kind == ev.LEDGER:
            user, lkind, market, event = e[1], e[2], e[5], e[4]
            if market is not None:
                keys.add((user, market))
                out.market_ids.add(market)
                if lkind == "payout":  # it reads its event's outcomes
                    out.event_ids.add(event)
            elif lkind in _EVENT_LEVEL:
                out.event_ids.add(event)
                out.event_users.add((event, user))
        elif kind in (ev.RESOLVED, ev.EVENT_DELETED):
            out.event_ids.add(e[1])
    return out


def lookahead(events: Sequence[tuple], index: int) -> list[tuple] | None:
    """The later events of a delivery that projecting ``events[index]`` reads.

    Only a ``convert`` (the positions its command reports next) and a ``payout`` (its
    event's ``resolved``) look ahead; None for every other event. A parked event keeps
    these beside it, so a replay sees what the walk of its delivery saw.
    """
    e = events[index]
    if e[0] != ev.LEDGER or len(e) < 5:
        return None
    if e[2] == "convert":
        out = []
        for later in events[index + 1:]:
            if later[0] in _COMMAND_FACTS:
                break
            out.append(later)
        return out
    if e[2] == "payout":
        return [x for x in events[index + 1:] if x[0] == ev.RESOLVED and x[1] == e[4]][:1]
    return None


@dataclass(slots=True)
class MarketStats:
    """Changes to a market's running figures within the batch."""

    volume: int = 0
    open_interest: int = 0
    last_price: int | None = None
    last_trade_ms: int | None = None


class Batch:
    """The rows of one transaction, built from deliveries by ``walk``.

    Args:
        stream: the stream key the deliveries came from (part of ledger identities).
        holdings: previous state of every position in ``needs().position_keys`` that
            exists (missing keys start empty).
        markets: ``MarketInfo`` of every market in ``needs().market_ids`` and of every
            market of ``needs().event_ids``.
        event_markets: the market ids of each event in ``needs().event_ids``, in
            outcome order.
        replay: the events are older than what the database holds (a parked event
            replayed, a late delivery): a position the database already has from this
            delivery's commands or later keeps its quantities (a fill or ledger event
            changes its cost and P&L only), and the writer recomputes market figures
            and candles from the stored trades instead of adding to them.
    """

    def __init__(self, stream: str, holdings: dict[tuple[int, int], Holding],
                 markets: dict[int, MarketInfo], event_markets: dict[int, list[int]],
                 replay: bool = False):
        self.stream = stream
        self.replay = replay
        self.holdings = holdings
        self.markets = markets
        self.event_markets = event_markets
        self.orders: dict[int, dict] = {}
        self.balances: dict[int, dict] = {}
        self.trades: list[dict] = []
        self.ledger: list[dict] = []
        self.payouts: list[dict] = []
        self.events: dict[int, dict] = {}
        self.new_markets: dict[int, dict] = {}
        self.resolutions: dict[int, dict] = {}
        self.deleted_events: dict[int, int] = {}  # event id -> ms deleted (0: unknown)
        self.stats: dict[int, MarketStats] = {}
        self.candles: dict[tuple[int, str, int], list[int]] = {}
        self.event_count = 0
        self._following: Sequence[tuple] | None = None
        self._handlers = {
            ev.ORDER: self._order, ev.FILL: self._fill, ev.BALANCE: self._balance,
            ev.POSITION: self._position, ev.LEDGER: self._ledger, ev.EVENT: self._event,
            ev.EVENT_DELETED: self._event_deleted, ev.RESOLVED: self._resolved,
            ev.PAYOUT: self._payout_row,
        }

    # --- the walk ------------------------------------------------------------------

    def walk(self, deliveries: Iterable[Delivery]) -> Batch:
        """Fold every event of ``deliveries`` (in order) into this batch's rows."""
        for delivery in deliveries:
            self.walk_range(delivery, 0, len(delivery.events))
        return self

    def walk_range(self, delivery: Delivery, start: int, stop: int) -> Batch:
        """Fold events ``start .. stop - 1`` of ``delivery`` only.

        Identities stay those of the whole delivery (a ledger entry is still its
        ``index``-th event) and look-ahead still reads the delivery's later events, so
        walking a delivery in consecutive ranges writes what walking it whole does.
        """
        events = delivery.events
        self.event_count += stop - start
        for index in range(start, stop):
            self._fold(events[index], delivery, index)
        return self

    def walk_event(self, delivery: Delivery, index: int, event: tuple,
                   following: Sequence[tuple] | None) -> Batch:
        """Fold one ``event`` that was the ``index``-th of ``delivery`` (a replay).

        ``delivery`` needs no events: ``following`` stands for the later events its
        look-ahead reads (``lookahead``).
        """
        self.event_count += 1
        self._following = following or ()
        try:
            self._fold(event, delivery, index)
        finally:
            self._following = None
        return self

    def _fold(self, e: tuple, delivery: Delivery, index: int) -> None:
        kind = e[0]
        if kind in _IGNORED:
            return
        handler = self._handlers.get(kind)
        if handler is None:
            raise ValueError(f"unknown event kind {kind!r} in commands "
                             f"{delivery.first_seq}..{delivery.last_seq}")
        handler(e, delivery, index)

    def _after(self, d: Delivery, index: int) -> Sequence[tuple]:
        """The delivery's events after ``index`` (what a replay kept of them)."""
        return d.events[index + 1:] if self._following is None else self._following

    def _settled(self, holdings: Iterable[Holding], d: Delivery) -> list[tuple]:
        """In a replay, the holdings whose stored quantities already include ``d``."""
        if not self.replay:
            return []
        return [(h, h.qty[:], h.reserved[:]) for h in holdings if h.seq >= d.last_seq]

    @staticmethod
    def _restore(settled: list[tuple]) -> None:
        for holding, qty, reserved in settled:
            holding.qty, holding.reserved = qty, reserved

    def _holding(self, user_id: int, market_id: int) -> Holding:
        key = (user_id, market_id)
        holding = self.holdings.get(key)
        if holding is None:
            holding = self.holdings[key] = Holding(key)
        return holding

    def _stats(self, market_id: int) -> MarketStats:
        stats = self.stats.get(market_id)
        if stats is None:
            stats = self.stats[market_id] = MarketStats()
        return stats

    def _order(self, e: tuple, d: Delivery, _index: int) -> None:
        (_, oid, user, market, event, outcome, side, otype, price, qty, filled, status,
         tif, post_only, expires_ms, coid, created_ms, updated_ms, reason) = e
        bounded(oid, "order id")
        bounded(price, f"price of order {oid}")
        bounded(qty, f"quantity of order {oid}")
        bounded(filled, f"filled quantity of order {oid}")
        self.orders[oid] = {
            "id": oid, "user_id": user, "market_id": market, "event_id": event,
            "outcome": outcome, "side": side, "order_type": otype, "price": price,
            "quantity": qty, "filled": filled, "status": status, "tif": tif,
            "post_only": bool(post_only), "expires_at": from_ms(expires_ms),
            "client_order_id": coid, "reason": reason, "created_at": from_ms(created_ms),
            "updated_at": from_ms(updated_ms), "seq": d.last_seq,
        }

    def _balance(self, e: tuple, d: Delivery, _index: int) -> None:
        _, user, available, reserved = e
        bounded(available, f"available cash of user {user}")
        bounded(reserved, f"reserved cash of user {user}")
        self.balances[user] = {"user_id": bounded(user, "user id"), "available": available,
                               "reserved": reserved, "seq": d.last_seq}

    def _position(self, e: tuple, d: Delivery, _index: int) -> None:
        _, user, market, yes, no, yes_res, no_res = e
        holding = self._holding(user, market)
        if holding.seq > d.last_seq:
            return  # a late (retried) delivery never overwrites newer state
        holding.set_state(yes, no, yes_res, no_res, d.last_seq)

    def _fill(self, e: tuple, d: Delivery, _index: int) -> None:
        (_, tid, market, price, qty, kind, taker_side, t_oid, t_uid, m_oid, m_uid, ts) = e[:12]
        fee = fill_fee(e)
        bounded(tid, "trade id")
        bounded(price * qty, f"value of trade {tid}")
        bounded(fee, f"fee of trade {tid}")
        info = self.markets.get(market)
        if info is None:
            # Its volume, price and candles would have nowhere to go: the trade waits
            # (parked) for its market's event, which was parked before it.
            raise ValueError(f"market {market} of trade {tid} is unknown to the database: "
                             "its event must be stored before its trades")
        self.trades.append({
            "id": tid, "market_id": market, "price": price, "quantity": qty, "kind": kind,
            "taker_side": taker_side, "taker_order_id": t_oid, "taker_user_id": t_uid,
            "maker_order_id": m_oid, "maker_user_id": m_uid, "executed_at": from_ms(ts),
            "seq": d.last_seq, "fee": fee,
        })
        bid_user, ask_user = (t_uid, m_uid) if taker_side == "buy" else (m_uid, t_uid)
        bid, ask = self._holding(bid_user, market), self._holding(ask_user, market)
        settled = self._settled((bid, ask), d)
        costbasis.apply_fill(bid, ask, kind, price, qty, fee, taker_side == "buy")
        self._restore(settled)
        stats = self._stats(market)
        stats.volume += qty
        stats.last_price = price
        stats.last_trade_ms = ts
        info.last_price = price
        for name, length in CANDLE_INTERVALS.items():
            key = (market, name, ts - ts % length)
            candle = self.candles.get(key)
            if candle is None:
                self.candles[key] = [price, price, price, price, qty, 1]
            else:
                if price > candle[1]:
                    candle[1] = price
                if price < candle[2]:
                    candle[2] = price
                candle[3] = price
                candle[4] += qty
                candle[5] += 1

    def _ledger(self, e: tuple, d: Delivery, index: int) -> None:
        _, user, kind, amount, event, market, qty, ts = e
        bounded(amount, f"{kind} amount of user {user}")
        bounded(qty, f"{kind} quantity of user {user}")
        self.ledger.append({
            "user_id": bounded(user, "user id"), "kind": kind, "amount": amount,
            "event_id": event, "market_id": market, "quantity": qty, "at": from_ms(ts),
            "stream": self.stream, "seq": d.first_seq, "idx": index,
        })
        if kind in ("deposit", "withdrawal"):
            return
        if kind not in _SHARE_LEDGER:
            raise ValueError(f"unknown ledger kind {kind!r}")
        touched = ([self._holding(user, market)] if market is not None
                   else [self._holding(user, m) for m in self._markets_of(event)])
        settled = self._settled(touched, d)
        if kind in ("split", "merge"):
            info = self.markets.get(market)
            last = info.last_price if info is not None else None
            (costbasis.split if kind == "split" else costbasis.merge)(touched[0], qty, last)
        elif kind in ("split_event", "merge_event"):
            ids = self._markets_of(event)
            last = [self.markets[m].last_price if m in self.markets else None for m in ids]
            (costbasis.split_event if kind == "split_event" else costbasis.merge_event)(
                touched, qty, last)
        elif kind == "convert":
            self._convert(user, event, qty, amount, self._after(d, index))
        else:
            self._payout(user, event, market, amount, self._after(d, index))
        self._restore(settled)

    def _payout_row(self, e: tuple, d: Delivery, index: int) -> None:
        """A position's payout (its cash and cost basis move with its ``ledger`` entry)."""
        _, user, event, market, yes, no, amount, ts = e
        self.payouts.append({
            "user_id": bounded(user, "user id"), "event_id": bounded(event, "event id"),
            "market_id": bounded(market, "market id"),
            "yes": bounded(yes, f"YES paid out to user {user}"),
            "no": bounded(no, f"NO paid out to user {user}"),
            "amount": bounded(amount, f"payout amount of user {user}"),
            "paid_at": from_ms(ts), "stream": self.stream, "seq": d.first_seq, "idx": index,
        })

    def _markets_of(self, event_id: int) -> list[int]:
        ids = self.event_markets.get(event_id)
        if ids is None:
            raise ValueError(f"event {event_id} is unknown to the database: its event "
                             "must be projected before operations on it")
        return ids

    def _convert(self, user: int, event: int, qty: int, released: int,
                 following: Sequence[tuple]) -> None:
        """Which NOs were converted is read from the command's following positions."""
        ids = self._markets_of(event)
        after: dict[int, tuple] = {}
        for later in following:
            if later[0] == ev.POSITION and later[1] == user and later[2] in ids:
                after.setdefault(later[2], later)
            elif later[0] in _COMMAND_FACTS:
                break  # the next command's facts: this command's states are behind us
        chosen, others = [], []
        for m in ids:
            holding = self._holding(user, m)
            state = after.get(m)
            if state is not None and state[4] < holding.qty[costbasis.NO]:
                chosen.append(holding)
            else:
                others.append(holding)
        costbasis.convert(chosen, others, qty, released)

    def _payout(self, user: int, event: int, market: int, amount: int,
                following: Sequence[tuple]) -> None:
        resolved = next((e for e in following if e[0] == ev.RESOLVED and e[1] == event),
                        None)
        if resolved is None:
            raise ValueError(f"payout in event {event} without its resolved event")
        _, _, winner, void, _paid, _rounding, _ts = resolved
        ids = self._markets_of(event)
        outcomes = len(ids) if len(ids) > 1 else 2
        costbasis.payout(self._holding(user, market), amount, market == winner, bool(void),
                         outcomes)

    def _event(self, e: tuple, d: Delivery, _index: int) -> None:
        (_, eid, status, title, description, category, slug, close_ms, tick, markets,
         created_ms, winner, void) = e[:13]
        fee_rate = e[13] if len(e) > 13 else 0  # an event stored before fees existed
        created = from_ms(created_ms)
        self.events[eid] = {
            "id": bounded(eid, "event id"), "status": status, "title": title,
            "description": description or "", "category": category or "",
            "slug": slug or "", "close_time": from_ms(close_ms), "tick": tick,
            "winning_outcome_id": winner, "void": bool(void), "fee_rate": fee_rate,
            "created_at": created,
            "updated_at": from_ms(d.ts_ms) if d.ts_ms else created, "seq": d.last_seq,
        }
        ids = []
        for position, (mid, name) in enumerate(markets):
            ids.append(mid)
            self.new_markets[mid] = {"id": bounded(mid, "market id"), "event_id": eid,
                                     "name": name, "position": position, "status": status,
                                     "tick": tick}
            if mid not in self.markets:
                self.markets[mid] = MarketInfo(eid, None)
        self.event_markets[eid] = ids

    def _event_deleted(self, e: tuple, d: Delivery, _index: int) -> None:
        eid = e[1]
        self._markets_of(eid)  # an event the database lacks (parked) cannot be deleted
        row = self.events.get(eid)
        if row is not None:
            row["status"] = "deleted"
        for market in self.new_markets.values():
            if market["event_id"] == eid:
                market["status"] = "deleted"
        self.deleted_events[eid] = d.ts_ms

    def _resolved(self, e: tuple, d: Delivery, _index: int) -> None:
        _, eid, _winner, _void, paid, rounding, ts = e
        self._markets_of(eid)  # nor resolved
        self.resolutions[eid] = {"id": eid, "payouts_total": bounded(paid, "payouts total"),
                                 "rounding": bounded(rounding, "rounding"),
                                 "resolved_at": from_ms(ts)}

    # --- results -------------------------------------------------------------------

    def position_rows(self) -> list[dict]:
        """Rows of every position the batch changed; open-interest deltas into stats."""
        rows = []
        for holding in self.holdings.values():
            if not holding.touched:
                continue
            row = holding.row()
            for name in ("yes", "no", "yes_reserved", "no_reserved", "yes_cost", "no_cost",
                         "yes_realized_pnl", "no_realized_pnl"):
                bounded(row[name], f"{name} of user {row['user_id']} in market "
                                   f"{row['market_id']}")
            rows.append(row)
            delta = holding.qty[costbasis.YES] - holding.yes_before
            if delta:
                self._stats(holding.key[1]).open_interest += delta
        return rows

    def candle_rows(self) -> list[dict]:
        """One row per (market, interval, bucket) the batch's trades fell in."""
        return [
            {"market_id": market, "interval": interval, "start": from_ms(start),
             "open": c[0], "high": c[1], "low": c[2], "close": c[3],
             "volume": bounded(c[4], f"candle volume of market {market}"), "trades": c[5]}
            for (market, interval, start), c in self.candles.items()
        ]
