"""The asyncio single-writer runner applies commands in order, stamped with seq and time."""

import asyncio

import pytest

from pmarket.engine import CreateEvent, Deposit, Engine, Withdraw
from pmarket.engine.runner import LocalRunner


async def test_concurrent_submissions_are_applied_one_at_a_time_in_order():
    log = []
    clock = iter(range(1000, 2000))
    async with LocalRunner(Engine(), clock=lambda: next(clock),
                           on_applied=lambda cmd, ev: log.append((cmd.seq, cmd.ts_ms))) as r:
        await r.submit(CreateEvent(title="x"))
        results = await asyncio.gather(*(r.submit(Deposit(user_id=u, amount=10))
                                         for u in range(1, 51)))
    assert [seq for seq, _ in log] == list(range(1, 52))
    # One clock reading per drained batch: the lone first command, then the fifty.
    assert [ts for _, ts in log] == [1000] + [1001] * 50
    assert all(events[-1][0] == "balance" for events in results)


async def test_the_clock_never_runs_backwards_for_the_engine():
    readings = iter([5000, 4000])
    log = []
    async with LocalRunner(Engine(), clock=lambda: next(readings),
                           on_applied=lambda cmd, ev: log.append(cmd.ts_ms)) as r:
        await r.submit(Deposit(user_id=1, amount=1))
        await r.submit(Deposit(user_id=1, amount=1))
    assert log == [5000, 5000]


async def test_fifty_simultaneous_withdrawals_of_the_whole_balance_exactly_one_succeeds():
    engine = Engine()
    async with LocalRunner(engine) as r:
        await r.submit(Deposit(user_id=1, amount=500))
        results = await asyncio.gather(*(r.submit(Withdraw(user_id=1, amount=500))
                                         for _ in range(50)))
    assert sum(1 for ev in results if ev[0][0] == "ledger") == 1
    assert engine.balance(1) == (0, 0)


async def test_a_broken_invariant_stops_the_writer_loudly():
    engine = Engine()

    def boom(eng, cmd):
        raise AssertionError("invariant broken")

    engine._handlers[Deposit] = boom
    runner = LocalRunner(engine)
    runner.start()
    with pytest.raises(AssertionError):
        await runner.submit(Deposit(user_id=1, amount=1))
    with pytest.raises(AssertionError):
        await runner.stop()


async def test_a_drain_answers_its_batch_before_applying_later_commands():
    """With batch=2, the first callers get their replies (and may submit again) before
    the rest of the queue is applied; nothing is lost and the order stays FIFO."""
    order = []
    engine = Engine()
    runner = LocalRunner(engine, batch=2, on_applied=lambda cmd, ev: order.append(cmd.user_id))

    async def client(user: int) -> None:
        await runner.submit(Deposit(user_id=user, amount=1))
        await runner.submit(Deposit(user_id=user, amount=1))

    async with runner:
        await asyncio.gather(*(client(u) for u in (1, 2, 3, 4)))
    assert order == [1, 2, 3, 4, 1, 2, 3, 4]
    assert [engine.balance(u) for u in (1, 2, 3, 4)] == [(2, 0)] * 4


async def test_stop_applies_everything_still_queued():
    engine = Engine()
    runner = LocalRunner(engine, batch=3)
    futures = [runner.submit(Deposit(user_id=1, amount=1)) for _ in range(10)]
    await runner.stop()
    assert all(f.done() for f in futures)
    assert engine.balance(1) == (10, 0)
