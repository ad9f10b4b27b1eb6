"""The asyncio single-writer runner applies commands in order, stamped with seq and time."""

import asyncio

import pytest

from pmarket.engine import CreateEvent, Deposit, Engine, Withdraw
from pmarket.engine.events import BalanceState
from pmarket.runtime.runner import LocalRunner


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
    assert all(events[-1].kind == "balance" for events in results)


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
    assert sum(1 for ev in results if ev[0].kind == "ledger") == 1
    assert engine.balance(1) == (0, 0)


@pytest.mark.parametrize("recorded", [False, True], ids=["one-call", "recorded"])
async def test_a_broken_invariant_stops_the_writer_loudly(recorded: bool):
    """Alike whether the batch goes to the engine in one call (``apply_run``) or command
    by command with each recorded (``on_applied``)."""
    engine = Engine()

    def boom(eng, cmd):
        raise AssertionError("invariant broken")

    engine._handlers[Withdraw] = boom
    runner = LocalRunner(engine, on_applied=(lambda cmd, ev: None) if recorded else None)
    runner.start()
    results = await asyncio.gather(
        runner.submit(Deposit(user_id=1, amount=5)),
        runner.submit(Withdraw(user_id=1, amount=1)),
        runner.submit(Deposit(user_id=2, amount=5)),
        return_exceptions=True)
    # The same batch: the command before the failure has its events, the failing one
    # its error, the one after it was never applied.
    assert results[0][-1] == BalanceState(1, 5, 0)
    assert isinstance(results[1], AssertionError)
    assert isinstance(results[2], RuntimeError) and engine.balance(2) == (0, 0)
    with pytest.raises(RuntimeError, match="engine stopped"):
        await runner.submit(Deposit(user_id=1, amount=1))
    with pytest.raises(AssertionError):
        await runner.stop()


async def test_one_future_wakes_a_whole_batch_and_each_caller_gets_its_own_events():
    engine = Engine()
    async with LocalRunner(engine, batch=8) as r:
        results = await asyncio.gather(*(r.submit(Deposit(user_id=u, amount=u))
                                         for u in range(1, 21)))
    assert r.batches == 3 and r.applied == 20  # 8 + 8 + 4 commands
    assert [events[-1] for events in results] == [BalanceState(u, u, 0) for u in range(1, 21)]


async def test_a_cancelled_caller_leaves_the_others_of_its_batch_undisturbed():
    engine = Engine()
    runner = LocalRunner(engine)
    tasks = [asyncio.create_task(runner.submit(Deposit(user_id=u, amount=1)))
             for u in range(1, 6)]
    await asyncio.sleep(0)  # all five wait on their batch's one future
    assert runner._open is not None and len(runner._open.items) == 5
    tasks[1].cancel()  # cancels the shared future too: the others must wait it out
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [events[-1] for k, events in enumerate(done) if k != 1] == [
        BalanceState(u, 1, 0) for u in (1, 3, 4, 5)]
    assert engine.balance(2) == (1, 0)  # sent, so applied, like a request already sent
    assert (await runner.submit(Deposit(user_id=9, amount=1)))[-1] == BalanceState(9, 1, 0)


async def test_a_caller_cancelled_after_its_batch_was_applied_still_sees_the_cancellation():
    runner = LocalRunner(Engine())
    task = asyncio.create_task(runner.submit(Deposit(user_id=1, amount=1)))
    await asyncio.sleep(0)
    runner._drain()  # answered; the caller has not run since
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_something_that_is_not_a_command_fails_alone():
    engine = Engine()
    async with LocalRunner(engine) as r:
        results = await asyncio.gather(r.submit(Deposit(user_id=1, amount=1)),
                                       r.submit("deposit 1"),  # type: ignore[arg-type]
                                       r.submit(Deposit(user_id=2, amount=1)),
                                       return_exceptions=True)
    assert isinstance(results[1], TypeError)
    assert [results[0][-1], results[2][-1]] == [BalanceState(1, 1, 0), BalanceState(2, 1, 0)]
    assert engine.last_seq == 2


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
    tasks = [asyncio.create_task(runner.submit(Deposit(user_id=1, amount=1)))
             for _ in range(10)]
    await asyncio.sleep(0)  # all ten queued, in four batches; none drained yet
    assert engine.balance(1) == (0, 0)
    await runner.stop()
    assert engine.balance(1) == (10, 0)
    assert [events[-1].available for events in await asyncio.gather(*tasks)] == list(range(1, 11))
