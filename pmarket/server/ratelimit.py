"""Per-caller rate limits: a token bucket per user (or per client address).

Each key may burst ``burst`` requests and then ``rate`` per second on average; a request
beyond that is refused (429 with ``Retry-After``). Buckets live in this process's memory:
with several server processes each enforces the limit on its own share of the traffic.

Invariant: memory stays bounded — idle buckets (full again) are dropped when the table
grows past ``max_keys``.
"""

from __future__ import annotations

import math
import time


class RateLimiter:
    """Token buckets keyed by caller.

    Args:
        rate: tokens added per second (sustained requests per second).
        burst: bucket size (requests allowed at once).
        max_keys: table size that triggers dropping idle buckets.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000):
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[object, tuple[float, float]] = {}

    def allow(self, key: object, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 if allowed, else seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.max_keys:
            self._sweep(now)
        return 0.0

    def retry_after(self, wait_s: float) -> str:
        """``Retry-After`` header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait_s)))

    def _sweep(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
