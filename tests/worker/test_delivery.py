"""Delivery policy: duplicates change nothing, disorder is put right, holes wait, skips heal."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from pmarket.db import ConsumerPosition, LedgerEntry, SkippedDelivery
from pmarket.db.reconcile import reconcile
from pmarket.runtime.eventlog import Delivery, DeliveryError, decode_delivery, encode_delivery
from pmarket.worker import Projector, Reorderer
from tests.dbfixtures import Database

from .helpers import dump, project, rows
from .scenario import STREAM, full_session


@pytest.fixture(scope="module")
def session():
    return full_session()


@pytest.fixture(scope="module")
def reference(session, migrated: Database):
    """The tables after projecting the session once, in order, in one transaction."""
    migrated.clear()
    project(migrated, session.deliveries)
    return dump(migrated)


def test_batch_size_does_not_change_what_is_written(database, session, reference):
    for size in (1, 7):
        database.clear()
        project(database, session.deliveries, batch=size)
        assert dump(database) == reference


def test_a_duplicated_delivery_changes_nothing(database, session, reference):
    deliveries = list(session.deliveries)
    doubled = [d for d in deliveries for _ in (0, 1)]
    result = project(database, doubled)
    assert result.duplicates == len(deliveries)
    assert dump(database) == reference


def test_redelivering_earlier_batches_changes_nothing(database, session, reference):
    deliveries = session.deliveries
    projector = Projector(STREAM)
    project(database, deliveries, batch=10, projector=projector)
    for start in (20, 0, 10, 30):
        result = projector.apply(database.engine, deliveries[start:start + 10])
        assert (result.applied, result.duplicates) == (0, len(deliveries[start:start + 10]))
    result = projector.apply(database.engine, deliveries)
    assert result.events == 0 and result.last_seq == session.seq
    assert dump(database) == reference


def test_a_shuffled_batch_is_applied_in_command_order(database, session, reference):
    shuffled = list(session.deliveries)
    random.Random(5).shuffle(shuffled)
    result = project(database, shuffled)
    assert result.applied == len(shuffled) and not result.deferred
    assert dump(database) == reference


def test_a_delivery_ahead_of_a_missing_one_is_deferred(database, session):
    deliveries = session.deliveries
    projector = Projector(STREAM)
    projector.apply(database.engine, deliveries[:10])
    result = projector.apply(database.engine, deliveries[12:20])
    assert result.applied == 0 and result.last_seq == 10
    assert [d.first_seq for d in result.deferred] == list(range(13, 21))
    assert projector.position(database.engine) == 10
    assert rows(database, sa.select(LedgerEntry).where(LedgerEntry.seq > 10)) == []


def test_the_reorderer_releases_held_deliveries_once_the_hole_fills(database, session,
                                                                   reference):
    projector = Projector(STREAM)
    buffer = Reorderer(limit=100)
    arrivals = list(session.deliveries)
    random.Random(9).shuffle(arrivals)
    for chunk in (arrivals[i:i + 5] for i in range(0, len(arrivals), 5)):
        result = projector.apply(database.engine, chunk)
        assert buffer.offer_all(result.deferred) == []
        while run := buffer.release(result.last_seq):
            result = projector.apply(database.engine, run)
            assert buffer.offer_all(result.deferred) == []
    assert len(buffer) == 0
    assert dump(database) == reference


def test_the_reorderer_is_bounded():
    buffer = Reorderer(limit=2)
    assert buffer.offer(Delivery(5, 5)) and buffer.offer(Delivery(7, 8))
    assert buffer.offer(Delivery(5, 5))  # a copy of one held is not a new entry
    assert not buffer.offer(Delivery(9, 9))
    assert buffer.lowest_missing(2) == (3, 4)
    assert buffer.release(2) == []
    assert [d.first_seq for d in buffer.release(4)] == [5]
    assert [d.first_seq for d in buffer.release(6)] == [7]
    assert len(buffer) == 0


def test_a_delivery_overlapping_the_position_is_refused(database, session):
    projector = Projector(STREAM)
    projector.apply(database.engine, session.deliveries[:10])
    before = dump(database)
    straddling = Delivery(8, 12, ())
    with pytest.raises(DeliveryError, match="overlaps the position 10"):
        projector.apply(database.engine, [straddling])
    assert dump(database) == before


def test_a_failing_batch_writes_nothing_not_even_its_position(database, session):
    projector = Projector(STREAM)
    projector.apply(database.engine, session.deliveries[:10])
    before = dump(database)
    poison = Delivery(12, 12, (("ledger", 1, "teleport", 5, None, None, 0, 0),))
    with pytest.raises(ValueError, match="unknown ledger kind"):
        projector.apply(database.engine, [session.deliveries[10], poison])
    assert dump(database) == before


def test_an_amount_that_would_overflow_bigint_is_refused_before_writing(database):
    projector = Projector(STREAM)
    huge = Delivery(1, 1, (("balance", 7, 2**63, 0),))
    with pytest.raises(ValueError, match=r"available cash of user 7 .* does not fit a BIGINT"):
        projector.apply(database.engine, [huge])
    assert projector.position(database.engine) == 0
    assert dump(database)["balances"] == []


def test_a_skipped_delivery_is_recorded_and_applied_late_when_retried(database, session,
                                                                      reference):
    deliveries = session.deliveries
    projector = Projector(STREAM)
    deposit = next(d for d in deliveries if any(e[0] == "ledger" and e[2] == "deposit"
                                                 and e[1] == 4 for e in d.events))
    k = deposit.first_seq
    projector.apply(database.engine, deliveries[:k - 1])
    with database.engine.begin() as conn:
        projector.skip(conn, k, k, "poison: boom", message_id="1-1")
    projector.apply(database.engine, deliveries[k:])
    with database.engine.connect() as conn:
        found = {d.what for d in reconcile(session.engine, conn)}
    assert "skipped" in found
    result = projector.apply(database.engine, [deposit])
    assert (result.late, result.applied) == (1, 0)
    assert rows(database, sa.select(SkippedDelivery)) == []
    stored = dump(database)
    assert stored["ledger_entries"] != [] and stored["balances"] == reference["balances"]
    assert {r[1:] for r in stored["ledger_entries"]} == {
        r[1:] for r in reference["ledger_entries"]}
    assert projector.apply(database.engine, [deposit]).duplicates == 1


def test_skipping_is_only_possible_at_the_next_expected_command(database):
    projector = Projector(STREAM)
    with pytest.raises(DeliveryError, match="next expected command 1"), \
            database.engine.begin() as conn:
        projector.skip(conn, 3, 4, "nope")


def test_a_late_delivery_inside_a_wider_skip_leaves_the_rest_recorded(database, session):
    projector = Projector(STREAM)
    projector.apply(database.engine, session.deliveries[:4])
    with database.engine.begin() as conn:
        projector.skip(conn, 5, 9, "lost")
    projector.apply(database.engine, [session.deliveries[6]])  # seq 7
    assert sorted(rows(database, sa.select(SkippedDelivery.first_seq,
                                           SkippedDelivery.last_seq))) == [(5, 6), (8, 9)]


def test_consumers_and_streams_keep_separate_positions(database, session):
    Projector(STREAM, consumer="worker").apply(database.engine, session.deliveries[:5])
    Projector("pmarket:{other}:events", consumer="worker").apply(
        database.engine, session.deliveries[:2])
    positions = {(c, s): p for c, s, p in rows(database, sa.select(
        ConsumerPosition.consumer, ConsumerPosition.stream, ConsumerPosition.last_seq))}
    assert positions == {("worker", STREAM): 5, ("worker", "pmarket:{other}:events"): 2}


def test_delivery_wire_format_round_trips(session):
    for delivery in session.deliveries:
        decoded = decode_delivery(encode_delivery(delivery), message_id="5-0")
        assert decoded == delivery and list(decoded.events) == list(delivery.events)
        assert decoded.message_id == "5-0"


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"seq": [1], "events": []}', b'{"seq": [2, 1], "events": []}',
    b'{"seq": [1, 1], "events": [[1, 2]]}', b'{"seq": [1, 1], "events": {}}',
])
def test_malformed_deliveries_are_refused(payload):
    with pytest.raises(DeliveryError):
        decode_delivery(payload)


def test_two_writers_serialise_and_the_second_sees_what_the_first_committed(
        database, session, reference, monkeypatch):
    import threading

    from pmarket.worker import writer

    Projector(STREAM).apply(database.engine, session.deliveries[:1])  # the row exists
    read_position = writer.lock_position
    other: dict = {}

    def racing_lock(conn, consumer, stream):
        seen = read_position(conn, consumer, stream)  # the first writer holds the lock
        monkeypatch.setattr(writer, "lock_position", read_position)
        thread = threading.Thread(target=lambda: other.update(
            result=Projector(STREAM).apply(database.engine, session.deliveries)))
        thread.start()
        thread.join(0.3)
        assert thread.is_alive(), "the second writer must wait for the first"
        other["thread"] = thread
        return seen

    monkeypatch.setattr(writer, "lock_position", racing_lock)
    first = Projector(STREAM).apply(database.engine, session.deliveries)
    other["thread"].join(10)
    assert first.applied == len(session.deliveries) - 1
    assert other["result"].applied == 0
    assert other["result"].duplicates == len(session.deliveries)
    assert dump(database) == reference
