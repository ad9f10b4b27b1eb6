"""Time-driven changes: events closing at their close time, dead-man switches firing.

The engine has no clock: time arrives inside every command (``ts_ms``, stamped by the
runtime). When a command's time reaches a timer's due time, ``Engine.apply`` fires the
timer before it applies the command itself, exactly as it expires gtd orders; the
runtime sends an ``Expire`` tick when something is due (``Engine.next_due_ms``) and no
other command came. So what fires, and at which command, depends only on the command
log: a replay (recovery, a standby) fires the same timers at the same place, and a
timer that fell due while the exchange was down fires at the first command after
recovery. Nothing trades past a due timer, however late the tick: the command that would
trade carries a later time, so it fires the timer first.

The timers, all part of the snapshot:

* **close times**: ``closes`` maps an event to its pending close time. Setting a close
  time (creation or update) schedules it, or closes the event at once when the time has
  already come; firing consumes it, so an event an operator reopens after its close
  time stays open until closed again or given a new close time.
* **dead-man switches**: ``switches`` holds each user's switch. A ``Heartbeat`` arms it
  until its time plus the timeout; reaching the deadline cancels every open order of
  the user (reason ``dead_man_switch``) and turns it off; ``DisarmHeartbeat`` removes it,
  so a switch never touches orders placed after it was disarmed. A heartbeat at or past
  the deadline is too late: the switch fires first (the order the engine applies things
  in), then the heartbeat arms it again and reports the firing (``fired_ms``).

``heap`` orders the due times as ``(due_ms, kind, key)``; an entry whose timer was moved
or removed since is stale and skipped when popped, so nothing is ever searched.

Invariant: every pending close and every armed switch has a heap entry at its due time,
and ``next_due`` is the earliest entry's time (``NEVER`` when there is none).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Final

from . import commands as c
from .book import CANCELLED
from .events import DeadManState, Reason
from .limits import id_problem
from .trading import close

if TYPE_CHECKING:
    from .engine import Engine
    from .ledger import Event

NEVER: Final = 2**63 - 1
"""``next_due`` when nothing is scheduled."""

CLOSE: Final = 0
"""Heap entry kind: an event's close time (key: event id)."""
DEAD_MAN_SWITCH: Final = 1
"""Heap entry kind: a dead-man switch's deadline (key: user id)."""

MIN_TIMEOUT_MS: Final = 5_000
"""Shortest dead-man timeout (the API's ``timeout_s`` is 5 to 300)."""
MAX_TIMEOUT_MS: Final = 300_000
"""Longest dead-man timeout."""


class Switch:
    """A user's dead-man switch.

    Attributes:
        deadline_ms: when it fires; 0 once it has fired (off until the next heartbeat).
        timeout_ms: the timeout of the last heartbeat.
        fired_ms: when it last fired since the last heartbeat, else 0.
    """

    user: int
    deadline_ms: int
    timeout_ms: int
    fired_ms: int

    def __init__(self, user: int, deadline_ms: int, timeout_ms: int, fired_ms: int) -> None:
        self.user = user
        self.deadline_ms = deadline_ms
        self.timeout_ms = timeout_ms
        self.fired_ms = fired_ms

    def event(self) -> DeadManState:
        """The ``dead_man`` event of the switch's current state."""
        return DeadManState(self.user, self.deadline_ms or None, self.timeout_ms,
                            self.fired_ms or None)


