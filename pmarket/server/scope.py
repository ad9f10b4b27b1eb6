"""What a write or a delivery changed, and what a read shows: so that a read waits only
for the changes it could show.

A ``Scope`` names the users whose own state (cash, positions, orders, payouts, dead-man
switch) and the markets whose book or prices some events changed (and the user a
refusal or a resent order answered: that answer may show an earlier command's effect),
or ``everything`` for a change any read may show (an event created, updated, closed,
resolved or deleted, or an event of a kind this server does not know).
``scope_of(events)`` computes it.

A ``Reader`` names what one read shows: a user's own state, some markets' books and
prices. ``EVERY_READER`` is a read that may show anything (an event list, a WebSocket
subscription, a database read).

Used by the read barrier (``consistency``: a read waits for this server's answered writes
whose scope it touches) and the replica (``marketdata``: a read waits while a delivery
that touches it is half-folded).

Invariant: an event that changes what some read shows puts that read's user or market in
the scope, or makes it ``everything``; ``tests/server/test_scope.py`` checks every event
kind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pmarket.engine import events as ev

_NO_CHANGE = frozenset({ev.BATCH_ITEM, ev.CLOCK})
"""Kinds that change nothing by themselves (a clock tick's expiries come as ``order``
events of their own)."""

_ANSWER_KINDS = frozenset({ev.REJECTED, ev.DUPLICATE})
"""Kinds that change nothing but answer from the user's current state: a resent order
(``duplicate``) or a refusal may show the effect of an earlier command of the user whose
own answer never arrived (a timeout), so the user's next reads wait for it too."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Users and markets some events changed (see the module docstring)."""

    users: frozenset[int] = frozenset()
    markets: frozenset[int] = frozenset()
    everything: bool = False

    def touches(self, reader: Reader) -> bool:
        """Whether a read of ``reader`` could show a change of this scope."""
        if self.everything or reader.everything:
            return True
        return ((reader.user is not None and reader.user in self.users)
                or not self.markets.isdisjoint(reader.markets))

    @property
    def empty(self) -> bool:
        return not (self.everything or self.users or self.markets)


@dataclass(frozen=True, slots=True)
class Reader:
    """What one read shows: ``user``'s own state and ``markets``' books and prices;
    ``everything``: anything at all."""

    user: int | None = None
    markets: Collection[int] = ()
    everything: bool = False


EVERYTHING = Scope(everything=True)
EVERY_READER = Reader(everything=True)


def scope_of(events: Iterable[object]) -> Scope:
    """The users and markets ``events`` change (``everything`` for event-level changes and
    unknown kinds)."""
    users: set[int] = set()
    markets: set[int] = set()
    for e in events:
        kind = e.kind  # type: ignore[attr-defined]
        if kind == ev.FILL:
            users.add(e.taker_user_id)  # type: ignore[attr-defined]
            users.add(e.maker_user_id)  # type: ignore[attr-defined]
            markets.add(e.market_id)  # type: ignore[attr-defined]
        elif kind == ev.ORDER or kind == ev.POSITION:
            users.add(e.user_id)  # type: ignore[attr-defined]
            markets.add(e.market_id)  # type: ignore[attr-defined]
        elif kind == ev.BOOK:
            markets.add(e.market_id)  # type: ignore[attr-defined]
        elif kind == ev.BALANCE or kind == ev.DEAD_MAN:
            users.add(e.user_id)  # type: ignore[attr-defined]
        elif kind in _ANSWER_KINDS:
            user = e.user_id  # type: ignore[attr-defined]
            if type(user) is int:  # a refused command's may be anything it came with
                users.add(user)
        elif kind == ev.LEDGER or kind == ev.PAYOUT:
            users.add(e.user_id)  # type: ignore[attr-defined]
            if e.market_id is not None:  # type: ignore[attr-defined]
                markets.add(e.market_id)  # type: ignore[attr-defined]
        elif kind not in _NO_CHANGE:
            return EVERYTHING
    return Scope(frozenset(users), frozenset(markets))
