"""The matching engine: pure, deterministic, no I/O.

``Engine().apply(command) -> list[event]``; commands in ``commands``, events in
``events``, integer money and prices in ``units``. ``runner`` is the only module here
that touches the outside world (asyncio).

The core may run compiled with mypyc: ``compiled.activate()`` picks the compiled
modules or their sources before anything here imports them (``compiled.mode`` says
which, ``compiled.reason`` why), so it must stay the first import.
"""

# ruff: noqa: E402 - the imports below must follow compiled.activate()
from . import compiled

compiled.activate()

from . import events
from .commands import (
    CancelAll,
    CancelOrder,
    Command,
    Convert,
    CreateEvent,
    DeleteEvent,
    Deposit,
    DisarmHeartbeat,
    EventStatus,
    Expire,
    Heartbeat,
    Merge,
    MergeEvent,
    ModifyOrder,
    OrderType,
    Outcome,
    PlaceBatch,
    PlaceOrder,
    ResolveEvent,
    SelfTrade,
    Side,
    Split,
    SplitEvent,
    TimeInForce,
    UpdateEvent,
    Withdraw,
)
from .engine import Engine
from .events import Reason, as_dict
from .queries import AuditReport, BookView, MarketView
from .units import SCALE

__all__ = [
    "SCALE",
    "AuditReport",
    "BookView",
    "CancelAll",
    "CancelOrder",
    "Command",
    "Convert",
    "CreateEvent",
    "DeleteEvent",
    "Deposit",
    "DisarmHeartbeat",
    "Engine",
    "EventStatus",
    "Expire",
    "Heartbeat",
    "MarketView",
    "Merge",
    "MergeEvent",
    "ModifyOrder",
    "OrderType",
    "Outcome",
    "PlaceBatch",
    "PlaceOrder",
    "Reason",
    "ResolveEvent",
    "SelfTrade",
    "Side",
    "Split",
    "SplitEvent",
    "TimeInForce",
    "UpdateEvent",
    "Withdraw",
    "as_dict",
    "compiled",
    "events",
]
