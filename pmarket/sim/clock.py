"""Simulated time: the scenario's clock, which only moves when the runner moves it.

Scenarios speak in offsets from their start ("at: 30s", "expires_in: 1m"); the clock
turns them into the Unix milliseconds the target stamps its commands with. Nothing waits
in real time, so a simulated trading day runs in seconds and always the same way.

Invariant: ``now_ms`` never decreases.
"""

from __future__ import annotations

from .scenario import START_MS


class SimClock:
    """A monotonic simulated clock starting at ``start_ms`` (Unix milliseconds)."""

    __slots__ = ("now_ms", "start_ms")

    def __init__(self, start_ms: int = START_MS):
        self.start_ms = start_ms
        self.now_ms = start_ms

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds of simulated time since the start."""
        return self.now_ms - self.start_ms

    def at(self, offset_ms: int) -> int:
        """The Unix time of an offset from the start."""
        return self.start_ms + offset_ms

    def move_to(self, now_ms: int) -> bool:
        """Move to a Unix time not before now; True if the time changed.

        Raises:
            ValueError: if ``now_ms`` is in the past.
        """
        if now_ms < self.now_ms:
            raise ValueError(f"simulated time cannot go back from {self.now_ms} to {now_ms}")
        changed = now_ms != self.now_ms
        self.now_ms = now_ms
        return changed
