"""The server's only way to change anything in the exchange: commands over the bus.

``Gateway.send(command)`` encodes the command, waits for the engine's reply, keeps the
events of that command alone (``command_events``: what the command's time made due
before it — other users' expired or cancelled orders, a closed event — reaches everyone
through the event stream, never as this caller's answer), notes what the write
changed for read-your-writes (``consistency``) and turns a ``rejected`` event into the
HTTP error the API promises (``REJECTION_STATUS``). A big reply (a cancel-all of
thousands of orders) is decoded in slices (``runtime.slicing``), other requests running
between them.

Invariant: the engine is the single writer, so every check that guards money (enough
cash, enough shares, market active...) happens there, atomically with the change; the
gateway never pre-checks state it could read stale. A reply that does not arrive in time
is a 504 (the command may still be applied) and an unreachable bus a 503 with
``Retry-After`` (usually the command was never sent; one whose write the outage cut off
mid-way may have been, as with a 504 — ``client_order_id`` makes a retry safe).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pmarket.api import convert
from pmarket.bus import Bus, BusUnavailable, RequestTimeout, encode_command
from pmarket.engine.commands import Command
from pmarket.engine.events import EngineEvent, Reason, Rejected, command_events
from pmarket.runtime.slicing import Slicer, decode_events_sliced

from .errors import BUS_RETRY_AFTER_S, ApiError
from .scope import Scope, scope_of

REJECTION_STATUS: dict[str, int] = {
    Reason.INSUFFICIENT_CASH: 409,
    Reason.INSUFFICIENT_SHARES: 409,
    Reason.MARKET_NOT_ACTIVE: 409,
    Reason.EVENT_NOT_ACTIVE: 409,
    Reason.ALREADY_RESOLVED: 409,
    Reason.POST_ONLY_WOULD_CROSS: 409,
    Reason.SINGLE_OUTCOME_EVENT: 409,
    Reason.EVENT_NOT_DELETABLE: 409,
    Reason.ORDER_NOT_OPEN: 409,
    Reason.DUPLICATE_COMMAND: 409,
    Reason.CLIENT_ORDER_ID_REUSED: 409,
    Reason.UNKNOWN_MARKET: 404,
    Reason.UNKNOWN_EVENT: 404,
    Reason.UNKNOWN_ORDER: 404,
    Reason.NOT_OWNER: 404,
    Reason.UNKNOWN_OUTCOME: 422,
    Reason.INVALID_PRICE: 422,
    Reason.INVALID_QUANTITY: 422,
    Reason.INVALID_AMOUNT: 422,
    Reason.BALANCE_LIMIT: 409,  # a deposit past the account's limit (max_user_balance)
    Reason.OPEN_ORDER_LIMIT: 409,  # a placement past the account's limit (max_open_orders)
    Reason.EXCHANGE_MONEY_LIMIT: 422,  # a deposit past the exchange-wide MAX_TOTAL_MONEY
    Reason.INVALID_ORDER: 422,
    Reason.INVALID_EVENT: 422,
    Reason.INVALID_EXPIRY: 422,
    Reason.INVALID_FIELD: 422,  # the input limits, for a command that bypassed the schemas
}
"""HTTP status of each engine rejection reason (unlisted reasons: 422)."""

def rejection_error(event: Rejected) -> ApiError:
    """The API error for a ``rejected`` event."""
    reason, message = convert.rejection(event)
    if reason in (Reason.UNKNOWN_ORDER, Reason.NOT_OWNER):
        # Never reveal that another user's order exists.
        order_id = event.order_id
        return ApiError(404, "not_found", f"order {order_id} not found" if order_id
                        else "order not found")
    return ApiError(REJECTION_STATUS.get(reason, 422), reason, message)


class Gateway:
    """Sends commands to the engine of one shard and reads its replies.

    Args:
        bus: the bus to the engine.
        timeout_s: how long to wait for a reply.
        on_write: called after every reply with what its events changed
            (read-your-writes bookkeeping: ``ReadBarrier.note_write``).
        observe: called with (command name, seconds, rejected reason or None) for metrics.
        before_send: awaited before a command is sent (``marketdata.Replica.unhurried``:
            while the replica decodes and folds a big delivery in slices, new commands
            wait for it to finish, so the fold is not starved by the work they bring).
    """

    def __init__(self, bus: Bus, *, timeout_s: float = 10.0,
                 on_write: Callable[[Scope], None] = lambda scope: None,
                 observe: Callable[[str, float, str | None], None] | None = None,
                 before_send: Callable[[], Awaitable[None]] | None = None):
        self.bus = bus
        self.timeout_s = timeout_s
        self.on_write = on_write
        self.observe = observe
        self.before_send = before_send

    async def send_raw(self, command: Command) -> list[EngineEvent]:
        """Apply ``command`` and return its events, rejections included.

        Raises:
            ApiError: 504 when no reply came in time, 503 when the bus is down.
        """
        start = time.perf_counter()
        if self.before_send is not None:
            await self.before_send()
        try:
            reply = await self.bus.request(encode_command(command), timeout=self.timeout_s)
        except RequestTimeout:
            raise ApiError(504, "engine_timeout", "the engine did not answer in time; the "
                           "request may still be applied") from None
        except BusUnavailable:
            raise ApiError(503, "unavailable", "the engine is unreachable; retry in a moment",
                           {"Retry-After": str(BUS_RETRY_AFTER_S)}) from None
        # The engine beside this server kept its reply decoded (``Bus.decoded``); else
        # it is decoded here, a big one (a cancel-all of 10,000 orders: 1.3 MB) in slices.
        kept = self.bus.decoded.take(reply) if self.bus.decoded is not None else None
        events = command_events(kept if kept is not None  # type: ignore[arg-type]
                                else await decode_events_sliced(reply, Slicer()))
        self.on_write(scope_of(events))
        if self.observe is not None:
            first = events[0] if events else None
            rejected = first.reason if isinstance(first, Rejected) else None
            self.observe(type(command).__name__, time.perf_counter() - start, rejected)
        return events

    async def send(self, command: Command) -> list[EngineEvent]:
        """Apply ``command``; a rejection raises its API error.

        Raises:
            ApiError: the rejection mapped by ``REJECTION_STATUS``, or 503/504.
        """
        events = await self.send_raw(command)
        for event in events:
            if isinstance(event, Rejected):
                raise rejection_error(event)
        return events
