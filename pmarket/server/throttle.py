"""Sign-in protection: a growing lockout after repeated failures, per account and address.

``FailureThrottle`` counts failed sign-ins per key. The first ``free_failures`` attempts
are free; from then on every attempt — counted *before* the password is checked, so a
burst of concurrent guesses cannot slip through together — locks the key for a time that
doubles with each further failure (``base_lockout_s``, twice that, four times, ... up to
``max_lockout_s``). A successful sign-in forgets the key; a key with no failure for
``forget_after_s`` is forgotten too.

``SigninGuard`` applies two throttles to a sign-in: one keyed by the account's e-mail
(whether or not the account exists, so a lockout never reveals that), one keyed by the
client address (one address guessing many accounts; its own successful sign-ins only take
their attempt back, they never wipe its failures). A locked key is refused before any
bcrypt work (429 ``rate_limited`` with ``Retry-After``).

Invariants: memory stays bounded (``max_keys``; idle entries are swept); at most
``free_failures`` password checks of a key run between two lockouts, however many
requests arrive at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Failures:
    count: int
    locked_until: float
    last: float


class FailureThrottle:
    """Failure counts and lockouts per key.

    Args:
        free_failures: attempts allowed before lockouts start.
        base_lockout_s: the first lockout; each further failure doubles it.
        max_lockout_s: the longest lockout.
        forget_after_s: a key with no failed attempt for this long starts afresh.
        max_keys: table size that triggers sweeping forgotten keys.
    """

    def __init__(self, free_failures: int = 5, base_lockout_s: float = 1.0,
                 max_lockout_s: float = 900.0, forget_after_s: float = 3600.0,
                 max_keys: int = 100_000):
        self.free_failures = free_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self.max_keys = max_keys
        self._keys: dict[object, _Failures] = {}

    def attempt(self, key: object, now: float | None = None) -> float:
        """Count an attempt for ``key``: 0.0 if it may proceed, else seconds to wait.

        The attempt is counted as a failure until ``succeeded`` says otherwise.
        """
        now = time.monotonic() if now is None else now
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self.forget_after_s \
                and now >= entry.locked_until:
            entry = None
        if entry is None:
            entry = self._keys[key] = _Failures(0, 0.0, now)
            if len(self._keys) > self.max_keys:
                self._sweep(now)
        if now < entry.locked_until:
            return entry.locked_until - now
        entry.count += 1
        entry.last = now
        over = entry.count - self.free_failures
        if over > 0:
            # This attempt may run, but the next ones wait: concurrent guesses are refused.
            entry.locked_until = now + self.lockout_s(over)
        return 0.0

    def lockout_s(self, over: int) -> float:
        """The lockout after the ``over``-th attempt past the free ones."""
        if over > 64:
            return self.max_lockout_s
        return min(self.max_lockout_s, self.base_lockout_s * 2 ** (over - 1))

    def succeeded(self, key: object, *, forget: bool = True) -> None:
        """The attempt was a correct password: forget ``key``'s failures, or with
        ``forget=False`` only take this attempt back (its other failures stay)."""
        if forget:
            self._keys.pop(key, None)
            return
        entry = self._keys.get(key)
        if entry is not None and entry.count > 0:
            entry.count -= 1

    def withdraw(self, key: object) -> None:
        """Take back an attempt whose password was never checked (the database or the
        hasher was unavailable): it neither counts nor locks."""
        entry = self._keys.get(key)
        if entry is None or entry.count <= 0:
            return
        entry.count -= 1
        if entry.count <= self.free_failures:
            entry.locked_until = 0.0

    def failures(self, key: object) -> int:
        """Attempts counted for ``key`` (for tests and metrics)."""
        entry = self._keys.get(key)
        return 0 if entry is None else entry.count

    def _sweep(self, now: float) -> None:
        stale = [k for k, e in self._keys.items()
                 if now - e.last > self.forget_after_s and now >= e.locked_until]
        for key in stale:
            del self._keys[key]
        if len(self._keys) > self.max_keys:
            # Still full of live entries: drop the oldest half rather than grow forever.
            oldest = sorted(self._keys, key=lambda k: self._keys[k].last)
            for key in oldest[:len(oldest) // 2]:
                del self._keys[key]


class SigninGuard:
    """The two throttles of a sign-in: per account (e-mail) and per client address.

    Args:
        account: throttle keyed by the normalised e-mail.
        address: throttle keyed by the client address.
    """

    def __init__(self, account: FailureThrottle, address: FailureThrottle):
        self.account = account
        self.address = address

    def attempt(self, email: str, address: str) -> float:
        """0.0 if this sign-in may check its password, else seconds to wait."""
        wait = self.address.attempt(("addr", address))
        if wait:
            return wait
        return self.account.attempt(("email", email))

    def withdraw(self, email: str, address: str) -> None:
        """The password could not be checked (an outage): the attempt does not count."""
        self.account.withdraw(("email", email))
        self.address.withdraw(("addr", address))

    def succeeded(self, email: str, address: str) -> None:
        """A correct password: the account starts afresh; the address only gets this
        attempt back (a valid account of one's own must not reset an address's guesses
        at other accounts)."""
        self.account.succeeded(("email", email))
        self.address.succeeded(("addr", address), forget=False)


def retry_after(wait_s: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))
