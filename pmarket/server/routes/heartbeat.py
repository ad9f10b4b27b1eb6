"""The dead-man switch: ``POST /heartbeat`` arms it, ``DELETE /heartbeat`` turns it off.

The switch lives in the engine's state, as data: a heartbeat is a command whose time the
engine stamps, so its deadline is the engine's time plus the timeout, whichever server
took the request and whatever that server's clock says. The engine service's clock tick
fires a switch whose deadline passed (``pmarket.engine.timers``): every open order of
the user is cancelled, with the usual ``user`` WebSocket messages.

Invariant: the response states the switch as the engine left it (``expires_at``), and
``fired_at`` says whether it fired since the previous heartbeat — a heartbeat that came
too late re-arms the switch but cannot undo the cancellations.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from pmarket import api
from pmarket.api import convert
from pmarket.engine import DisarmHeartbeat, Heartbeat
from pmarket.engine.events import DeadManState

from ..deps import CurrentUser, RuntimeDep
from ..exactjson import ExactJSONRoute
from .common import ERRORS, ok

router = APIRouter(route_class=ExactJSONRoute, tags=["dead-man switch"], responses=ERRORS)


@router.post("/heartbeat", response_model=api.Heartbeat)
async def heartbeat(body: api.HeartbeatIn, user: CurrentUser, runtime: RuntimeDep):
    """Arm the dead-man switch, or keep it armed: unless another heartbeat arrives
    within `timeout_s` (5 to 300), every open order of the caller is cancelled and the
    switch turns off. `fired_at` is set when it fired since the previous heartbeat."""
    events = await runtime.gateway.send(Heartbeat(user_id=user.id,
                                                  timeout_ms=body.timeout_s * 1000))
    state = next(e for e in events if isinstance(e, DeadManState))
    return ok(convert.dead_man(state))


@router.delete("/heartbeat", status_code=204, response_class=Response)
async def disarm(user: CurrentUser, runtime: RuntimeDep):
    """Turn the dead-man switch off (204 whether or not it was armed)."""
    await runtime.gateway.send(DisarmHeartbeat(user_id=user.id))
    return Response(status_code=204)
