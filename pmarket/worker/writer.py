"""The projection's reads and writes: set-based statements, a few per table per batch.

Every write is an ``executemany`` of one statement per table (PostgreSQL and SQLite
upserts: ``INSERT .. ON CONFLICT``), so a batch of thousands of events costs a dozen
round trips, not thousands. Reads happen once per batch and only for what the walk
needs (``batch.needs``).

Invariants: state upserts never replace a row written by a later command (``seq``
guard); facts are inserted at most once (``ON CONFLICT DO NOTHING`` on their identity);
the consumer position is written by the same connection, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from pmarket.db.models import (
    Balance,
    Candle,
    ConsumerPosition,
    Event,
    LedgerEntry,
    Market,
    Order,
    Payout,
    Position,
    SkippedDelivery,
    Trade,
)
from pmarket.db.types import UTCDateTime, from_ms, utcnow

from .batch import CANDLE_INTERVALS, Batch, MarketInfo
from .costbasis import Holding

CHUNK = 500
"""Keys per ``IN`` list when reading (keeps statements and parameter lists bounded)."""

_events, _markets, _orders = Event.__table__, Market.__table__, Order.__table__
_trades, _ledger, _balances = Trade.__table__, LedgerEntry.__table__, Balance.__table__
_positions, _candles, _payouts = Position.__table__, Candle.__table__, Payout.__table__
_consumers, _skipped = ConsumerPosition.__table__, SkippedDelivery.__table__


class ConcurrentProjection(RuntimeError):
    """Another writer moved the consumer position during this transaction."""


def _insert(conn: Connection, table):
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {conn.dialect.name!r} (PostgreSQL or SQLite)")


def _chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upsert(conn: Connection, table, rows: list[dict], keys: Sequence[str], *,
           guard: str | None = None, keep: Sequence[str] = ()) -> None:
    """Insert ``rows``, or update the existing rows with the same ``keys``.

    Args:
        conn: the connection (inside the batch's transaction).
        table: the table.
        rows: homogeneous rows (same columns).
        keys: the conflict target (primary key or a unique constraint).
        guard: a column that must not decrease: a stored row with a higher value wins.
        keep: columns never updated once the row exists.
    """
    if not rows:
        return
    ins = _insert(conn, table)
    skip = set(keys) | set(keep)
    set_ = {c: ins.excluded[c] for c in rows[0] if c not in skip}
    where = table.c[guard] <= ins.excluded[guard] if guard else None
    conn.execute(ins.on_conflict_do_update(index_elements=list(keys), set_=set_, where=where),
                 rows)


def insert_new(conn: Connection, table, rows: list[dict], keys: Sequence[str]) -> None:
    """Insert ``rows``, silently skipping any whose ``keys`` already exist."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys)),
                     rows)


# --- consumer position -------------------------------------------------------------------


def lock_position(conn: Connection, consumer: str, stream: str) -> int:
    """The consumer's last applied seq, with its row locked until the transaction ends.

    Two workers projecting the same stream therefore serialise here, and the second
    sees what the first committed.
    """
    where = (_consumers.c.consumer == consumer, _consumers.c.stream == stream)
    if conn.dialect.name == "sqlite":
        # No FOR UPDATE: a write takes the database's write lock instead. Being a write,
        # it also makes pysqlite open the transaction now, so a SAVEPOINT after it nests
        # inside the transaction instead of starting (and on release committing) one.
        conn.execute(update(_consumers).where(*where).values(last_seq=_consumers.c.last_seq))
    query = select(_consumers.c.last_seq).where(*where).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        insert_new(conn, _consumers, [{"consumer": consumer, "stream": stream, "last_seq": 0,
                                       "updated_at": utcnow()}], ("consumer", "stream"))
        row = conn.execute(query).first()
    return row[0]


def save_position(conn: Connection, consumer: str, stream: str, old_seq: int, last_seq: int,
                  message_id: str | None) -> None:
    """Record that everything up to ``last_seq`` is applied, if the position is ``old_seq``.

    A compare-and-set: on SQLite, where ``FOR UPDATE`` does not exist, two writers that
    read the same position cannot both move it; the loser's transaction fails.

    Raises:
        ConcurrentProjection: someone else moved the position since it was read.
    """
    moved = conn.execute(
        update(_consumers)
        .where(_consumers.c.consumer == consumer, _consumers.c.stream == stream,
               _consumers.c.last_seq == old_seq)
        .values(last_seq=last_seq, last_message_id=message_id, updated_at=utcnow()))
    if moved.rowcount != 1:
        raise ConcurrentProjection(
            f"the position of {consumer} on {stream} moved from {old_seq} while projecting; "
            "roll back and project again")


