"""The stream keeps a local book from snapshot + deltas and resubscribes on a gap."""

from __future__ import annotations

from decimal import Decimal

from pmarket.client import BookMessage, MarketStream, TradeMessage
from pmarket.client.stream import LocalBook, _Resubscribe

SNAPSHOT = {"channel": "book:3", "type": "snapshot", "sequence": 10, "data": {
    "market_id": 3, "view": "yes",
    "bids": [{"price": "0.40", "quantity": 5}, {"price": "0.38", "quantity": 2}],
    "asks": [{"price": "0.45", "quantity": 7}], "best_bid": "0.40", "best_ask": "0.45",
    "mid": "0.425", "spread": "0.05", "last_price": "0.41", "sequence": 10}}


def delta(seq: int, *changes: tuple[str, str, int]) -> dict:
    return {"channel": "book:3", "type": "delta", "sequence": seq, "data": {"changes": [
        {"side": s, "price": p, "quantity": q} for s, p, q in changes]}}


def subscribed() -> MarketStream:
    stream = MarketStream("ws://test/ws")
    stream.channels.add("book:3")
    return stream


def test_snapshot_then_deltas_build_the_book():
    stream = subscribed()
    assert isinstance(stream._handle(SNAPSHOT), BookMessage)
    msg = stream._handle(delta(11, ("bid", "0.40", 0), ("ask", "0.44", 3)))
    assert isinstance(msg, BookMessage) and msg.kind == "delta"
    bids, asks = msg.book.levels()
    assert [(lv.price, lv.quantity) for lv in bids] == [(Decimal("0.38"), 2)]
    assert [lv.price for lv in asks] == [Decimal("0.44"), Decimal("0.45")]


def test_a_sequence_gap_marks_the_book_stale_and_asks_to_resubscribe():
    stream = subscribed()
    stream._handle(SNAPSHOT)
    msg = stream._handle(delta(12, ("bid", "0.41", 1)))
    assert msg == _Resubscribe("book:3")
    assert not stream.books[3].ready
    # deltas of the old subscription are dropped until the fresh snapshot
    assert stream._handle(delta(13, ("bid", "0.41", 1))) is None
    fresh = {**SNAPSHOT, "sequence": 40}
    assert isinstance(stream._handle(fresh), BookMessage)
    assert isinstance(stream._handle(delta(41, ("bid", "0.41", 1))), BookMessage)
    assert stream.books[3].bids[Decimal("0.41")] == 1


def test_deltas_before_the_first_snapshot_are_ignored():
    stream = subscribed()
    assert stream._handle(delta(1, ("bid", "0.41", 1))) is None


def test_no_view_mirrors_the_yes_book():
    book = LocalBook(3)
    book.bids = {Decimal("0.40"): 5}
    book.asks = {Decimal("0.45"): 7, Decimal("0.50"): 1}
    book.last_price = Decimal("0.41")
    no = book.to_book("no")
    assert [(lv.price, lv.quantity) for lv in no.bids] == [(Decimal("0.55"), 7),
                                                           (Decimal("0.50"), 1)]
    assert [(lv.price, lv.quantity) for lv in no.asks] == [(Decimal("0.60"), 5)]
    assert no.spread == Decimal("0.05") and no.last_price == Decimal("0.59")


def test_a_trade_updates_the_books_last_price():
    stream = subscribed()
    stream._handle(SNAPSHOT)
    msg = stream._handle({"channel": "trades:3", "type": "trade", "sequence": 1, "data": {
        "id": 1, "market_id": 3, "price": "0.45", "quantity": 2, "taker_side": "buy",
        "executed_at": "2024-05-01T12:00:00Z"}})
    assert isinstance(msg, TradeMessage)
    assert stream.books[3].last_price == Decimal("0.45")


def test_error_messages_are_typed():
    stream = subscribed()
    msg = stream._handle({"type": "error", "data": {"code": "bad_token",
                                                    "message": "The token is invalid."}})
    assert msg is not None and msg.code == "bad_token"  # type: ignore[union-attr]
