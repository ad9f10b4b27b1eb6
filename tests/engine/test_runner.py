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
    assert [ts for _, ts in log] == list(range(1000, 1051))
    assert all(events[-1][0] == "balance" for events in results)


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
