"""A connection's send loop: every queued frame in order, in slices, and none while the
replica folds a big delivery (every read waits for that fold)."""

from __future__ import annotations

import asyncio

from pmarket.runtime.slicing import Slicer
from pmarket.server.websocket import Connection, _send_loop


class FakeSocket:
    """Sends complete without suspending, as a frame that fits the socket buffer does."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: int | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int) -> None:
        self.closed = code


class EveryN:
    """A slicer clock whose slice runs out after every ``n`` looks."""

    def __init__(self, n: int) -> None:
        self.n, self.looks = n, 0

    def __call__(self) -> float:
        self.looks += 1
        return float(self.looks // self.n)


async def test_a_long_queue_is_sent_in_order_in_slices_with_others_running_between():
    ws = FakeSocket()
    conn = Connection(ws)  # type: ignore[arg-type]
    for k in range(5_000):
        conn.put_raw(b'{"k":%d}' % k)
    conn.close()
    slicer = Slicer(budget_s=1.0, clock=EveryN(100))
    turns = 0

    async def other() -> None:  # another request on the loop
        nonlocal turns
        while ws.closed is None:
            turns += 1
            await asyncio.sleep(0)

    await asyncio.gather(_send_loop(conn, slicer=slicer), other())
    assert ws.sent == [f'{{"k":{k}}}' for k in range(5_000)] and ws.closed == 1008
    assert slicer.pauses >= 20 and turns >= 20


async def test_no_frame_is_sent_while_the_replica_folds_a_big_delivery():
    ws = FakeSocket()
    conn = Connection(ws)  # type: ignore[arg-type]
    folded = asyncio.Event()

    async def unhurried() -> None:  # Replica.unhurried while a big delivery is folded
        await folded.wait()

    for k in range(10):
        conn.put_raw(b"%d" % k)
    sender = asyncio.create_task(_send_loop(conn, unhurried))
    for _ in range(20):
        await asyncio.sleep(0)
    assert ws.sent == []
    folded.set()
    conn.close()
    await asyncio.wait_for(sender, 5)
    assert ws.sent == [str(k) for k in range(10)]