class Timers:
    """The engine's pending close times and dead-man switches (see the module docstring)."""

    closes: dict[int, int]
    switches: dict[int, Switch]
    heap: list[tuple[int, int, int]]
    next_due: int

    def __init__(self) -> None:
        self.closes = {}
        self.switches = {}
        self.heap = []
        self.next_due = NEVER

    def push(self, due_ms: int, kind: int, key: int) -> None:
        heapq.heappush(self.heap, (due_ms, kind, key))
        if due_ms < self.next_due:
            self.next_due = due_ms

    def data(self) -> dict[str, Any]:
        """The timers as JSON-ready plain data (part of ``Engine.snapshot``)."""
        return {
            "closes": [[event_id, due] for event_id, due in self.closes.items()],
            "switches": [[s.user, s.deadline_ms, s.timeout_ms, s.fired_ms]
                         for s in self.switches.values()],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Timers:
        """Timers as ``data`` described them, their heap rebuilt."""
        t = cls()
        for event_id, due in data["closes"]:
            t.closes[event_id] = due
            t.push(due, CLOSE, event_id)
        for user, deadline, timeout, fired in data["switches"]:
            t.switches[user] = Switch(user, deadline, timeout, fired)
            if deadline:
                t.push(deadline, DEAD_MAN_SWITCH, user)
        return t


# --- firing ----------------------------------------------------------------------------


def fire_due(eng: Engine) -> int:
    """Fire every timer due by the engine's clock; how many fired."""
    t = eng.timers
    heap = t.heap
    now = eng.now_ms
    fired = 0
    while heap and heap[0][0] <= now:
        due, kind, key = heapq.heappop(heap)
        if kind == CLOSE:
            if t.closes.get(key) == due:
                del t.closes[key]
                event = eng.events.get(key)
                if event is not None and event.status == "active":
                    close_event(eng, event, Reason.EVENT_CLOSED)
                    eng._out.append(event.snapshot())
                    fired += 1
        else:
            switch = t.switches.get(key)
            if switch is not None and switch.deadline_ms == due:
                _fire_switch(eng, switch)
                fired += 1
    t.next_due = heap[0][0] if heap else NEVER
    return fired


def close_event(eng: Engine, event: Event, reason: str) -> None:
    """Close an event's markets and cancel their open orders; the caller reports the
    event. One function for an operator's close (``admin``) and a close time's."""
    event.status = "closed"
    for market in event.markets:
        market.status = "closed"
    cancel_event_orders(eng, event, reason)


def cancel_event_orders(eng: Engine, event: Event, reason: str) -> None:
    """Cancel every open order in the event's markets, oldest first."""
    ids = {m.id for m in event.markets}
    for order in [o for o in eng.orders.values() if o.market.id in ids]:
        close(eng, order, CANCELLED, reason)


def _fire_switch(eng: Engine, switch: Switch) -> None:
    acct = eng.accounts.get(switch.user)
    if acct is not None:
        for order in list(acct.orders.values()):
            close(eng, order, CANCELLED, Reason.DEAD_MAN_SWITCH)
    switch.deadline_ms = 0
    switch.fired_ms = eng.now_ms
    eng._out.append(switch.event())


# --- close times -------------------------------------------------------------------------


def schedule_close(eng: Engine, event: Event) -> None:
    """(Re)schedule an event's close after its close time was set.

    A close time at or before the engine's clock closes an active event at once; a
    later one is pending whatever the event's status, so an event closed by hand and
    reopened before its close time still closes then.
    """
    t = eng.timers
    due = event.close_time_ms
    t.closes.pop(event.id, None)
    if due is None:
        return
    if due > eng.now_ms:
        t.closes[event.id] = due
        t.push(due, CLOSE, event.id)
    elif event.status == "active":
        close_event(eng, event, Reason.EVENT_CLOSED)


def forget_event(eng: Engine, event_id: int) -> None:
    """Drop an event's pending close (it was resolved or deleted)."""
    eng.timers.closes.pop(event_id, None)


def next_due(eng: Engine) -> int:
    """When the earliest live timer falls due (``NEVER``: none), dropping stale entries
    from the top of the heap first, so the runtime never ticks for a timer that was
    moved (each heartbeat leaves its predecessor's entry behind) or removed."""
    t = eng.timers
    heap = t.heap
    while heap:
        due, kind, key = heap[0]
        if kind == CLOSE:
            live = t.closes.get(key) == due
        else:
            switch = t.switches.get(key)
            live = switch is not None and switch.deadline_ms == due
        if live:
            break
        heapq.heappop(heap)
    t.next_due = heap[0][0] if heap else NEVER
    return t.next_due


# --- dead-man switch commands --------------------------------------------------------------


def _user_problem(eng: Engine, raw: Any, command: str) -> bool:
    """Reject (and say True) if the command's user id is not one a client may name."""
    problem = id_problem(raw.user_id)
    if problem is not None:
        eng._reject(None, command, Reason.INVALID_FIELD, f"user_id {problem}")
        return True
    return False


def heartbeat(eng: Engine, cmd: c.Heartbeat) -> None:
    """Arm the user's switch until now + timeout (see ``commands.Heartbeat``)."""
    raw: Any = cmd  # values a client controls: checked before use
    if _user_problem(eng, raw, "Heartbeat"):
        return
    timeout = raw.timeout_ms
    if type(timeout) is not int or not MIN_TIMEOUT_MS <= timeout <= MAX_TIMEOUT_MS:
        eng._reject(cmd.user_id, "Heartbeat", Reason.INVALID_FIELD,
                    f"timeout_ms must be from {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}")
        return
    t = eng.timers
    deadline = eng.now_ms + timeout
    switch = t.switches.get(cmd.user_id)
    if switch is None:
        switch = t.switches[cmd.user_id] = Switch(cmd.user_id, deadline, timeout, 0)
    else:
        switch.deadline_ms = deadline
        switch.timeout_ms = timeout
    eng._out.append(switch.event())  # reports a firing since the previous heartbeat
    switch.fired_ms = 0
    t.push(deadline, DEAD_MAN_SWITCH, cmd.user_id)


def disarm(eng: Engine, cmd: c.DisarmHeartbeat) -> None:
    """Remove the user's switch: nothing of theirs is cancelled by it any more."""
    raw: Any = cmd
    if _user_problem(eng, raw, "DisarmHeartbeat"):
        return
    switch = eng.timers.switches.pop(cmd.user_id, None)
    timeout = switch.timeout_ms if switch is not None else 0
    eng._out.append(DeadManState(cmd.user_id, None, timeout, None))
