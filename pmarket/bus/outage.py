"""How a retried operation behaves while its transport is down: backoff and two log lines.

A long-running reader (the reply listener, a server's market-data feed) retries a
failing transport for as long as the outage lasts. ``Outage`` paces the retries
(exponential backoff up to a ceiling) and keeps the log readable: one ``ERROR`` line when
the failures start, one ``WARNING`` line with the outage's length when the operation
works again, nothing per retry in between (``DEBUG`` only).

Invariant: every outage that was logged as started is logged as ended once the operation
succeeds again; a success without a preceding failure logs nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time


class Outage:
    """The retry state of one operation (see the module docstring).

    Args:
        what: names the operation in the log lines ("reply listener of <instance>").
        log: the logger to write them to.
        first_backoff_s: the first wait after a failure; doubles per failure.
        max_backoff_s: the longest wait.
    """

    def __init__(self, what: str, log: logging.Logger, *, first_backoff_s: float = 0.05,
                 max_backoff_s: float = 1.0) -> None:
        self.what = what
        self.log = log
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.backoff_s = first_backoff_s
        self.since: float | None = None  # monotonic time of the first failure
        self.failures = 0

    @property
    def down(self) -> bool:
        """True between a failure and the next success."""
        return self.since is not None

    def fail(self, exc: BaseException) -> None:
        """Record a failure (logged loudly if it starts an outage), without waiting."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.error("%s failed: %s; retrying until it works again", self.what,
                           _reason(exc))
        else:
            self.log.debug("%s failed again: %s", self.what, _reason(exc))

    async def failed(self, exc: BaseException) -> None:
        """Record a failure, then wait the current backoff (which then doubles)."""
        self.fail(exc)
        await asyncio.sleep(self.backoff_s)
        self.backoff_s = min(self.backoff_s * 2, self.max_backoff_s)

    def recovered(self) -> float | None:
        """Record a success; the outage's length in seconds if one just ended."""
        self.backoff_s = self.first_backoff_s
        if self.since is None:
            return None
        lasted = time.monotonic() - self.since
        self.log.warning("%s works again after %.1f s (%d failed tries)", self.what, lasted,
                         self.failures)
        self.since = None
        self.failures = 0
        return lasted


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
