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
from typing import Any, Final

from . import commands as c
from .events import DeadManState, Reason
from .limits import id_problem
from .model import CANCELLED, CLOSE, DEAD_MAN_SWITCH, NEVER, Event, Switch
from .state import State
from .trading import close

MIN_TIMEOUT_MS: Final = 5_000
"""Shortest dead-man timeout (the API's ``timeout_s`` is 5 to 300)."""
MAX_TIMEOUT_MS: Final = 300_000
"""Longest dead-man timeout."""


# --- firing ----------------------------------------------------------------------------


def fire_due(eng: State) -> int:
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


def close_event(eng: State, event: Event, reason: str) -> None:
    """Close an event's markets and cancel their open orders; the caller reports the
    event. One function for an operator's close (``admin``) and a close time's."""
    event.status = "closed"
    for market in event.markets:
        market.status = "closed"
    cancel_event_orders(eng, event, reason)


def cancel_event_orders(eng: State, event: Event, reason: str) -> None:
    """Cancel every open order in the event's markets, oldest first."""
    ids = {m.id for m in event.markets}
    for order in [o for o in eng.orders.values() if o.market.id in ids]:
        close(eng, order, CANCELLED, reason)


def _fire_switch(eng: State, switch: Switch) -> None:
    acct = eng.accounts.get(switch.user)
    if acct is not None:
        for order in list(acct.orders.values()):
            close(eng, order, CANCELLED, Reason.DEAD_MAN_SWITCH)
    switch.deadline_ms = 0
    switch.fired_ms = eng.now_ms
    eng._out.append(switch.event())


# --- close times -------------------------------------------------------------------------


def schedule_close(eng: State, event: Event) -> None:
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


def forget_event(eng: State, event_id: int) -> None:
    """Drop an event's pending close (it was resolved or deleted)."""
    eng.timers.closes.pop(event_id, None)


def next_due(eng: State) -> int:
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


def _user_problem(eng: State, raw: Any, command: str) -> bool:
    """Reject (and say True) if the command's user id is not one a client may name."""
    problem = id_problem(raw.user_id)
    if problem is not None:
        eng._reject(None, command, Reason.INVALID_FIELD, f"user_id {problem}")
        return True
    return False


def heartbeat(eng: State, cmd: c.Heartbeat) -> None:
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


def disarm(eng: State, cmd: c.DisarmHeartbeat) -> None:
    """Remove the user's switch: nothing of theirs is cancelled by it any more."""
    raw: Any = cmd
    if _user_problem(eng, raw, "DisarmHeartbeat"):
        return
    switch = eng.timers.switches.pop(cmd.user_id, None)
    timeout = switch.timeout_ms if switch is not None else 0
    eng._out.append(DeadManState(cmd.user_id, None, timeout, None))
