"""Holding early deliveries until the commands before them arrive.

The projector applies deliveries strictly in command order and hands back those that
arrived before an earlier one (``ProjectionResult.deferred``). ``Reorderer`` keeps them,
bounded, and releases a contiguous run as soon as the hole before it is filled.

Invariant: at most ``limit`` deliveries are held; beyond that a delivery is refused
(``offer`` returns False) and the caller leaves it un-acked, so the bus delivers it
again later — memory stays bounded under any disorder.
"""

from __future__ import annotations

from collections.abc import Iterable

from pmarket.runtime.eventlog import Delivery


class Reorderer:
    """A bounded buffer of deliveries keyed by their first command seq.

    Args:
        limit: the most deliveries held at once.
    """

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._held: dict[int, Delivery] = {}

    def __len__(self) -> int:
        return len(self._held)

    def offer(self, delivery: Delivery) -> bool:
        """Hold ``delivery``; False (not held) when the buffer is full."""
        if delivery.first_seq in self._held:
            return True  # a copy of one already held
        if len(self._held) >= self.limit:
            return False
        self._held[delivery.first_seq] = delivery
        return True

    def offer_all(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """Hold each delivery; return those refused because the buffer was full."""
        return [d for d in deliveries if not self.offer(d)]

    def release(self, position: int) -> list[Delivery]:
        """Take out the run of held deliveries that continues from ``position``.

        Held deliveries that end at or before ``position`` are dropped as duplicates.
        """
        for first in [f for f, d in self._held.items() if d.last_seq <= position]:
            del self._held[first]
        run = []
        expected = position + 1
        while expected in self._held:
            delivery = self._held.pop(expected)
            run.append(delivery)
            expected = delivery.last_seq + 1
        return run

    def lowest_missing(self, position: int) -> tuple[int, int] | None:
        """The hole blocking the buffer: ``(first, last)`` seqs missing, None if none."""
        ahead = [f for f in self._held if f > position + 1]
        if not ahead or position + 1 in self._held:
            return None
        return position + 1, min(ahead) - 1