def skipped_ranges(conn: Connection, consumer: str, stream: str) -> list[tuple[int, int]]:
    """``(first_seq, last_seq)`` of every delivery this consumer stepped over."""
    rows = conn.execute(
        select(_skipped.c.first_seq, _skipped.c.last_seq)
        .where(_skipped.c.consumer == consumer, _skipped.c.stream == stream))
    return [(a, b) for a, b in rows]


def forget_skipped(conn: Connection, consumer: str, stream: str, first_seqs: list[int]) -> None:
    """Delete the skip records of deliveries that have now been applied."""
    if first_seqs:
        conn.execute(delete(_skipped).where(
            _skipped.c.consumer == consumer, _skipped.c.stream == stream,
            _skipped.c.first_seq.in_(first_seqs)))


# --- reads --------------------------------------------------------------------------------


def load_markets(conn: Connection, market_ids: set[int], event_ids: set[int]
                 ) -> tuple[dict[int, MarketInfo], dict[int, list[int]]]:
    """Markets by id and each event's market ids in outcome order."""
    markets: dict[int, MarketInfo] = {}
    by_event: dict[int, list[tuple[int, int]]] = {}
    cols = (_markets.c.id, _markets.c.event_id, _markets.c.last_price, _markets.c.position)
    queries = [select(*cols).where(_markets.c.id.in_(list(part)))
               for part in _chunks(sorted(market_ids))]
    queries += [select(*cols).where(_markets.c.event_id.in_(list(part)))
                for part in _chunks(sorted(event_ids))]
    for query in queries:
        for mid, eid, last, position in conn.execute(query):
            markets[mid] = MarketInfo(eid, last)
            if eid in event_ids:
                by_event.setdefault(eid, []).append((position, mid))
    event_markets = {eid: [mid for _, mid in sorted(set(pairs))]
                     for eid, pairs in by_event.items()}
    return markets, event_markets


def load_holdings(conn: Connection, keys: set[tuple[int, int]]) -> dict[tuple[int, int], Holding]:
    """The stored state of the positions ``keys`` (absent ones are left out)."""
    p = _positions.c
    cols = (p.user_id, p.market_id, p.yes, p.no, p.yes_reserved, p.no_reserved, p.yes_cost,
            p.no_cost, p.yes_realized_pnl, p.no_realized_pnl, p.seq)
    out: dict[tuple[int, int], Holding] = {}
    for part in _chunks(sorted(keys)):
        query = select(*cols).where(tuple_(p.user_id, p.market_id).in_(list(part)))
        for row in conn.execute(query):
            key = (row[0], row[1])
            out[key] = Holding(key, row[2:])
    return out


# --- writes -------------------------------------------------------------------------------


def write_batch(conn: Connection, batch: Batch) -> None:
    """Write every row of ``batch`` (the caller records the position and commits)."""
    if batch.replay:
        _drop_outdated_events(conn, batch)
    upsert(conn, _events, list(batch.events.values()), ("id",), guard="seq",
           keep=("created_at",))
    upsert(conn, _markets, list(batch.new_markets.values()), ("id",), keep=("event_id",))
    if batch.resolutions:
        conn.execute(
            update(_events).where(_events.c.id == bindparam("rid"))
            .values(payouts_total=bindparam("paid"), rounding=bindparam("rnd"),
                    resolved_at=bindparam("rat", type_=UTCDateTime())),
            [{"rid": r["id"], "paid": r["payouts_total"], "rnd": r["rounding"],
              "rat": r["resolved_at"]} for r in batch.resolutions.values()])
    upsert(conn, _orders, list(batch.orders.values()), ("id",), guard="seq",
           keep=("created_at",))
    insert_new(conn, _trades, batch.trades, ("id",))
    insert_new(conn, _ledger, batch.ledger, ("stream", "seq", "idx"))
    insert_new(conn, _payouts, batch.payouts, ("stream", "seq", "idx"))
    upsert(conn, _balances, list(batch.balances.values()), ("user_id",), guard="seq")
    upsert(conn, _positions, batch.position_rows(), ("user_id", "market_id"), guard="seq")
    _write_market_stats(conn, batch)
    if batch.replay:
        _recount_markets(conn, {t["market_id"] for t in batch.trades})
        _recount_candles(conn, batch.candles)
    else:
        _write_candles(conn, batch)
    if batch.deleted_events:
        _delete_events(conn, batch.deleted_events)


