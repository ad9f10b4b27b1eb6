"""``Decoded``: an in-process bus's readers take what this process just encoded instead
of decoding it again, and only for the very payload object that was kept."""

from __future__ import annotations

from pmarket.bus import MemoryBus
from pmarket.bus.values import Decoded


def test_a_kept_payload_is_taken_once_and_only_as_the_same_object():
    memo = Decoded()
    payload = b'[["balance",1,5,0]]'
    memo.keep(payload, ["decoded"])
    assert memo.take(bytes(bytearray(payload))) is None  # equal bytes, another object
    assert memo.take(payload) == ["decoded"]
    assert memo.take(payload) is None  # taken already: the next reader decodes
    assert memo.taken == 1


def test_only_the_newest_are_kept():
    memo = Decoded(size=3)
    payloads = [f"[{k}]".encode() for k in range(5)]
    for k, p in enumerate(payloads):
        memo.keep(p, k)
    assert [memo.take(p) for p in payloads] == [None, None, 2, 3, 4]


def test_connections_of_one_memory_bus_share_it():
    bus = MemoryBus()
    assert bus.connect().decoded is bus.decoded is not None
    assert MemoryBus().decoded is not bus.decoded
