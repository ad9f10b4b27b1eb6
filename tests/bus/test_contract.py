"""The bus contract: one suite, run on the memory bus and on Redis Streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from pmarket.bus import (
    ENGINE_GROUP,
    Bus,
    BusError,
    Fence,
    LeaseLost,
    Reply,
    RequestTimeout,
    UnknownGroup,
    parse_id,
)
from tests.bus.conftest import ConnectBus

IDLE_MS = 30  # reclaim threshold; tests sleep a bit longer to age entries past it


@contextlib.asynccontextmanager
async def _echoing(bus: Bus) -> AsyncIterator[None]:
    """Run ``_engine_echo`` on ``bus`` for the block; stopped (and awaited) after it."""
    task = asyncio.create_task(_engine_echo(bus))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _engine_echo(bus: Bus, consumer: str = "engine-1") -> None:
    """A minimal engine: reply ``ok:<payload>`` and publish the payload as an event."""
    while True:
        commands = await bus.read_commands(consumer, block_ms=50)
        if commands:
            await bus.complete(
                commands,
                events=[c.payload for c in commands],
                replies=[Reply.to(c, b"ok:" + c.payload) for c in commands],
            )


# --- append and read -------------------------------------------------------------------


async def test_append_returns_increasing_ids_and_read_returns_entries_in_order(bus: Bus):
    stream = bus.events_stream()
    ids = await bus.append(stream, [b"a", (b"b", {"reply_to": "srv", "k": "v"}), b"c"])

    assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids)
    assert len(set(ids)) == 3
    messages = await bus.read(stream)
    assert [(m.id, m.payload) for m in messages] == list(zip(ids, [b"a", b"b", b"c"], strict=True))
    assert messages[1].headers == {"reply_to": "srv", "k": "v"}
    assert messages[1].reply_to == "srv"
    assert messages[0].headers == {}
    assert await bus.length(stream) == 3
    assert await bus.last_id(stream) == ids[-1]


async def test_read_resumes_after_a_given_id_and_honours_count(bus: Bus):
    stream = bus.events_stream()
    ids = await bus.append(stream, [b"%d" % i for i in range(10)])

    after = await bus.read(stream, ids[3], count=4)

    assert [m.id for m in after] == ids[4:8]
    assert await bus.read(stream, ids[-1]) == []


async def test_missing_stream_reads_empty(bus: Bus):
    assert await bus.read("pmarket-none") == []
    assert await bus.length("pmarket-none") == 0
    assert await bus.last_id("pmarket-none") == "0-0"
    assert await bus.groups("pmarket-none") == []


async def test_blocking_read_wakes_up_on_append(bus: Bus, connect: ConnectBus):
    producer = connect()
    stream = bus.events_stream()
    await bus.ensure_group(stream, "worker")

    async def later() -> None:
        await asyncio.sleep(0.05)
        await producer.append(stream, [b"late"])

    task = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await bus.read_group(stream, "worker", "w1", block_ms=5_000)
    await task

    assert [m.payload for m in got] == [b"late"]
    assert loop.time() - started < 2


async def test_tail_wakes_up_on_append_and_resumes_after_an_id(bus: Bus,
                                                                 connect: ConnectBus):
    producer = connect()
    stream = bus.events_stream()
    first = await producer.append(stream, [b"old"])

    async def later() -> None:
        await asyncio.sleep(0.05)
        await producer.append(stream, [b"new"])

    task = asyncio.create_task(later())
    got = await bus.tail("t", stream, first[0], block_ms=5_000)
    await task

    assert [m.payload for m in got] == [b"new"]
    assert await bus.tail("t", stream, got[-1].id, block_ms=50) == []


async def test_blocking_read_times_out_empty(bus: Bus):
    stream = bus.events_stream()
    await bus.ensure_group(stream, "worker")

    assert await bus.read_group(stream, "worker", "w1", block_ms=50) == []
    assert await bus.read(stream, block_ms=50) == []


async def test_reserved_header_name_is_refused_before_anything_is_written(bus: Bus):
    with pytest.raises(ValueError, match="reserved"):
        await bus.append(bus.events_stream(), [b"ok", (b"bad", {"p": "x"})])

    assert await bus.length(bus.events_stream()) == 0


# --- consumer groups -------------------------------------------------------------------


async def test_groups_read_independently_and_each_entry_once(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"e1", b"e2", b"e3"])

    worker = await bus.read_events("worker", "w1")
    server = await bus.read_events("server-a", "s1")

    assert [m.payload for m in worker] == [b"e1", b"e2", b"e3"]
    assert [m.payload for m in server] == [b"e1", b"e2", b"e3"]
    assert all(m.deliveries == 1 for m in worker + server)
    assert await bus.read_events("worker", "w1") == []
    names = sorted(g.name for g in await bus.groups(stream))
    assert names == ["server-a", "worker"]


async def test_consumers_of_one_group_share_the_entries(bus: Bus, connect: ConnectBus):
    other = connect()
    await bus.publish_events([b"%d" % i for i in range(6)])

    first = await bus.read_events("worker", "w1", count=4)
    second = await other.read_events("worker", "w2", count=4)

    assert len(first) == 4
    assert len(second) == 2
    assert {m.id for m in first}.isdisjoint(m.id for m in second)


async def test_ack_clears_pending(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"a", b"b", b"c"])
    messages = await bus.read_events("worker", "w1")

    pending = await bus.pending(stream, "worker")
    assert [(p.id, p.consumer, p.deliveries) for p in pending] == [
        (m.id, "w1", 1) for m in messages
    ]
    await bus.ack_events("worker", [messages[0].id, messages[2].id])

    assert [p.id for p in await bus.pending(stream, "worker")] == [messages[1].id]
    (info,) = await bus.groups(stream)
    assert (info.pending, info.oldest_pending_id) == (1, messages[1].id)
    assert info.last_delivered_id == messages[2].id
    assert info.lag == 0


async def test_ensure_group_is_idempotent_and_dollar_skips_history(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"old"])

    assert await bus.ensure_group(stream, "server-a", "$") is True
    assert await bus.ensure_group(stream, "server-a", "0") is False
    await bus.publish_events([b"new"])

    assert [m.payload for m in await bus.read_events("server-a", "s1")] == [b"new"]


async def test_group_starts_or_resumes_from_a_given_id(bus: Bus):
    stream = bus.events_stream()
    ids = await bus.publish_events([b"%d" % i for i in range(5)])

    resumed = await bus.read_events("worker", "w1", start_id=ids[1])
    assert [m.id for m in resumed] == ids[2:]

    await bus.set_group_position(stream, "worker", ids[3])
    await bus.publish_events([b"5"])
    assert [m.payload for m in await bus.read_events("worker", "w1")] == [b"4", b"5"]


async def test_unknown_group_is_an_error(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"a"])

    with pytest.raises(UnknownGroup):
        await bus.read_group(stream, "nobody", "c1")
    with pytest.raises(UnknownGroup):
        await bus.set_group_position(stream, "nobody", "0-0")
    with pytest.raises(UnknownGroup):
        await bus.reclaim(stream, "nobody", "c1", min_idle_ms=0)
    assert await bus.delete_group(stream, "nobody") is False


async def test_role_reads_recreate_a_group_dropped_with_its_stream(bus: Bus):
    await bus.publish_events([b"before"])
    assert len(await bus.read_events("worker", "w1")) == 1

    await bus.delete_streams(bus.events_stream())
    await bus.publish_events([b"after"])

    assert [m.payload for m in await bus.read_events("worker", "w1")] == [b"after"]


# --- redelivery, reclaim, delivery counts -------------------------------------------------


async def test_restarted_consumer_gets_its_own_pending_entries_first(
    bus: Bus, connect: ConnectBus
):
    await bus.send_command(b"c1")
    await bus.send_command(b"c2")
    crashed = await bus.read_commands("engine-1")
    assert [m.deliveries for m in crashed] == [1, 1]
    await bus.send_command(b"c3")

    restarted = connect()  # same consumer name, fresh process
    first = await restarted.read_commands("engine-1")
    second = await restarted.read_commands("engine-1")

    assert [(m.payload, m.deliveries) for m in first] == [(b"c1", 2), (b"c2", 2)]
    assert [(m.payload, m.deliveries) for m in second] == [(b"c3", 1)]
    assert await restarted.read_commands("engine-1") == []


async def test_backlog_is_read_in_batches_without_repeats(bus: Bus, connect: ConnectBus):
    for i in range(5):
        await bus.send_command(b"%d" % i)
    await bus.read_commands("engine-1")

    restarted = connect()
    batches = [await restarted.read_commands("engine-1", count=2) for _ in range(3)]

    assert [[m.payload for m in b] for b in batches] == [[b"0", b"1"], [b"2", b"3"], [b"4"]]


async def test_reclaim_takes_over_entries_of_a_dead_consumer(bus: Bus, connect: ConnectBus):
    stream = bus.commands_stream()
    for i in range(3):
        await bus.send_command(b"%d" % i)
    dead = await bus.read_commands("engine-dead")
    survivor = connect()

    assert await survivor.reclaim(stream, ENGINE_GROUP, "engine-2", min_idle_ms=10_000) == []
    await asyncio.sleep(IDLE_MS * 2 / 1000)
    taken = await survivor.reclaim(stream, ENGINE_GROUP, "engine-2", min_idle_ms=IDLE_MS)

    assert [m.id for m in taken] == [m.id for m in dead]
    assert [m.deliveries for m in taken] == [2, 2, 2]
    assert {p.consumer for p in await bus.pending(stream, ENGINE_GROUP)} == {"engine-2"}
    await survivor.complete(taken)
    assert await bus.pending(stream, ENGINE_GROUP) == []


async def test_reclaim_honours_count_and_counts_every_delivery(bus: Bus):
    stream = bus.commands_stream()
    for i in range(5):
        await bus.send_command(b"%d" % i)
    await bus.read_commands("a")
    await asyncio.sleep(IDLE_MS * 2 / 1000)

    first = await bus.reclaim(stream, ENGINE_GROUP, "b", min_idle_ms=IDLE_MS, count=2)
    await asyncio.sleep(IDLE_MS * 2 / 1000)
    again = await bus.reclaim(stream, ENGINE_GROUP, "c", min_idle_ms=IDLE_MS, count=10)

    assert [m.payload for m in first] == [b"0", b"1"]
    assert [(m.payload, m.deliveries) for m in again] == [
        (b"0", 3), (b"1", 3), (b"2", 2), (b"3", 2), (b"4", 2)
    ]
    assert [p.deliveries for p in await bus.pending(stream, ENGINE_GROUP)] == [3, 3, 2, 2, 2]


async def test_reclaim_dead_letters_entries_delivered_too_often(bus: Bus):
    stream = bus.commands_stream()
    await bus.send_command(b"poison")
    await bus.send_command(b"fine")
    await bus.read_commands("a", count=1)
    await asyncio.sleep(IDLE_MS * 2 / 1000)
    await bus.reclaim(stream, ENGINE_GROUP, "b", min_idle_ms=IDLE_MS)  # poison: 2nd delivery
    await bus.read_commands("d")  # fine: 1st delivery
    await asyncio.sleep(IDLE_MS * 2 / 1000)

    kept = await bus.reclaim(stream, ENGINE_GROUP, "c", min_idle_ms=IDLE_MS, max_deliveries=2)

    assert [(m.payload, m.deliveries) for m in kept] == [(b"fine", 2)]
    (letter,) = await bus.dead_letters(stream, ENGINE_GROUP)
    assert (letter.payload, letter.deliveries) == (b"poison", 3)
    assert "3 times" in letter.error
    assert [p.id for p in await bus.pending(stream, ENGINE_GROUP)] == [kept[0].id]


# --- dead letters ---------------------------------------------------------------------------


async def test_dead_letter_keeps_the_error_and_acks_the_message(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"bad", b"good"])
    bad, good = await bus.read_events("worker", "w1")

    dead_id = await bus.dead_letter(bad, "worker", "ValueError: no such market")

    assert [p.id for p in await bus.pending(stream, "worker")] == [good.id]
    (letter,) = await bus.dead_letters(stream, "worker")
    assert letter.id == dead_id
    assert (letter.stream, letter.group, letter.message_id) == (stream, "worker", bad.id)
    assert (letter.payload, letter.error, letter.deliveries) == (
        b"bad", "ValueError: no such market", 1
    )
    assert letter.failed_ms >= parse_id(bad.id)[0]
    assert await bus.dead_letters(stream, "server-a") == []


async def test_dead_letter_keeps_headers_and_retry_puts_it_back(bus: Bus):
    stream = bus.commands_stream()
    await bus.send_command(b"cmd", reply_to="srv-1", correlation_id="c-9")
    (command,) = await bus.read_commands("engine-1")
    dead_id = await bus.dead_letter(command, ENGINE_GROUP, "boom")
    (letter,) = await bus.dead_letters(stream, ENGINE_GROUP)
    assert letter.headers == {"reply_to": "srv-1", "correlation_id": "c-9"}

    new_id = await bus.retry_dead_letter(stream, ENGINE_GROUP, dead_id)

    assert await bus.dead_letters(stream, ENGINE_GROUP) == []
    (again,) = await bus.read_commands("engine-1")
    assert (again.id, again.payload, again.deliveries) == (new_id, b"cmd", 1)
    assert (again.reply_to, again.correlation_id) == ("srv-1", "c-9")
    assert parse_id(new_id) > parse_id(command.id)
    with pytest.raises(KeyError):
        await bus.retry_dead_letter(stream, ENGINE_GROUP, dead_id)


async def test_delete_dead_letter(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"a", b"b"])
    a, b = await bus.read_events("worker", "w1")
    dead_a = await bus.dead_letter(a, "worker", "e1")
    dead_b = await bus.dead_letter(b, "worker", "e2")

    assert await bus.delete_dead_letter(stream, "worker", dead_a) is True
    assert await bus.delete_dead_letter(stream, "worker", dead_a) is False
    assert [d.id for d in await bus.dead_letters(stream, "worker")] == [dead_b]


# --- trimming -------------------------------------------------------------------------------


async def test_trim_never_drops_entries_a_group_has_not_read(bus: Bus):
    stream = bus.events_stream()
    await bus.ensure_group(stream, "slow")
    ids = await bus.publish_events([b"%d" % i for i in range(10)])
    fast = await bus.read_events("fast", "f1")
    await bus.ack_events("fast", [m.id for m in fast])

    assert await bus.trim(stream, approximate=False) == 0
    assert await bus.length(stream) == 10
    slow = await bus.read_events("slow", "s1")
    assert [m.id for m in slow] == ids


async def test_trim_never_drops_pending_entries(bus: Bus):
    stream = bus.events_stream()
    ids = await bus.publish_events([b"%d" % i for i in range(10)])
    worker = await bus.read_events("worker", "w1")
    await bus.ack_events("worker", [m.id for m in worker[:3]] + [m.id for m in worker[5:]])
    server = await bus.read_events("server-a", "s1", count=7)
    await bus.ack_events("server-a", [m.id for m in server])

    # worker still holds ids[3], ids[4]; server-a has not been given ids[7:]
    assert await bus.trim(stream, approximate=False) == 3
    assert [m.id for m in await bus.read(stream)] == ids[3:]

    await bus.ack_events("worker", [ids[3], ids[4]])
    assert await bus.trim(stream, approximate=False) == 4
    assert [m.id for m in await bus.read(stream)] == ids[7:]
    assert [m.id for m in await bus.read_events("server-a", "s1")] == ids[7:]


async def test_trim_drops_everything_acked_by_all_groups(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"%d" % i for i in range(5)])
    for group in ("worker", "server-a"):
        messages = await bus.read_events(group, "c1")
        await bus.ack_events(group, [m.id for m in messages])

    assert await bus.trim(stream, approximate=False) == 5
    assert await bus.length(stream) == 0
    assert await bus.trim(stream, approximate=False) == 0
    await bus.publish_events([b"next"])
    assert [m.payload for m in await bus.read_events("worker", "c1")] == [b"next"]


async def test_trim_leaves_a_stream_without_groups_alone(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"a", b"b"])

    assert await bus.trim(stream, approximate=False) == 0
    assert await bus.length(stream) == 2


async def test_deleting_an_abandoned_group_releases_trimming(bus: Bus):
    stream = bus.events_stream()
    await bus.ensure_group(stream, "server-gone")
    await bus.publish_events([b"a", b"b"])
    messages = await bus.read_events("worker", "w1")
    await bus.ack_events("worker", [m.id for m in messages])
    assert await bus.trim(stream, approximate=False) == 0

    assert await bus.delete_group(stream, "server-gone") is True

    assert await bus.trim(stream, approximate=False) == 2


# --- request / reply ------------------------------------------------------------------------


async def test_request_gets_its_own_reply(bus: Bus, connect: ConnectBus):
    engine = connect()
    async with _echoing(engine):
        replies = await asyncio.gather(*(bus.request(b"%d" % i, timeout=5) for i in range(20)))

    assert replies == [b"ok:%d" % i for i in range(20)]
    events = await bus.read_events("worker", "w1")
    assert sorted(m.payload for m in events) == sorted(b"%d" % i for i in range(20))
    assert await bus.pending(bus.commands_stream(), ENGINE_GROUP) == []


async def test_close_after_a_reply_completes_promptly(connect: ConnectBus):
    # The reply listener is blocked in a read when close() comes (reply_block_ms long);
    # close must end that read rather than wait for it (it used to hang on Redis).
    server, engine = connect(reply_block_ms=5_000), connect()
    async with _echoing(engine):
        assert await server.request(b"x", timeout=5) == b"ok:x"
        await asyncio.sleep(0.05)  # the listener is back in its blocking read
        began = asyncio.get_running_loop().time()
        await asyncio.wait_for(server.close(), 2)

    assert asyncio.get_running_loop().time() - began < 0.5
    with pytest.raises(BusError):
        await server.request(b"y", timeout=1)


async def test_a_burst_of_requests_shares_a_few_connections(bus: Bus, connect: ConnectBus):
    # 2,000 concurrent requests: queued and sent in batched writes, never one
    # connection per waiting request (redis-py's pool would run out).
    engine = connect()
    async with _echoing(engine):
        replies = await asyncio.gather(
            *(bus.request(b"%d" % i, timeout=20) for i in range(2_000)))

    assert replies == [b"ok:%d" % i for i in range(2_000)]
    pool = getattr(getattr(bus, "redis", None), "connection_pool", None)
    if pool is not None:
        opened = [*pool._get_free_connections(), *pool._get_in_use_connections()]
        assert len(opened) <= 4


async def test_replies_reach_only_the_requesting_instance(connect: ConnectBus):
    server_a, server_b, engine = connect(), connect(), connect()
    async with _echoing(engine):
        a, b = await asyncio.gather(
            server_a.request(b"from-a", timeout=5), server_b.request(b"from-b", timeout=5)
        )

    assert (a, b) == (b"ok:from-a", b"ok:from-b")
    a_stream = server_a.keys.replies(server_a.instance)
    b_stream = server_b.keys.replies(server_b.instance)
    assert a_stream != b_stream


async def test_a_cancelled_request_leaves_the_others_of_its_batch_undisturbed(
        bus: Bus, connect: ConnectBus):
    # Queued together, the requests share one future (one wake-up for the batch);
    # cancelling one cancels that future, which must not reach the others.
    engine = connect()
    async with _echoing(engine):
        assert await bus.request(b"warm", timeout=5) == b"ok:warm"  # listener started
        tasks = [asyncio.create_task(bus.request(b"%d" % i, timeout=5)) for i in range(6)]
        await asyncio.sleep(0)  # all six wait on their batch's one future
        tasks[2].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for k, r in enumerate(results) if k != 2] == [
        b"ok:%d" % i for i in (0, 1, 3, 4, 5)]


async def test_a_reply_is_never_held_back_by_another_requests_missing_one(
        bus: Bus, connect: ConnectBus):
    engine = connect()
    first = asyncio.create_task(bus.request(b"answered", timeout=0.5))
    second = asyncio.create_task(bus.request(b"never answered", timeout=0.5))
    commands = []
    while len(commands) < 2:
        commands += await engine.read_commands("engine-1", block_ms=100)
    began = asyncio.get_running_loop().time()
    await engine.send_replies([Reply.to(commands[0], b"ok")])

    assert await first == b"ok"
    assert asyncio.get_running_loop().time() - began < 0.3  # not at the shared deadline
    with pytest.raises(RequestTimeout):
        await second


async def test_request_times_out_without_an_engine(bus: Bus):
    with pytest.raises(RequestTimeout):
        await bus.request(b"lonely", timeout=0.1)
    (command,) = await bus.read_commands("engine-1", block_ms=2_000)  # sent, maybe late
    assert command.payload == b"lonely"
    assert command.reply_to == bus.instance


async def test_late_reply_after_timeout_is_discarded(bus: Bus, connect: ConnectBus):
    engine = connect()
    with pytest.raises(RequestTimeout):
        await bus.request(b"slow", timeout=0.05)
    # Sent, though perhaps after the timeout on a loaded machine: wait for it.
    (command,) = await engine.read_commands("engine-1", block_ms=2_000)
    await engine.send_replies([Reply.to(command, b"too late")])
    async with _echoing(engine):
        assert await bus.request(b"next", timeout=5) == b"ok:next"


async def test_reply_streams_expire_when_unused(bus: Bus, connect: ConnectBus):
    engine = connect(reply_ttl_ms=50)
    stream = bus.keys.replies("gone-instance")
    await engine.send_replies([Reply("gone-instance", "c1", b"x")])
    assert await bus.length(stream) == 1

    await asyncio.sleep(0.2)

    assert await bus.length(stream) == 0


async def test_close_fails_waiting_requests(connect: ConnectBus):
    server = connect()
    request = asyncio.create_task(server.request(b"x", timeout=5))
    await asyncio.sleep(0.05)

    await server.close()

    with pytest.raises(BusError):
        await request
    with pytest.raises(BusError):
        await server.request(b"y", timeout=1)


# --- batching and atomic writes ---------------------------------------------------------------


async def test_batches_are_read_in_count_sized_chunks(bus: Bus):
    ids = await bus.publish_events([b"%d" % i for i in range(250)])

    sizes = []
    while batch := await bus.read_events("worker", "w1", count=100):
        sizes.append(len(batch))
        await bus.ack_events("worker", [m.id for m in batch])

    assert sizes == [100, 100, 50]
    assert len(set(ids)) == 250
    assert await bus.pending(bus.events_stream(), "worker") == []


async def test_large_batches_are_written_and_acked_in_one_call(bus: Bus):
    stream = bus.events_stream()
    ids = await bus.publish_events([b"%d" % i for i in range(2_500)])
    messages = await bus.read_events("worker", "w1", count=2_500)
    assert [m.id for m in messages] == ids

    await bus.ack_events("worker", ids)

    assert await bus.pending(stream, "worker") == []
    assert await bus.trim(stream, approximate=False) == 2_500


async def test_ack_and_read_events_acks_the_last_batch_and_reads_the_next(bus: Bus):
    stream = bus.events_stream()
    await bus.publish_events([b"1", b"2"])
    first = await bus.ack_and_read_events("server-a", "s1", [])
    assert [m.payload for m in first] == [b"1", b"2"]
    await bus.publish_events([b"3"])

    second = await bus.ack_and_read_events("server-a", "s1", [m.id for m in first])

    assert [m.payload for m in second] == [b"3"]
    assert [p.id for p in await bus.pending(stream, "server-a")] == [second[0].id]
    assert await bus.ack_and_read_events("server-a", "s1", [second[0].id], block_ms=10) == []
    assert await bus.pending(stream, "server-a") == []


async def test_complete_publishes_events_replies_and_acks_in_one_write(bus: Bus):
    await bus.send_command(b"c1", reply_to="srv-x", correlation_id="k1")
    await bus.send_command(b"c2")
    commands = await bus.read_commands("engine-1")

    event_ids = await bus.complete(
        commands,
        events=[b"e1", b"e2", b"e3"],
        replies=[Reply.to(c, b"r") for c in commands],  # c2 has no reply_to: skipped
    )

    assert len(event_ids) == 3
    assert await bus.pending(bus.commands_stream(), ENGINE_GROUP) == []
    assert [m.payload for m in await bus.read(bus.events_stream())] == [b"e1", b"e2", b"e3"]
    (reply,) = await bus.read(bus.keys.replies("srv-x"))
    assert (reply.payload, reply.correlation_id) == (b"r", "k1")


async def test_shards_have_separate_streams(bus: Bus):
    await bus.send_command(b"to-a", shard="a")
    await bus.send_command(b"to-b", shard="b")

    assert bus.commands_stream("a") != bus.commands_stream("b")
    assert [m.payload for m in await bus.read_commands("e", shard="a")] == [b"to-a"]
    assert [m.payload for m in await bus.read_commands("e", shard="b")] == [b"to-b"]


# --- leases and fenced writes ------------------------------------------------------------


async def test_a_lease_has_one_holder_until_it_expires(bus: Bus, connect: ConnectBus):
    other = connect()
    key = bus.keys.lease("main")

    assert await bus.hold_lease(key, "engine-a", 200) is None
    assert await other.hold_lease(key, "engine-b", 200) == "engine-a"
    assert await bus.hold_lease(key, "engine-a", 200) is None  # renewed
    await asyncio.sleep(0.3)
    assert await other.hold_lease(key, "engine-b", 10_000) is None
    assert await bus.hold_lease(key, "engine-a", 200) == "engine-b"


async def test_only_the_holder_releases_a_lease(bus: Bus, connect: ConnectBus):
    other = connect()
    key = bus.keys.lease("main")
    await bus.hold_lease(key, "engine-a", 10_000)

    assert not await other.release_lease(key, "engine-b")
    assert await bus.release_lease(key, "engine-a")
    assert await other.hold_lease(key, "engine-b", 10_000) is None


async def test_a_fenced_write_of_a_stale_holder_writes_nothing(bus: Bus, connect: ConnectBus):
    new = connect()
    key = bus.keys.lease("main")
    await bus.send_command(b"c1")
    (command,) = await bus.read_commands("engine-1")
    stale = Fence(key, "engine-a", 10_000)
    await bus.complete([], events=[b"e0"], fence=stale)  # takes the free lease
    await bus.release_lease(key, "engine-a")
    assert await new.hold_lease(key, "engine-b", 10_000) is None

    with pytest.raises(LeaseLost, match="engine-b"):
        await bus.complete([command], events=[b"e1"], fence=stale)
    with pytest.raises(LeaseLost):
        await bus.complete_and_read([command], events=[b"e1"], consumer="engine-1",
                                    block_ms=10, fence=stale)

    assert [m.payload for m in await bus.read(bus.events_stream())] == [b"e0"]
    assert [p.id for p in await bus.pending(bus.commands_stream(), ENGINE_GROUP)] == \
        [command.id]
    await new.complete([command], events=[b"e1"], fence=Fence(key, "engine-b", 10_000))
    assert await bus.pending(bus.commands_stream(), ENGINE_GROUP) == []