def _drop_outdated_events(conn: Connection, batch: Batch) -> None:
    """A replayed event older than the stored one changes neither it nor its markets.

    (Markets carry no ``seq`` of their own: their event's guards them.)
    """
    stored = dict(conn.execute(select(_events.c.id, _events.c.seq)
                               .where(_events.c.id.in_(list(batch.events)))).all())
    for eid, row in list(batch.events.items()):
        if stored.get(eid, -1) > row["seq"]:
            del batch.events[eid]
            for mid in [m for m, r in batch.new_markets.items() if r["event_id"] == eid]:
                del batch.new_markets[mid]


def _write_market_stats(conn: Connection, batch: Batch) -> None:
    if not batch.stats:
        return
    m = _markets.c
    # The last price is the one of the latest trade: a batch's trades are never older
    # than the stored one, a replayed trade may be (and then leaves it as it is).
    newer = or_(m.last_trade_at.is_(None),
                m.last_trade_at <= bindparam("lt", type_=UTCDateTime()))
    statement = (
        update(_markets).where(m.id == bindparam("mid"))
        .values(volume=m.volume + bindparam("dv", type_=BigInteger),
                open_interest=m.open_interest + bindparam("doi", type_=BigInteger),
                last_price=case((newer, func.coalesce(bindparam("lp", type_=BigInteger),
                                                      m.last_price)),
                                else_=m.last_price),
                last_trade_at=case((newer, func.coalesce(bindparam("lt", type_=UTCDateTime()),
                                                         m.last_trade_at)),
                                   else_=m.last_trade_at)))
    rows = [{"mid": mid, "dv": 0 if batch.replay else s.volume, "doi": s.open_interest,
             "lp": s.last_price, "lt": from_ms(s.last_trade_ms)}
            for mid, s in batch.stats.items()]
    conn.execute(statement, rows)


def _recount_markets(conn: Connection, market_ids: set[int]) -> None:
    """Volume, last price and time of ``market_ids`` from their stored trades (a replay).

    Recounting rather than adding makes a replayed trade count once however it lands.
    """
    t = _trades.c
    for mid in sorted(market_ids):
        volume = conn.execute(select(func.coalesce(func.sum(t.quantity), 0))
                              .where(t.market_id == mid)).scalar_one()
        last = conn.execute(select(t.price, t.executed_at).where(t.market_id == mid)
                            .order_by(t.executed_at.desc(), t.id.desc()).limit(1)).first()
        values = {"volume": volume}
        if last is not None:
            values.update(last_price=last[0], last_trade_at=last[1])
        conn.execute(update(_markets).where(_markets.c.id == mid).values(**values))


def _recount_candles(conn: Connection, keys) -> None:
    """Rebuild the candles ``(market, interval, start ms)`` from the stored trades."""
    t = _trades.c
    for market, interval, start in sorted(keys):
        begin, end = from_ms(start), from_ms(start + CANDLE_INTERVALS[interval])
        trades = conn.execute(
            select(t.price, t.quantity).where(t.market_id == market, t.executed_at >= begin,
                                              t.executed_at < end)
            .order_by(t.executed_at, t.id)).all()
        if not trades:
            continue
        prices = [p for p, _ in trades]
        row = {"market_id": market, "interval": interval, "start": begin, "open": prices[0],
               "high": max(prices), "low": min(prices), "close": prices[-1],
               "volume": sum(q for _, q in trades), "trades": len(trades)}
        upsert(conn, _candles, [row], ("market_id", "interval", "start"))


def _write_candles(conn: Connection, batch: Batch) -> None:
    rows = batch.candle_rows()
    if not rows:
        return
    ins = _insert(conn, _candles)
    c, x = _candles.c, ins.excluded
    greatest, least = ((func.greatest, func.least) if conn.dialect.name == "postgresql"
                       else (func.max, func.min))  # SQLite's 2-argument max/min are scalar
    conn.execute(ins.on_conflict_do_update(
        index_elements=["market_id", "interval", "start"],
        set_={"high": greatest(c.high, x.high), "low": least(c.low, x.low), "close": x.close,
              "volume": c.volume + x.volume, "trades": c.trades + x.trades}), rows)


def _delete_events(conn: Connection, deleted: dict[int, int]) -> None:
    """A deleted event keeps its rows as ``deleted``; its (empty) positions go."""
    event_ids = list(deleted)
    conn.execute(
        update(_events).where(_events.c.id == bindparam("eid"))
        .values(status="deleted", updated_at=bindparam("at", type_=UTCDateTime())),
        [{"eid": eid, "at": from_ms(ms) if ms else utcnow()} for eid, ms in deleted.items()])
    conn.execute(update(_markets).where(_markets.c.event_id.in_(event_ids))
                 .values(status="deleted"))
    market_ids = select(_markets.c.id).where(_markets.c.event_id.in_(event_ids))
    conn.execute(delete(_positions).where(_positions.c.market_id.in_(market_ids)))
